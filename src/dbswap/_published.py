"""What a running app publishes in its runtime dir, so the plain CLI resolves targets as it did.

A shell can resolve a target differently from the app it means to switch:
Flask puts a relative SQLite path in the app's instance folder, the demo makes
SQLite files of its own, an app reads a ``.env`` the shell does not. So a
board that starts following writes ``<runtime dir>/db-targets.json``: each
target's dialect, masked URL and a fingerprint of its URL, and the URL itself
only for a SQLite file with no password (which holds no secret). The CLI
compares (``reconcile``): a target it lacks or resolves differently is taken
from the app when the app published its URL; otherwise it refuses and says
which variable to set, or which command to run instead. Never a password.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import ConfigError
from ._files import read_file
from ._targets import Target

if TYPE_CHECKING:
    from ._switchboard import Switchboard

logger = logging.getLogger("dbswap")

TARGETS_FILE = "db-targets.json"
_MODE = 0o644


def fingerprint(url: str) -> str:
    """A short digest of a URL: tells two URLs apart without showing either."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def publish(board: Switchboard) -> None:
    """Write the board's targets, as it resolved them, beside its state (best effort)."""
    entries: dict[str, Any] = {}
    for name, target in board.targets.items():
        entry = {
            "dialect": target.dialect,
            "url": target.masked_url,
            "fingerprint": fingerprint(target.url),
        }
        if target.is_sqlite and target.sa_url.password is None:
            entry["sqlite_url"] = target.url  # a file's path: nothing secret
        entries[name] = entry
    directory = board.runtime_dir
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".db-targets.", suffix=".tmp", dir=directory)
        try:
            os.fchmod(fd, _MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"targets": entries}, f, sort_keys=True)
            os.replace(tmp, directory / TARGETS_FILE)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        logger.debug("cannot publish this app's targets in %s: %s", directory, exc.strerror)


def published(runtime_dir: Path) -> dict[str, dict[str, str]] | None:
    """The targets a running app published in ``runtime_dir`` (None: none, or unreadable)."""
    try:
        data = json.loads(read_file(runtime_dir / TARGETS_FILE, 1 << 20))
        targets = data["targets"]
        if isinstance(targets, dict) and all(isinstance(v, dict) for v in targets.values()):
            return targets
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def reconcile(mine: Mapping[str, Target], runtime_dir: Path) -> tuple[dict[str, str], list[str]]:
    """What the CLI should use instead of its own resolution: (URLs to take from the app,
    by target name; differences it cannot fix, as lines for people)."""
    app = published(runtime_dir)
    if app is None:
        return {}, []
    taken: dict[str, str] = {}
    problems = []
    for name, entry in app.items():
        own = mine.get(name)
        if own is not None and fingerprint(own.url) == entry.get("fingerprint"):
            continue
        url = entry.get("sqlite_url")
        if isinstance(url, str):
            taken[name] = url
        elif own is not None:
            problems.append(
                f"{name}: the app uses {entry.get('url')}, this shell {own.masked_url} "
                f"(set DATABASE_URL_{name.upper()} as the app has it)"
            )
    return taken, problems


def refusal(runtime_dir: Path, problems: list[str]) -> ConfigError:
    return ConfigError(
        f"this shell resolves targets differently from the app that follows {runtime_dir}: "
        + "; ".join(problems)
        + ". Or run the command through the app itself (flask dbswap ..., python manage.py "
        "dbswap ...), which resolves them as it does"
    )
