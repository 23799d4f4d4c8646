"""A host follows Redis once: one process per host relays the fleet's state to the runtime dir.

With ``DBSWAP_STATE=redis://...`` (``Switchboard.from_env``) the processes of a
host share its runtime dir. One of them — whoever holds
``<runtime dir>/db-relay.lock`` — is the host's *relay*: it follows Redis (a
subscription and a command connection, the whole host's two) and writes each
state it learns to the runtime dir, as the file store would, without fsync (it
is a copy; Redis keeps the state). Every process of the host, the relay
included, reads the state from there: the memory-mapped counter, nothing per
session, a wake-up per switch. When the relay dies (SIGKILL included) the
kernel frees its lock, and the follower thread of another process takes over
within a second. A process that never follows (the CLI) and finds no relay is
the relay for as long as it lives.

The relay also carries the host's facts to Redis: the list of its followers (one
key per host, set when a record changes so that a switch counts its
acknowledgements promptly, its lease renewed by the relay's poll of the state),
and the production locks of its processes (a notice with a lease,
``_redis_notice``). It writes what others must know of it
in ``<runtime dir>/db-relay.json``: its pid, why the state is not confirmed, and
the fleet's production lock.

A switch goes to Redis from the process that makes it (a connection of its own,
closed when the switch is done); the switcher writes the new state to its own
host's runtime dir at once, so every session begun on that host after ``use()``
returns uses it; other hosts follow within their relay's delay. Redis so sees
two connections per host, plus one while a process switches, reads the fleet's
history or counts followers, whatever the number of worker processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if sys.platform != "win32":
    import fcntl

from ._errors import SwitchLocked
from ._files import open_file, read_file
from ._redis_notice import LOCK_LEASE, LockNotice
from ._redis_state import (
    FOLLOWER_TTL,
    RedisStateStore,
    StateUnavailable,
    host_cache,
    split_prefix,
)
from ._state import FOLLOWERS_DIR, STATE_MODE, FileStateStore, Signal, State
from ._watch import IN_CLOSE_WRITE, IN_DELETE, IN_MODIFY, IN_MOVED_TO, DirectoryWatcher, Watcher

logger = logging.getLogger("dbswap")

RELAY_LOCK = "db-relay.lock"
RELAY_STATUS = "db-relay.json"
TICK = 2.0  # seconds between two looks of the relay at its chores (inotify wakes it meanwhile)
# Seconds between two looks at the followers' records, whatever inotify said: inotify sees a
# record change and a follower's death (its descriptor closed); the look is where it cannot.
HOST_RENEW = 2.0
HOST_TTL = FOLLOWER_TTL  # the host's list lapses as a follower's record does: the whole host died
STATUS_EVERY = 2.0  # seconds between two looks at the fleet's production lock, for the members
# What changes a process's record in followers/: a new one, an update, its end (its process
# closing it, SIGKILL included), its removal.
PRESENCE_EVENTS = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE
STARTUP_WAIT = 1.0  # a process with no copy of the state waits this long for the relay's first
COPY_WAIT = 5.0  # seconds to wait for the copy's lock (another writer of this host)


class RelayedStore:
    """The state store of a process in a fleet on Redis, reading its host's copy."""

    def __init__(
        self,
        url: str,
        runtime_dir: str | os.PathLike[str],
        *,
        lock_lease: float = LOCK_LEASE,
    ) -> None:
        self.runtime_dir = Path(runtime_dir)
        self._url, self._lock_lease = url, lock_lease
        self._mirror = FileStateStore(self.runtime_dir, durable=False)
        prefix = split_prefix(url)[1]
        digest = hashlib.blake2b(str(self.runtime_dir).encode(), digest_size=4).hexdigest()
        self._host = f"{socket.gethostname()}:{digest}"  # a host: a machine and a runtime dir
        self._name = f"dbswap:{prefix}:{self._host}"  # its connections, in CLIENT LIST
        # Commands only: what this process switches with when it is not the relay.
        self._commands = RedisStateStore(
            url, lock_lease=lock_lease, listen=False, client_name=self._name
        )
        self._relay: RedisStateStore | None = None
        self._relay_fd: int | None = None
        self._chores: threading.Thread | None = None
        self._stop = threading.Event()
        self._republish = threading.Event()  # the host's list lapsed in Redis: set it again
        self._published: list[str] | None = None  # the host's list as last set in Redis
        self._notice: LockNotice | None = None  # the host's production lock, carried to Redis
        self._status_said: str | None = None
        self._in_switch = False
        self.on_restored: Callable[[State, str], None] | None = None
        self.maintain()
        _live.add(self)

    # -- reading: the host's copy ---------------------------------------------

    def current(self) -> State | None:
        state = self._mirror.current()
        if state is None and not self._mirror.path.exists():
            return self._no_copy_yet()
        return state

    def _no_copy_yet(self) -> State | None:
        """No copy of the state on this host: the fleet never switched, or no relay wrote yet."""
        if self._relay is not None:
            return self._relay.current()  # raises StateUnavailable if Redis never answered
        deadline = time.monotonic() + STARTUP_WAIT
        while True:
            status = self._status()
            if status.get("answered"):
                return self._mirror.current()  # the relay answered: none means never switched
            if time.monotonic() >= deadline:
                raise StateUnavailable(
                    f"the active target is unknown: no process of this host has reached "
                    f"{self.describe()} yet ({self.runtime_dir} has no copy of the state); "
                    "sessions are refused until one has, rather than guess a database"
                )
            time.sleep(0.01)

    def signal(self) -> tuple[Signal, float] | None:
        return self._mirror.signal()

    def revalidate(self) -> None:
        self._mirror.revalidate()

    def watcher(self) -> Watcher:
        return self._mirror.watcher()

    def describe(self) -> str:
        return self._commands.describe()

    def trouble(self) -> str | None:
        relay = self._relay
        if relay is not None:
            copy = self._mirror.current()
            if not relay._reachable and copy is not None:
                return (
                    f"{self.describe()} is unreachable ({relay._down_because}); using this "
                    f"host's last known state ({copy.target!r}, generation {copy.generation}), "
                    "not confirmed"
                )
            return relay.trouble()
        if not self._relay_alive():
            return (
                f"no process of this host follows {self.describe()} right now (its relay "
                f"stopped); serving the last state seen in {self.runtime_dir}"
            )
        trouble = self._status().get("trouble")
        return str(trouble) if trouble else None

    # -- switching: Redis, from whichever process switches ----------------------

    def _redis(self) -> RedisStateStore:
        return self._relay if self._relay is not None else self._commands

    @contextlib.contextmanager
    def lock(self, timeout: float) -> Iterator[None]:
        try:
            with self._redis().lock(timeout):
                self._in_switch = True
                try:
                    yield
                finally:
                    self._in_switch = False
        finally:
            self._done()

    def read(self) -> State | None:
        return self._redis().read()

    def stage(self, state: State) -> None:
        return None

    def unstage(self) -> None:
        return None

    def write(self, state: State) -> None:
        self._redis().write(state)
        self._copy(state)  # this host's sessions use it as soon as use() returns

    def lock_holder(self) -> str | None:
        here = self._mirror.lock_holder()  # a process of this host
        if here is not None:
            return here
        if self._relay is not None or self._in_switch or not self._relay_alive():
            try:
                return self._redis().lock_holder()  # the fleet's, asked now
            finally:
                self._done()
        lock = self._status().get("lock")  # the fleet's, as the relay saw it a moment ago
        return str(lock) if lock else None

    def announce_lock(self, reason: str) -> None:
        self._mirror.announce_lock(reason)  # the relay carries it to Redis (a lease)
        self._carry_lock()

    def share_audit(self, line: str) -> None:
        try:
            self._redis().share_audit(line)
        finally:
            self._done()

    def shared_audit(self, limit: int | None) -> list[str] | None:
        try:
            return self._redis().shared_audit(limit)
        finally:
            self._done()

    def revoke(self, token: str, until: float) -> None:
        try:
            self._redis().revoke(token, until)
        finally:
            self._done()

    def revoked(self, token: str) -> bool:
        try:
            return self._redis().revoked(token)
        finally:
            self._done()

    def followers(self) -> list[str] | None:
        try:
            return self._redis().followers()
        finally:
            self._done()

    def maintain(self) -> None:
        """Become the host's relay if nobody is (the follower thread calls this each second)."""
        if self._relay is None and not self._stop.is_set() and sys.platform != "win32":
            self._become_relay()

    def publish_follower(self, ident: str, record: str) -> None:
        self._mirror.publish_follower(ident, record)

    def withdraw_follower(self, ident: str) -> None:
        self._mirror.withdraw_follower(ident)

    def _done(self) -> None:
        """A process that is not the relay keeps no connection to Redis between uses."""
        if self._relay is None and not self._in_switch:
            self._commands.disconnect()

    # -- the host's copy ---------------------------------------------------------

    def _copy(self, state: State) -> None:
        """Write ``state`` to the runtime dir, unless it or a newer one is there (never back).

        The relay and a switcher of this host may both write it: under the copy's lock.
        """
        with self._mirror.lock(COPY_WAIT):
            self._mirror.revalidate()  # what another writer of this host may just have written
            known = self._mirror.current()
            if known is not None and (known == state or known.generation > state.generation):
                return
            self._mirror.write(state)

    # -- the relay -----------------------------------------------------------------

    def _become_relay(self) -> None:
        path = self.runtime_dir / RELAY_LOCK
        try:
            self.runtime_dir.mkdir(parents=True, exist_ok=True)
            fd = open_file(path, os.O_RDWR | os.O_CREAT, STATE_MODE)
        except OSError as exc:
            logger.debug("cannot open %s: %s", path, exc.strerror)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return
        self._relay_fd = fd
        # It knows what this host last knew: a state Redis lost is written back from it.
        known = self._mirror.current() or host_cache(self.runtime_dir, self._url)
        relay = RedisStateStore(
            self._url, lock_lease=self._lock_lease, known=known, client_name=self._name
        )
        relay.restart_after_fork = False  # a forked child is not the relay (see _after_fork)
        relay.on_state = self._copy
        relay.on_restored = self._restored
        # The host's list of followers lives while the relay polls Redis: each poll renews it.
        relay.renew_with_poll = (relay.host_key(self._host), int(HOST_TTL * 1000))
        relay.on_lapsed = self._republish.set
        self._relay = relay
        current = relay._cached  # what Redis (or nothing) says now
        if current is not None:
            self._copy(current)
        self._say_status()
        self._chores = threading.Thread(target=self._do_chores, name="dbswap-relay", daemon=True)
        self._chores.start()
        logger.info(
            "this process (pid %d) relays %s to %s", os.getpid(), relay.describe(), self.runtime_dir
        )

    def _restored(self, state: State, reason: str) -> None:
        hook = self.on_restored
        if hook is not None:
            hook(state, reason)

    def _do_chores(self) -> None:
        """The host's followers to Redis when one's record changes (a switch taken, a process
        come or gone: inotify on followers/, and a look every HOST_RENEW seconds where that
        misses something); the relay's polls renew the list meanwhile (``renew_with_poll``).
        The lock and the status now and then. Nothing while nothing happens."""
        directory = self.runtime_dir / FOLLOWERS_DIR
        try:
            directory.mkdir(parents=True, exist_ok=True)
            watcher: Watcher = DirectoryWatcher(directory, None, lambda: False, PRESENCE_EVENTS)
        except OSError:
            watcher = Watcher()  # no directory to watch: looks only
        look_at = status_at = 0.0
        try:
            while not self._stop.is_set():
                changed = watcher.wait(TICK)
                now = time.monotonic()
                try:
                    if changed or now >= look_at or self._republish.is_set():
                        self._publish_followers()
                        look_at = now + HOST_RENEW
                    if now >= status_at:
                        self._say_status()
                        self._carry_lock()
                        status_at = now + STATUS_EVERY
                except Exception as exc:  # the relay must go on, whatever happens
                    logger.error("the relay's chores failed: %s", exc)
        finally:
            watcher.close()

    def _publish_followers(self) -> None:
        """Set the host's list in Redis if it changed (or lapsed there)."""
        relay = self._relay
        found = self._mirror.followers()
        if relay is None or found is None:
            return
        records = sorted(found)
        lapsed = self._republish.is_set()
        self._republish.clear()
        if records != self._published or lapsed:
            self._published = records if relay.publish_host(self._host, records, HOST_TTL) else None

    def _carry_lock(self) -> None:
        """This host's production lock, announced fleet-wide (with a lease) while it holds."""
        relay = self._relay
        if relay is None:
            return
        reason = self._mirror.lock_holder()
        if reason is None and self._notice is not None:
            self._notice.withdraw()
            self._notice = None
        elif reason is not None and (self._notice is None or self._notice.reason != reason):
            if self._notice is not None:
                self._notice.withdraw()
            self._notice = LockNotice(
                relay._client, relay._prefix, reason, self._lock_lease, relay._errors
            )
            self._notice.start()

    def _say_status(self) -> None:
        relay = self._relay
        if relay is None:
            return
        try:
            lock = relay.lock_holder() if relay._reachable else None
        except SwitchLocked as exc:  # Redis did not answer: the members ask it themselves
            lock = None
            logger.debug("the relay could not read the production lock: %s", exc)
        status = {
            "pid": os.getpid(),
            "answered": relay._answered,
            "trouble": relay.trouble(),
            "lock": lock,
        }
        text = json.dumps(status, sort_keys=True)
        if text == self._status_said:
            return
        path = self.runtime_dir / RELAY_STATUS
        temporary = path.with_name(f".{RELAY_STATUS}.{os.getpid()}.tmp")
        with contextlib.suppress(OSError):
            fd = open_file(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, STATE_MODE)
            try:
                os.write(fd, text.encode("utf-8"))
            finally:
                os.close(fd)
            os.replace(temporary, path)
            self._status_said = text

    def _status(self) -> dict[str, Any]:
        try:
            status = json.loads(read_file(self.runtime_dir / RELAY_STATUS, 65536))
        except (OSError, ValueError):
            return {}
        return status if isinstance(status, dict) else {}

    def _relay_alive(self) -> bool:
        if self._relay is not None or sys.platform == "win32":
            return True
        try:
            fd = open_file(self.runtime_dir / RELAY_LOCK, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False  # nobody holds it exclusively: no relay
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    # -- the end ---------------------------------------------------------------------

    def close(self) -> None:
        self._stop.set()
        chores, self._chores = self._chores, None
        if chores is not None and chores is not threading.current_thread():
            chores.join(timeout=2)
        notice, self._notice = self._notice, None
        if notice is not None:
            notice.withdraw()
        relay, self._relay = self._relay, None
        if relay is not None:
            relay.withdraw_host(self._host)
            relay.close()
            with contextlib.suppress(OSError):
                os.unlink(self.runtime_dir / RELAY_STATUS)
        fd, self._relay_fd = self._relay_fd, None
        if fd is not None:
            os.close(fd)  # another process of the host takes over
        self._mirror.close()
        self._commands.close()

    def _after_fork(self) -> None:
        """A forked child is not the relay: its parent still is (the lock is the parent's)."""
        fd, self._relay_fd = self._relay_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # the parent's lock holds: it has the same open file
        self._relay, self._chores, self._notice = None, None, None
        self._status_said = None


_live: weakref.WeakSet[RelayedStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_live):
        store._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
