"""The audit trail: one JSON line per switch attempt, in ``<runtime dir>/db-switch.log``.

With a state store shared by several hosts (Redis), each line also goes there
and ``history()`` reads the fleet's trail from it (this host's file if it
cannot answer).

It lives beside the state, not in any switched database, so the trail (and
whoever reads it) never depends on the database being switched. Each line is
also sent to the ``dbswap.audit`` logger. Lines are masked before writing.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ._masking import mask_text
from ._state import StateStore, utc_now

AUDIT_FILE = "db-switch.log"
audit_logger = logging.getLogger("dbswap.audit")
logger = logging.getLogger("dbswap")


class AuditLog:
    """Append-only JSON lines; ``history()`` reads them back, newest first."""

    def __init__(
        self,
        runtime_dir: str | os.PathLike[str],
        secrets: Iterable[str] = (),
        shared: StateStore | None = None,
    ) -> None:
        self.path = Path(runtime_dir) / AUDIT_FILE
        self._secrets = tuple(secrets)
        self._host = socket.gethostname()
        self._shared = shared  # a store that keeps the fleet's trail (Redis), if any

    def record(
        self,
        *,
        outcome: str,
        user: str | None,
        source: str | None,
        target: str,
        generation: int | None,
        duration_ms: float,
        reason: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Write one line; a full or read-only disk is logged, never raised."""
        entry: dict[str, Any] = {
            "time": utc_now(),
            "user": user,
            "from": source,
            "to": target,
            "generation": generation,
            "outcome": outcome,
            "reason": reason,
            "duration_ms": round(duration_ms, 3),
            "pid": os.getpid(),
            "host": self._host,
            **extra,
        }
        line = mask_text(json.dumps(entry, sort_keys=True), self._secrets)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One write() on an O_APPEND descriptor: lines from many processes never interleave.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (line + "\n").encode("utf-8"))
            finally:
                os.close(fd)
        except OSError as exc:
            logger.warning("cannot write the audit log %s (%s)", self.path, exc.strerror)
        if self._shared is not None:
            self._shared.share_audit(line)
        audit_logger.info(line)
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def history(self, limit: int | None = 20) -> list[dict[str, Any]]:
        """The last ``limit`` entries (all if None), newest first; bad lines skipped."""
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        shared = self._shared.shared_audit(limit) if self._shared is not None else None
        if shared is not None:
            newest_first: Iterable[str] = shared
        else:
            try:
                newest_first = _last_lines(self.path, limit)
            except FileNotFoundError:
                return []
        entries = []
        for line in newest_first:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
        return entries


def _last_lines(path: Path, limit: int | None, block: int = 65536) -> list[str]:
    """The last ``limit`` lines of a file (all if None), newest first, read from its end."""
    with path.open("rb") as f:
        if limit is None:
            return [line.decode("utf-8", "replace") for line in reversed(f.read().splitlines())]
        position = f.seek(0, os.SEEK_END)
        blocks: list[bytes] = []
        newlines = 0
        while position > 0 and newlines <= limit:  # one more: the first line may be cut
            size = min(block, position)
            position -= size
            f.seek(position)
            blocks.append(f.read(size))
            newlines += blocks[-1].count(b"\n")
    lines = b"".join(reversed(blocks)).splitlines()
    if position > 0:
        lines = lines[1:]  # began mid-line
    kept = lines[-limit:] if limit else []
    return [line.decode("utf-8", "replace") for line in reversed(kept)]
