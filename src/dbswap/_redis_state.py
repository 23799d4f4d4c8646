"""The Redis state store, for a fleet on several hosts (``DBSWAP_STATE=redis://...``).

The active target and its generation live in one Redis key. A switch holds a
lock with a lease (a dead switcher blocks the fleet for one lease at most),
writes the state only while it still holds that lock, and publishes it.
Every process keeps the last state it saw in memory, so reading it costs no
I/O: a background thread applies published states at once and re-reads the
key every ``poll_interval`` seconds, so a lost message still converges. If
Redis is unreachable, processes keep their last known target (logged once),
switches are refused, and everything recovers when Redis returns. The audit
trail is kept there too (a capped list), so ``history()`` shows the whole
fleet's switches, not one host's.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ._errors import ConfigError, SwitchLocked
from ._masking import mask_url
from ._state import Signal, State, StateUnreadable

logger = logging.getLogger("dbswap")
SHARED_AUDIT_LINES = 10_000  # the fleet's audit list in Redis keeps the newest this many

# Write only while holding the lock (fencing), and publish in the same step.
_WRITE_IF_LOCKED = """
if redis.call('get', KEYS[2]) ~= ARGV[2] then return 0 end
redis.call('set', KEYS[1], ARGV[1])
redis.call('publish', ARGV[3], ARGV[1])
return 1
"""
_RELEASE_IF_OWNED = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def split_prefix(url: str) -> tuple[str, str]:
    """``redis://h/0?prefix=app`` -> (``redis://h/0``, ``app``); the default prefix is dbswap."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), "dbswap") or "dbswap"
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


class RedisStateStore:
    """State in ``<prefix>:state``, lock in ``<prefix>:lock``, news on ``<prefix>:switched``."""

    def __init__(
        self,
        url: str,
        *,
        poll_interval: float = 1.0,
        lease: float = 15.0,
        socket_timeout: float = 2.0,
    ) -> None:
        try:
            import redis
        except ImportError:
            raise ConfigError(
                "DBSWAP_STATE is a Redis URL but redis is not installed; "
                "pip install 'dbswap[redis]'"
            ) from None
        url, prefix = split_prefix(url)
        self._masked_url = mask_url(url)
        try:
            self._client: Any = redis.Redis.from_url(
                url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
            )
        except ValueError as exc:
            raise ConfigError(f"bad DBSWAP_STATE URL {self._masked_url!r}: {exc}") from None
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._state_key, self._lock_key = f"{prefix}:state", f"{prefix}:lock"
        self._audit_key = f"{prefix}:audit"
        self.channel = f"{prefix}:switched"
        self.poll_interval = poll_interval
        self.lease = lease
        self._cached: State | None = None
        self._version = memoryview(bytearray(8)).cast("Q")  # bumped when _cached changes
        self._version_lock = threading.Lock()
        self._reachable = True
        self._thread_lock = threading.Lock()
        self._token: str | None = None
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        with contextlib.suppress(*self._errors):
            self._refresh()
        self._start_listener()
        _live_stores.add(self)

    def describe(self) -> str:
        return f"Redis at {self._masked_url}"

    # -- reading: no I/O on the hot path --------------------------------------

    def current(self) -> State | None:
        return self._cached

    def signal(self) -> tuple[Signal, float] | None:
        return self._version, math.inf  # the listener keeps _cached fresh: no deadline

    def _cache(self, state: State | None) -> None:
        if state == self._cached:
            return  # a poll that found nothing new must not look like a change
        self._cached = state
        with self._version_lock:
            self._version[0] = (self._version[0] + 1) % 2**64

    def read(self) -> State | None:
        try:
            return self._refresh(strict=True)
        except self._errors:
            raise self._unreachable_error() from None

    def _refresh(self, strict: bool = False) -> State | None:
        raw = self._client.get(self._state_key)
        self._set_reachable(True)
        state = self._parse(raw) if raw is not None else None
        self._cache(state)
        if strict and raw is not None and state is None:
            raise StateUnreadable(self._state_key)
        return state

    def _parse(self, raw: bytes | str) -> State | None:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        try:
            return State.from_json(text)
        except ValueError as exc:
            logger.warning("the state in %s is unusable (%s)", self.describe(), exc)
            return None

    def _accept_published(self, raw: bytes | str) -> None:
        state = self._parse(raw)
        cached = self._cached
        if state is not None and (cached is None or state.generation > cached.generation):
            self._cache(state)

    def _set_reachable(self, reachable: bool, error: BaseException | None = None) -> None:
        if reachable == self._reachable:
            return
        self._reachable = reachable
        if reachable:
            logger.warning("%s is reachable again", self.describe())
        else:
            target = self._cached.target if self._cached else "the default target"
            logger.warning(
                "%s is unreachable (%s); keeping %s and refusing switches until it returns",
                self.describe(),
                type(error).__name__ if error else "no answer",
                target,
            )

    # -- the listener thread -------------------------------------------------

    def _start_listener(self) -> None:
        self._stop = threading.Event()
        self._listener = threading.Thread(
            target=self._listen, name="dbswap-redis-listener", daemon=True
        )
        self._listener.start()

    def _listen(self) -> None:
        stop, backoff, was_connected = self._stop, 0.05, False
        while not stop.is_set():
            pubsub: Any = None
            try:
                pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                self._refresh()  # catch up on whatever was missed while away
                backoff, was_connected = 0.05, True
                next_poll = time.monotonic() + self.poll_interval
                while not stop.is_set():
                    wait = max(0.0, min(next_poll - time.monotonic(), 0.5))
                    message = pubsub.get_message(timeout=wait)
                    if message is not None and message.get("type") == "message":
                        self._accept_published(message["data"])
                    if time.monotonic() >= next_poll:
                        self._refresh()
                        next_poll = time.monotonic() + self.poll_interval
            except self._errors as exc:
                if was_connected:  # a dropped connection: reconnect at once before calling it down
                    was_connected = False
                    continue
                self._set_reachable(False, exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, self.poll_interval)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(*self._errors):
                        pubsub.close()

    # -- writing -------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, timeout: float) -> Iterator[None]:
        if not self._thread_lock.acquire(timeout=timeout):
            raise SwitchLocked("another switch is in progress in this process; try again")
        try:
            token = uuid.uuid4().hex
            deadline = time.monotonic() + timeout
            while True:
                try:
                    acquired = self._client.set(
                        self._lock_key, token, nx=True, px=int(self.lease * 1000)
                    )
                except self._errors:
                    raise self._unreachable_error() from None
                if acquired:
                    break
                if time.monotonic() >= deadline:
                    raise SwitchLocked(
                        "another switch holds the fleet's lock in Redis; try again "
                        f"(a crashed switcher's lock expires after {self.lease:g} s)"
                    )
                time.sleep(0.02)
            self._token = token
            try:
                yield
            finally:
                self._token = None
                with contextlib.suppress(*self._errors):
                    self._client.eval(_RELEASE_IF_OWNED, 1, self._lock_key, token)
        finally:
            self._thread_lock.release()

    def stage(self, state: State) -> None:
        return None  # one atomic script does the whole write

    def unstage(self) -> None:
        return None

    def write(self, state: State) -> None:
        try:
            written = self._client.eval(
                _WRITE_IF_LOCKED,
                2,
                self._state_key,
                self._lock_key,
                state.to_json(),
                self._token or "",
                self.channel,
            )
        except self._errors:
            raise self._unreachable_error() from None
        if not written:
            raise SwitchLocked(
                f"the switch took longer than the lock's lease ({self.lease:g} s) and "
                "another switch may have started; nothing was written, try again"
            )
        self._cache(state)

    # -- the fleet's audit trail ------------------------------------------------

    def share_audit(self, line: str) -> None:
        """Push the line on a capped list every host reads; the local file has it anyway."""
        if not self._reachable:
            return  # known down: do not make a refused switch wait for a timeout
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.lpush(self._audit_key, line)
            pipe.ltrim(self._audit_key, 0, SHARED_AUDIT_LINES - 1)
            pipe.execute()
        except self._errors as exc:
            logger.warning(
                "cannot add to the fleet's audit trail in %s (%s); this host's audit file has "
                "the line",
                self.describe(),
                type(exc).__name__,
            )

    def shared_audit(self, limit: int | None) -> list[str] | None:
        """The fleet's newest lines; None when Redis cannot answer (use this host's file)."""
        if not self._reachable:
            return None
        if limit == 0:
            return []
        end = -1 if limit is None else limit - 1
        try:
            raw = self._client.lrange(self._audit_key, 0, end)
        except self._errors as exc:
            logger.warning(
                "cannot read the fleet's audit trail from %s (%s); showing this host's",
                self.describe(),
                type(exc).__name__,
            )
            return None
        return [
            item.decode("utf-8", "replace") if isinstance(item, bytes) else item for item in raw
        ]

    def _unreachable_error(self) -> SwitchLocked:
        self._set_reachable(False)
        return SwitchLocked(
            f"the state store ({self.describe()}) is unreachable; switching is refused "
            "until it returns (the app keeps its current target)"
        )

    def close(self) -> None:
        """Stop the listener thread and close the connections."""
        self._stop.set()
        if self._listener is not None and self._listener is not threading.current_thread():
            self._listener.join(timeout=2)
        with contextlib.suppress(*self._errors):
            self._client.close()

    def _restart_after_fork(self) -> None:
        # The parent's listener thread does not exist in the child; the pool reconnects itself.
        self._thread_lock = threading.Lock()
        self._version_lock = threading.Lock()
        if not self._stop.is_set():
            self._start_listener()


_live_stores: weakref.WeakSet[RedisStateStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_live_stores):
        store._restart_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
