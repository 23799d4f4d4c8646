"""Who follows a shared state: each process that serves from it says so while it lives.

A board starts following at its first session (or ``board.follow()``, which the
Django middleware calls) in a daemon thread, ``dbswap-follower``, which:

- waits for the store's news at most ``HEARTBEAT`` seconds (inotify on the
  runtime dir, the Redis listener: no CPU while nothing happens);
- looks at the state as a session would, so a new one is served at once (and
  ``on_change`` runs, and a time limit that has ended returns) even in a
  process that serves no request right then;
- publishes this process's record: pid, host, the target and generation it
  serves, since when.

A record lives exactly as long as its process: a file in ``<runtime
dir>/followers`` that the process keeps flocked (the kernel drops the lock when
the process dies, SIGKILL included, and the next reader removes the file), or
a Redis key whose TTL the heartbeat renews (a dead process's lapses within
``FOLLOWER_TTL``). A record holds names, pids, hosts and generations: never a
URL or a secret. ``wait_for()`` is how a switch counts who has taken it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ._state import State, StateStore, utc_now

if TYPE_CHECKING:
    from ._switchboard import Switchboard

logger = logging.getLogger("dbswap")

HEARTBEAT = 1.0  # seconds: a follower looks at the state (and renews its record) this often
POLL = 0.005  # seconds between two looks at the records while a switch waits for them
RECORD_BYTES = 256  # a record is padded to this: its file is rewritten in place, in one write


@dataclass(frozen=True)
class Follower:
    """One process following the state, as it said last."""

    pid: int
    host: str
    target: str
    generation: int
    since: str  # UTC: since when it serves this target and generation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Acknowledgement:
    """Who serves a generation, ``seconds`` after it was committed."""

    generation: int
    followers: tuple[Follower, ...] | None  # None: the store cannot tell right now
    seconds: float

    @property
    def acknowledged(self) -> int:
        return sum(f.generation >= self.generation for f in self.followers or ())

    @property
    def lagging(self) -> tuple[Follower, ...]:
        return tuple(f for f in self.followers or () if f.generation < self.generation)

    @property
    def complete(self) -> bool:
        return self.followers is not None and not self.lagging


def followers_of(store: StateStore) -> list[Follower] | None:
    """Every live follower of ``store``'s state (None: it cannot tell right now)."""
    records = store.followers()
    if records is None:
        return None
    found = [follower for raw in records if (follower := _parse(raw)) is not None]
    return sorted(found, key=lambda f: (f.host, f.pid))


def wait_for(store: StateStore, generation: int, timeout: float) -> Acknowledgement:
    """Wait (at most ``timeout`` s) until every live follower serves ``generation``."""
    started = time.monotonic()
    while True:
        found = followers_of(store)
        elapsed = time.monotonic() - started
        ack = Acknowledgement(generation, None if found is None else tuple(found), elapsed)
        if ack.complete or elapsed >= timeout:
            return ack
        time.sleep(POLL)


def describe(ack: Acknowledgement, *, timed: bool = True) -> str:
    """``8 of 8 processes on 2 hosts on generation 5 within 14 ms``, or who lags."""
    if ack.followers is None:
        return "cannot tell which processes follow the state right now"
    total = len(ack.followers)
    hosts = len({f.host for f in ack.followers})
    where = f"{total} process{'es' if total != 1 else ''} on {hosts} host{'s' * (hosts != 1)}"
    on = f"on generation {ack.generation}"
    if ack.complete:
        ms = ack.seconds * 1000
        within = f" within {ms:.1f} ms" if ms < 10 else f" within {ms:.0f} ms"
        return f"{ack.acknowledged} of {where} {on}{within}" if timed else f"{where}, all {on}"
    lagging = ", ".join(f"pid {f.pid} on {f.host} (generation {f.generation})" for f in ack.lagging)
    after = f" after {ack.seconds:.1f} s" if timed else ""
    return f"{ack.acknowledged} of {where} {on}{after}; not yet: {lagging}"


def _parse(raw: str) -> Follower | None:
    try:
        data = json.loads(raw)
        return Follower(
            int(data["pid"]),
            str(data["host"]),
            str(data["target"]),
            int(data["generation"]),
            str(data["since"]),
        )
    except (ValueError, KeyError, TypeError):
        return None  # a record being rewritten, or not ours


class Following:
    """This process's following of one board's state: its record and its thread."""

    def __init__(self, board: Switchboard) -> None:
        self._board = weakref.ref(board)  # the thread must not keep a dropped board alive
        self._store = board._store
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ident = ""
        self._said: tuple[str, int] | None = None  # (target, generation) last published
        self._record = ""  # what was published last (padded: rewritten in one system call)
        self._published_at = 0.0

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._ident = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
            self._said = None
            try:
                watcher = self._store.watcher()
            except OSError as exc:  # a runtime dir that cannot be: the app runs, uncounted
                logger.warning(
                    "this process cannot follow the state in %s (%s): it is not counted "
                    "among its followers",
                    self._store.describe(),
                    exc.strerror or type(exc).__name__,
                )
                self._stop.set()
                return
            self._thread = threading.Thread(
                target=self._follow, args=(watcher,), name="dbswap-follower", daemon=True
            )
            self._thread.start()
        _live.add(self)

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
            if self._thread is not None:
                self._store.withdraw_follower(self._ident)

    def publish(self) -> None:
        """Say what this process serves now (at once if it changed, else once a heartbeat)."""
        board = self._board()
        if board is None:
            return
        state, target, _ = board._seen
        generation = state.generation if isinstance(state, State) else 0
        now = time.monotonic()
        with self._lock:
            if self._stop.is_set() or self._thread is None:
                return
            if (target, generation) == self._said and now - self._published_at < HEARTBEAT:
                return
            if (target, generation) != self._said:
                self._said = (target, generation)
                record = {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "target": target,
                    "generation": generation,
                    "since": utc_now(),
                }
                self._record = json.dumps(record).ljust(RECORD_BYTES)
            self._store.publish_follower(self._ident, self._record)
            self._published_at = now

    def _follow(self, watcher: Any) -> None:
        chores_at = 0.0
        try:
            while not self._stop.is_set():
                board = self._board()
                if board is None:
                    return
                try:
                    if time.monotonic() >= chores_at:  # once a second, not on every switch
                        self._store.maintain()  # e.g. take over as this host's relay (_relay)
                        chores_at = time.monotonic() + HEARTBEAT
                    board._current()  # a new state is served now; a time limit returns
                    self.publish()
                except Exception as exc:  # the thread must go on (Redis down, a bad state)
                    logger.debug("the follower thread could not look: %s", exc)
                del board
                if watcher.wait(HEARTBEAT):
                    self._store.revalidate()
        finally:
            watcher.close()

    def _after_fork(self) -> None:
        """In a forked child: its own record and thread (the parent's are not its own)."""
        self._lock = threading.Lock()
        was_following = self._thread is not None and not self._stop.is_set()
        self._thread = None
        if was_following:
            self.start()


_live: weakref.WeakSet[Following] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for following in list(_live):
        following._after_fork()


if hasattr(os, "register_at_fork"):  # after the state store's own (imported before this)
    os.register_at_fork(after_in_child=_after_fork_in_child)
