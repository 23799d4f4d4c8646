"""Prototypes of the hot-path patch proposed in the report, measured beside the real code.

``MmapStateStore`` is the file store plus an 8-byte generation counter
(``db-target.gen``) mapped in memory with MAP_SHARED. A writer bumps it after
``os.replace`` and before ``use()`` returns, so a session begun after
``use()`` returned, in any process of this host, sees a new counter and
re-reads the state: the same guarantee as one ``stat()`` per session, for an
8-byte compare. Readers still ``stat()`` at least every ``REVALIDATE``
seconds, which bounds staleness when no bump comes (a writer killed between
``os.replace`` and the bump, a hand-edited file, an older dbswap).

``FastPinBoard`` answers ``_pin`` from one tuple keyed by the state object
the store returned, skipping ``_current()``, the target lookup and the bind
cache while nothing changed; its sessions (``SlimPinnedSession``) keep their
defaults on the class and write only what pinning sets.
"""

from __future__ import annotations

import mmap
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from dbswap import PinnedSession, RoutingEngine, State, Switchboard
from dbswap._state import FileStateStore

COUNTER_FILE = "db-target.gen"
REVALIDATE = 1.0  # seconds between stat() calls when the counter did not move


class GenerationCounter:
    """Eight bytes shared by every process of the host that maps the same file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < 8:
                os.ftruncate(fd, 8)  # zeros; two racing creators both leave zeros
            self._map = mmap.mmap(fd, 8)
        finally:
            os.close(fd)

    def read(self) -> bytes:
        return self._map[:8]

    def bump(self) -> None:
        """Called under the switch lock: one writer at a time."""
        value = int.from_bytes(self._map[:8], "little") + 1
        self._map[:8] = value.to_bytes(8, "little")

    def close(self) -> None:
        self._map.close()


class MmapStateStore(FileStateStore):
    def __init__(self, runtime_dir: str | os.PathLike[str]) -> None:
        super().__init__(runtime_dir)
        self.counter = GenerationCounter(self.runtime_dir / COUNTER_FILE)
        # (counter bytes, when last stat()ed, state): one tuple, swapped atomically.
        self._fast: tuple[bytes, float, State | None] = (b"", 0.0, None)

    def current(self) -> State | None:
        stamp = self.counter.read()
        known, checked, state = self._fast
        now = time.monotonic()
        if stamp == known and now - checked < REVALIDATE:
            return state
        state = super().current()
        self._fast = (stamp, now, state)
        return state

    def read(self) -> State | None:
        self._fast = (b"", 0.0, None)
        return super().read()

    def write(self, state: State) -> None:
        super().write(state)
        self.counter.bump()


_MISS: tuple[object, tuple[str, bool, Engine] | None] = (object(), None)


class SlimPinnedSession(PinnedSession):
    """PinnedSession with class-level defaults: three instance writes on the common path."""

    _dbswap_explicit = False
    _dbswap_engine: Engine | None = None
    dbswap_target: str | None = None
    dbswap_read_only = False

    def __init__(self, bind: Any = None, **kw: Any) -> None:
        if isinstance(bind, RoutingEngine):
            bind = None  # board.engine means "follow the board": that is what pinning does
        Session.__init__(self, bind=bind, **kw)
        if bind is None and not kw.get("binds"):
            self.dbswap_target, self.dbswap_read_only, self._dbswap_engine = (
                self._dbswap_board._pin(self._dbswap_async)
            )
        else:
            self._dbswap_explicit = True


def _slim_class(board: Switchboard, is_async: bool) -> type[PinnedSession]:
    name = "AsyncPinnedSession" if is_async else "PinnedSession"
    attrs = {"_dbswap_board": board, "_dbswap_async": is_async, "__module__": __name__}
    return type(name, (SlimPinnedSession,), attrs)


class FastPinBoard(Switchboard):
    """``_pin`` from one cached tuple while the store returns the same State object."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._pinned = [_MISS, _MISS]  # index: is_async
        self.session_class = _slim_class(self, False)
        self._async_session_class = _slim_class(self, True)

    def _pin(self, is_async: bool) -> tuple[str, bool, Engine]:
        if self.production_lock:
            return super()._pin(is_async)
        state = self._store.current()
        known, result = self._pinned[is_async]
        if known is state and result is not None:
            return result
        seen_state, name, read_only = self._seen
        if seen_state is not state:
            name, read_only = self._observe(state)
        result = (name, read_only, self._engines.bind(self._targets[name], is_async, read_only))
        self._pinned[is_async] = (state, result)  # keyed by the state it was computed from
        return result
