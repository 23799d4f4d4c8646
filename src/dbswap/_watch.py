"""Waiting for the state to change, without spending CPU while it does not.

A follower thread blocks in ``Watcher.wait()``. For the file store it is woken
when the state file is renamed into the runtime dir (every switch ends with
such a rename; nothing else there wakes it): on Linux by the kernel, through
one inotify descriptor per process whatever the number of boards (``ctypes``;
a user has few inotify instances); elsewhere by a look at
the generation counter every ``POLL`` seconds. For the Redis store the
listener thread wakes it.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import select
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

POLL = 0.05  # seconds between two looks at the counter where inotify is missing
IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_TO, IN_DELETE = 0x02, 0x08, 0x80, 0x200
_IN_MASK_ADD = 0x20000000  # two watchers of one directory: both their events
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)


class Wakeup:
    """A signal one thread waits for and any thread gives: ``wait()`` takes it, if given.

    A bare lock, not a ``threading.Event``: giving and taking stay in C, where an
    Event's condition variable takes and drops Python-level locks on each wake-up.
    """

    def __init__(self) -> None:
        self._given = threading.Lock()
        self._given.acquire()  # held: not given

    def set(self) -> None:
        with contextlib.suppress(RuntimeError):  # given already: once is enough
            self._given.release()

    def wait(self, timeout: float) -> bool:
        return self._given.acquire(timeout=max(0.0, timeout))


class Watcher:
    """``wait(timeout)``: True as soon as the state may have changed, False after ``timeout``."""

    def __init__(self) -> None:
        self.event = Wakeup()

    def wait(self, timeout: float) -> bool:
        return self.event.wait(timeout)

    def close(self) -> None:
        return None


class EventWatcher(Watcher):
    """Woken by whoever learns first that the state changed (the Redis listener)."""


class DirectoryWatcher(Watcher):
    """Woken by ``events`` on the file ``name`` (any file: None) in ``directory`` (inotify),
    else when ``changed()`` is True."""

    def __init__(
        self,
        directory: Path,
        name: str | None,
        changed: Callable[[], bool],
        events: int = IN_MOVED_TO,
    ) -> None:
        super().__init__()
        self.name = os.fsencode(name) if name is not None else None
        self.events = events
        self._changed = changed
        self._directory = os.fsencode(directory)
        self._watching = _hub.add(self._directory, self, events)

    def wait(self, timeout: float) -> bool:
        if self._watching:
            return _hub.wait(self, timeout)
        deadline = time.monotonic() + timeout
        while not self._changed():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(POLL, left))
        return True

    def close(self) -> None:
        if self._watching:
            _hub.remove(self._directory, self)


class _Inotify:
    """One inotify descriptor for the whole process.

    While one watcher uses it (a process following one board), that watcher's own
    thread reads it in ``wait()``: a switch wakes one thread, not a reader thread that
    wakes the follower. A second watcher starts one reader thread for all; whoever
    reads wakes every watcher the events are for, so two readers at once are harmless.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._libc: ctypes.CDLL | None = None
        self._reader: threading.Thread | None = None
        self._watches: dict[int, set[DirectoryWatcher]] = {}  # watch descriptor -> watchers
        self._by_directory: dict[bytes, int] = {}

    def add(self, directory: bytes, watcher: DirectoryWatcher, events: int) -> bool:
        """Watch ``directory`` for ``watcher``; False where inotify cannot (then it polls)."""
        with self._lock:
            if not self._ready():
                return False
            assert self._libc is not None and self._fd is not None
            wd = int(self._libc.inotify_add_watch(self._fd, directory, events | _IN_MASK_ADD))
            if wd < 0:
                return False
            self._watches.setdefault(wd, set()).add(watcher)
            self._by_directory[directory] = wd
            watchers = sum(len(group) for group in self._watches.values())
            if watchers > 1 and self._reader is None:
                self._reader = threading.Thread(
                    target=self._read_forever, args=(self._fd,), name="dbswap-inotify", daemon=True
                )
                self._reader.start()
            return True

    def remove(self, directory: bytes, watcher: DirectoryWatcher) -> None:
        with self._lock:
            wd = self._by_directory.get(directory)
            watchers = self._watches.get(wd, set()) if wd is not None else set()
            watchers.discard(watcher)
            if wd is not None and not watchers and self._fd is not None and self._libc:
                self._libc.inotify_rm_watch(self._fd, wd)
                del self._watches[wd], self._by_directory[directory]

    def wait(self, watcher: DirectoryWatcher, timeout: float) -> bool:
        """``watcher``'s wait: on its wake-up if a reader thread runs, else reading itself."""
        deadline = time.monotonic() + timeout
        while not watcher.event.wait(0):
            left = deadline - time.monotonic()
            fd = self._fd
            if self._reader is not None or fd is None:
                return watcher.event.wait(left)
            if left <= 0:
                return False
            try:
                if _readable(fd, left):
                    self._dispatch(os.read(fd, 65536))
            except BlockingIOError:  # a reader thread, started meanwhile, took the events
                continue
            except OSError:  # closed (after a fork)
                return watcher.event.wait(max(0.0, deadline - time.monotonic()))
        return True

    def _ready(self) -> bool:
        if self._fd is not None:
            return True
        if not sys.platform.startswith("linux"):
            return False
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = int(libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK))
        except (OSError, AttributeError):
            return False
        if fd < 0:  # no instance left for this user: poll instead
            return False
        self._libc, self._fd = libc, fd
        return True

    def _read_forever(self, fd: int) -> None:
        while True:
            try:
                _readable(fd, None)
                data = os.read(fd, 65536)
            except BlockingIOError:  # a waiter read them first
                continue
            except OSError:  # closed (after a fork): this thread is done
                return
            self._dispatch(data)

    def _dispatch(self, data: bytes) -> None:
        woken: set[tuple[int, int, bytes]] = set()
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _, length = _EVENT.unpack_from(data, offset)
            start = offset + _EVENT.size
            woken.add((wd, mask, data[start : start + length].rstrip(b"\0")))
            offset = start + length
        with self._lock:
            watchers = [
                w
                for wd, mask, name in woken
                for w in self._watches.get(wd, ())
                if mask & w.events and w.name in (None, name)
            ]
        for watcher in watchers:
            watcher.event.set()

    def after_fork_in_child(self) -> None:
        """The descriptor is the parent's (reading it would take the parent's events)."""
        fd, self._fd = self._fd, None
        self._lock = threading.Lock()
        self._reader = None
        self._watches.clear()
        self._by_directory.clear()
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def _readable(fd: int, timeout: float | None) -> bool:
    """Whether ``fd`` can be read within ``timeout`` seconds (None: wait for it).

    ``poll``, not ``select``: an app with a thousand descriptors open gets ours past
    ``select``'s limit, and the follower would go deaf to the kernel.
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else math.ceil(timeout * 1000)))


_hub = _Inotify()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_hub.after_fork_in_child)
