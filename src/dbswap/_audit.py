"""The audit trail: one JSON line per switch attempt, in ``<runtime dir>/db-switch.log``.

With a state store shared by several hosts (Redis), each line also goes there
and ``history()`` reads the fleet's trail from it (this host's file if it
cannot answer).

It lives beside the state, not in any switched database, so the trail (and
whoever reads it) never depends on the database being switched. Each line is
also sent to the ``dbswap.audit`` logger. Lines are masked before writing.

A name or user may hold anything a caller passed (a lone surrogate from a
badly encoded argument, control characters, megabytes): it is written escaped
and shortened, and every string read back is made safe again (older lines,
other hosts' lines), so no reader (the CLI, JSON, HTML) chokes on one.
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
from ._state import State, StateStore, utc_now

AUDIT_FILE = "db-switch.log"
COMMIT_LOOKBACK = 1000  # lines searched for the last commit's own line
MAX_NAME_CHARS = 100  # target names and users, as written in a line
MAX_TEXT_CHARS = 1000  # any other string (reasons)
_COMMITS = ("ok", "recovered", "restored", "expired")  # outcomes that commit a generation
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
        # Masked value by value, before JSON escapes could hide a secret's characters.
        entry = {key: self._safe(key, value) for key, value in entry.items()}
        line = json.dumps(entry, sort_keys=True)
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

    def _safe(self, key: str, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        limit = MAX_NAME_CHARS if key in ("user", "from", "to") else MAX_TEXT_CHARS
        return printable(mask_text(value, self._secrets), limit)

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
                entries.append({printable(str(k)): _readable(v) for k, v in entry.items()})
        return entries

    def recover(self, state: State) -> None:
        """Write the line of a committed switch whose switcher died before writing it.

        Called under the switch lock, before the next switch: the committed
        state says what happened, so every generation keeps exactly one line.
        """
        if state.generation > 0 and self._last_committed() != state.generation:
            self.record(
                outcome="recovered",
                user=state.switched_by,
                source=None,
                target=state.target,
                generation=state.generation,
                duration_ms=0.0,
                reason="the switcher stopped after committing, before its audit line",
                switched_at=state.switched_at,
                read_only=state.read_only,
            )

    def restored(self, state: State, reason: str) -> None:
        """Write the line of a state written back to a store that had lost it (Redis).

        ``user`` is who made the switch; ``host`` and ``pid`` say who wrote it back.
        """
        self.record(
            outcome="restored",
            user=state.switched_by,
            source=None,
            target=state.target,
            generation=state.generation,
            duration_ms=0.0,
            reason=reason,
            switched_at=state.switched_at,
            read_only=state.read_only,
        )

    def _last_committed(self) -> int | None:
        """The generation of the newest line that committed one (``_COMMITS``), if any."""
        shared = self._shared.shared_audit(COMMIT_LOOKBACK) if self._shared is not None else None
        try:
            lines = shared if shared is not None else _last_lines(self.path, COMMIT_LOOKBACK)
        except OSError:
            return None
        for line in lines:
            if not any(f'"outcome": "{outcome}"' in line for outcome in _COMMITS):
                continue  # most lines are skipped without parsing
            try:
                generation = json.loads(line).get("generation")
            except (ValueError, AttributeError):
                continue
            return generation if isinstance(generation, int) else None
        return None


def printable(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """``text`` with what cannot be shown escaped (``\\x1b``, ``\\udcff``), at most ``limit`` chars.

    Idempotent: an escaped text is printable, so reading it back changes nothing.
    """
    if text.isprintable() and len(text) <= limit:
        return text  # the usual case: nothing to do
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _readable(value: Any) -> Any:
    """A value read back from a line, with every string in it printable."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, list):
        return [_readable(item) for item in value]
    if isinstance(value, dict):
        return {printable(str(k)): _readable(v) for k, v in value.items()}
    return value


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
