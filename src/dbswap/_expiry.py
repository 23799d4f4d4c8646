"""Fast pins expire on time, with no clock read in the session that uses them.

A board's fast pin (see ``Switchboard._set_fast``) holds while the shared
counter is unchanged, and only until a deadline: that bounds how long a
process can miss a state changed without a bump (a writer killed between
replace and bump, a deleted runtime dir, a hand-edited file). Reading the
clock in every session would cost as much as the rest of the check, so one
daemon thread per process drops the pins whose deadline has passed, a few
times per ``REVALIDATE`` period, and stops when no board needs it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING

from . import _state

if TYPE_CHECKING:
    from ._switchboard import Switchboard

logger = logging.getLogger("dbswap")

TICKS_PER_PERIOD = 4  # a pin outlives its deadline by at most REVALIDATE / 4


class _Expiry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._boards: weakref.WeakSet[Switchboard] = weakref.WeakSet()
        self._thread: threading.Thread | None = None

    def watch(self, board: Switchboard) -> bool:
        """Expire ``board``'s fast pins on time from now on (the slow path calls this).

        False if no thread can be started (interpreter shutdown, a thread limit):
        the board must then do without fast pins.
        """
        with self._lock:
            self._boards.add(board)
            if self._thread is not None and self._thread.is_alive():
                return True
            thread = threading.Thread(target=self._run, name="dbswap-pin-expiry", daemon=True)
            try:
                thread.start()
            except RuntimeError:
                self._boards.discard(board)
                return False
            self._thread = thread
            return True

    def forget(self, board: Switchboard) -> None:
        with self._lock:
            self._boards.discard(board)

    def _run(self) -> None:
        while True:
            time.sleep(_state.REVALIDATE / TICKS_PER_PERIOD)
            with self._lock:
                boards = list(self._boards)
                if not boards:
                    self._thread = None
                    return
            now = time.monotonic()
            for board in boards:
                try:
                    board._expire_fast(now)
                except Exception:  # a board torn down meanwhile: the thread must go on
                    logger.debug("expiring the fast pins of %r failed", board, exc_info=True)

    def _after_fork_in_child(self) -> None:
        # The thread is not in the child, and the lock may have been held by another thread.
        self._lock = threading.Lock()
        self._thread = None


expiry = _Expiry()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=expiry._after_fork_in_child)
