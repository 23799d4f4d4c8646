"""``manage.py test`` that never touches production, whatever the developer's app is switched to.

Django's own ``test`` command, with the guard of dbswap's pytest plugin installed
before Django's runner starts (``dbswap._testguard.protect``): every board built
from then on, in this process and in the processes it starts (``--parallel``
workers), ignores the shared state (the runtime dir, or Redis) of the running
app, starts on the default target (the ``default`` alias, where Django makes its
test databases) and refuses production. ``--dbswap-allow-production`` lets it
use production, if a test really must. A board built before (by settings or an
app's ``ready()``) is dropped, so the next use builds it under the guard.
"""

from __future__ import annotations

import argparse
import os
import shutil
from typing import Any

from django.core.management.commands.test import Command as DjangoTestCommand

from dbswap._testguard import ENVIRONMENT, protect, unprotect
from dbswap.django._board import set_board


class Command(DjangoTestCommand):  # type: ignore[misc]
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--dbswap-allow-production",
            action="store_true",
            help="let this test run (and the processes it starts) use the production target",
        )

    def handle(self, *test_labels: str, **options: Any) -> None:
        previous = os.environ.get(ENVIRONMENT)
        guard = protect(allow_production=bool(options.pop("dbswap_allow_production", False)))
        set_board(None)  # built before the guard: built again, under it, on next use
        try:
            super().handle(*test_labels, **options)
        finally:
            set_board(None)
            unprotect(previous)
            if previous is None:  # the run's own runtime dir, not a parent run's
                shutil.rmtree(guard.runtime_dir.parent, ignore_errors=True)
