"""The audit trail: one JSON line per switch attempt, in ``<runtime dir>/db-switch.log``.

With a state store shared by several hosts (Redis), each line also goes there
and ``history()`` reads the fleet's trail from it (this host's file if it
cannot answer).

It lives beside the state, not in any switched database, so the trail (and
whoever reads it) never depends on the database being switched. Each line is
also sent to the ``dbswap.audit`` logger. Lines are masked before writing.

Every committed generation has exactly one line. A switch writes its line,
and syncs it to disk, *before* it commits: if the line cannot be written (no
permission, a directory or a link in its place, a full disk, a file-size
limit) the switch does not happen. A switcher that dies between its line and
its commit leaves a line for a generation that never was: the next switch
finds it and writes an ``uncommitted`` line for it; one that died between a
commit and its line (older versions, a store that wrote a state back) gets a
``recovered`` line. A generation is never reused: a state that was lost or
garbled continues from the trail's last committed generation.

A name or user may hold anything a caller passed (a lone surrogate from a
badly encoded argument, control characters, megabytes): it is written escaped
and shortened, and every string read back is made safe again (older lines,
other hosts' lines), so no reader (the CLI, JSON, HTML) chokes on one.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ._errors import ConfigError
from ._files import open_file, open_in_dir
from ._masking import mask_text
from ._state import State, StateStore, utc_now

AUDIT_FILE = "db-switch.log"
COMMIT_LOOKBACK = 1000  # shared lines asked for first when looking for the last commit
MAX_NAME_CHARS = 100  # target names and users, as written in a line
MAX_TEXT_CHARS = 1000  # any other string (reasons)
_COMMITS = ("ok", "recovered", "restored", "expired")  # outcomes that commit a generation
UNCOMMITTED = "uncommitted"  # a line written for a generation whose commit never happened
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
        durable: bool = False,
        **extra: Any,
    ) -> dict[str, Any]:
        """Write one line. ``durable``: synced to disk, and ``OSError`` if it cannot be
        written (a commit's line); otherwise a full or read-only disk is logged, never raised."""
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
            self._append(line, durable)
        except OSError as exc:
            if durable:
                raise
            logger.warning("cannot write the audit log %s (%s)", self.path, exc.strerror)
        if self._shared is not None:
            self._shared.share_audit(line)
        audit_logger.info(line)
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def _append(self, line: str, durable: bool) -> None:
        # One write() on an O_APPEND descriptor: lines from many processes never interleave.
        fd = open_in_dir(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT)  # RDWR: pread
        try:
            data = (line + "\n").encode("utf-8")
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a line cut short (a full disk): never glue ours to it
            if os.write(fd, data) != len(data):  # a file-size limit or a full disk, mid-line
                raise OSError(errno.EFBIG, "the line was cut short (file size limit or full disk)")
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)

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
            except OSError as exc:  # a link planted in its place, no permission
                why = exc.strerror
                raise ConfigError(f"cannot read the audit log {self.path}: {why}") from None
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
        """Make the trail agree with the committed ``state`` (under the switch lock).

        A switcher that died after its line but before its commit: an
        ``uncommitted`` line for that generation. One that died after a commit
        but before its line: a ``recovered`` line, from what the state says.
        """
        last = self.last_committed()
        if last is not None and last > state.generation:
            self.void(last, state.target, "its switcher stopped after writing this line")
        elif state.generation > 0 and last != state.generation:
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

    def void(self, generation: int, target: str, why: str) -> None:
        """The line of ``generation`` was written, but that generation was not committed."""
        self.record(
            outcome=UNCOMMITTED,
            user=None,
            source=None,
            target=target,
            generation=generation,
            duration_ms=0.0,
            reason=f"generation {generation} was not committed: {why}",
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

    def last_committed(self) -> int | None:
        """The newest generation a line says was committed (``_COMMITS``), if any.

        Reads back as far as it must (a commit may lie behind thousands of refusals);
        a generation an ``uncommitted`` line voids does not count.
        """
        voided: set[int] = set()
        for line in self._committing_lines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            generation = entry.get("generation") if isinstance(entry, dict) else None
            if not isinstance(generation, int) or isinstance(generation, bool):
                continue
            if entry.get("outcome") == UNCOMMITTED:
                voided.add(generation)
            elif entry.get("outcome") in _COMMITS and generation not in voided:
                return generation
        return None

    def _committing_lines(self) -> Iterator[str]:
        """Lines that may commit or void a generation, newest first (most are skipped unparsed)."""
        wanted = [f'"outcome": "{outcome}"' for outcome in (*_COMMITS, UNCOMMITTED)]
        shared = self._shared.shared_audit(COMMIT_LOOKBACK) if self._shared is not None else None
        if shared is not None and len(shared) >= COMMIT_LOOKBACK:
            shared = self._shared.shared_audit(None) if self._shared is not None else None
        try:
            lines = iter(shared) if shared is not None else _lines_backwards(self.path)
            for line in lines:
                if any(text in line for text in wanted):
                    yield line
        except OSError:
            return


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
    if limit == 0:
        return []
    lines = []
    for line in _lines_backwards(path, block):
        lines.append(line)
        if limit is not None and len(lines) >= limit:
            break
    return lines


def _lines_backwards(path: Path, block: int = 65536) -> Iterator[str]:
    """The lines of a file, newest first, read block by block from its end (no link followed).

    The first block is small (a switch looks for the last commit, most often the last
    line); each next one twice as large, up to ``block``.
    """
    fd = open_file(path, os.O_RDONLY)
    try:
        position = os.fstat(fd).st_size
        rest: bytes | None = None  # the start of a line whose beginning lies in an earlier block
        size = min(4096, block)
        while position > 0:
            size = min(size, position)
            position -= size
            chunk = os.pread(fd, size, position)
            if rest is None:  # the file's end: its last newline ends a line, it starts none
                rest = b""
                chunk = chunk[:-1] if chunk.endswith(b"\n") else chunk
            lines = (chunk + rest).split(b"\n")
            rest = lines[0]
            for line in reversed(lines[1:]):
                yield line.decode("utf-8", "replace")
            size = min(size * 2, block)
        if rest is not None:  # the file's first line
            yield rest.decode("utf-8", "replace")
    finally:
        os.close(fd)
