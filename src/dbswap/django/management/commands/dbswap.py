"""``manage.py dbswap status|targets|use|check|history``: the dbswap CLI on Django's board.

Same options, output and exit codes (0 ok, 1 refused or failed, 2 usage or
configuration error) as the ``dbswap`` command.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import click
from django.core.management.base import BaseCommand, CommandError

from dbswap.cli import board_commands
from dbswap.django._board import get_board

# Django's own options, already applied by manage.py before this command runs.
_DJANGO_OPTIONS = ("--settings", "--pythonpath")


class Command(BaseCommand):  # type: ignore[misc]
    help = "Switch this app between databases without a restart (dbswap)."

    def run_from_argv(self, argv: list[str]) -> None:
        group = board_commands(get_board, name=f"{os.path.basename(argv[0])} {argv[1]}")
        group.main(args=_without_django_options(argv[2:]), standalone_mode=True)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("args", nargs=argparse.REMAINDER)

    def handle(self, *args: str, **options: Any) -> None:
        """For ``call_command("dbswap", "use", "production", "--yes")``."""
        group = board_commands(get_board, name="dbswap")
        try:
            code = group.main(args=list(args), standalone_mode=False)
        except click.ClickException as exc:
            raise CommandError(exc.format_message(), returncode=exc.exit_code) from None
        except click.Abort:
            raise CommandError("aborted", returncode=1) from None
        if isinstance(code, int) and code:
            raise CommandError(f"dbswap exited with status {code}", returncode=code)


def _without_django_options(args: list[str]) -> list[str]:
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _DJANGO_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in _DJANGO_OPTIONS)):
            kept.append(arg)
    return kept
