"""Change callbacks: every process that starts serving another target runs them.

``board.on_switch(callback)`` runs in the process that made a switch, once it
is committed. ``board.on_change(callback)`` runs in *every* process whose board
starts serving another target: the switcher, every follower (a web worker
notices within a moment, from its follower thread, even without a request),
and a process returning at a time limit's end. It runs once per change and
never for a preview or a ``pinned()`` block (those are one request's, not the
process's). It is where an app clears what it cached from the previous target::

    @board.on_change
    def forget(change: dbswap.Change) -> None:
        prices.cache_clear()   # a functools.lru_cache of query results

A callback runs in the thread that noticed the change, before that thread
serves anything from the new target; one that raises is logged, and the others
still run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger("dbswap")


@dataclass(frozen=True)
class Change:
    """The target this process served until now, and the one it serves from now on."""

    previous: str
    target: str
    generation: int  # the generation of the state that says so (0: the default)
    read_only: bool


ChangeCallback = Callable[[Change], object]


class ChangeCallbacks:
    """A board's ``on_change`` callbacks."""

    def __init__(self, mask: Callable[[str], str]) -> None:
        self._callbacks: list[ChangeCallback] = []
        self._mask = mask

    def add(self, callback: ChangeCallback) -> ChangeCallback:
        self._callbacks.append(callback)
        return callback

    def run(self, change: Change) -> None:
        for callback in list(self._callbacks):
            try:
                callback(change)
            except Exception as exc:  # a callback must not stop the process from following
                logger.error(
                    "on_change callback %r failed: %s",
                    callback,
                    self._mask(f"{type(exc).__name__}: {exc}"),
                )
