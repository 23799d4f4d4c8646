"""The Redis state store, for a fleet on several hosts (``DBSWAP_STATE=redis://...``).

The active target and its generation live in one Redis key. A switch holds a
lock with a lease (a dead switcher blocks the fleet for one lease at most),
writes the state only while it still holds that lock, and publishes it.
Every process keeps the last state it saw in memory, so reading it costs no
I/O: a background thread applies published states at once and re-reads the
key every ``poll_interval`` seconds, so a lost message still converges.

Redis may lose the key (a restart without persistence, FLUSHALL, eviction) or
go back to an older one (a stale snapshot). A process that knows a state keeps
it, never the default: it writes it back under the fleet's lock, one
generation higher (so generations never go backwards), and the board audits
that as ``restored``. Each host keeps the last state it saw in a small file
(``cache_dir``): a process that starts while Redis is down uses it, unconfirmed;
with none, it refuses sessions rather than guess. If Redis is unreachable,
processes keep their last known target (logged once), switches are refused,
and everything recovers when Redis returns. The audit trail is kept there too
(a capped list), so ``history()`` shows the whole fleet's switches, and so are
production-lock notices (keys with a TTL the listener refreshes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import socket
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ._errors import ConfigError, DBSwapError, SwitchLocked
from ._files import read_file
from ._masking import mask_text, mask_url
from ._redis_notice import LOCK_LEASE, LockNotice
from ._state import MAX_STATE_BYTES, STATE_MODE, Signal, State, StateUnreadable, _lock_reason
from ._watch import EventWatcher, Watcher

logger = logging.getLogger("dbswap")
SHARED_AUDIT_LINES = 10_000  # the fleet's audit list in Redis keeps the newest this many
HOST_CACHE_FILE = "db-target.redis-cache.json"  # this host's last state seen, in cache_dir
FOLLOWER_TTL = 3.0  # seconds a follower's record outlives its last heartbeat (SIGKILL...)

# The value only if it can be a state: a wrong type or a huge value is described, not sent.
_READ = """
local kind = redis.call('type', KEYS[1])['ok']
if kind == 'none' then return false end
if kind ~= 'string' then return {'a Redis ' .. kind .. ', not a string'} end
if redis.call('strlen', KEYS[1]) > tonumber(ARGV[1]) then
  return {'larger than ' .. ARGV[1] .. ' bytes'}
end
return redis.call('get', KEYS[1])
"""
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
# The first live production-lock notice; ids whose notice expired (dead holders) are dropped.
_LIVE_LOCK_NOTICE = """
for _, id in ipairs(redis.call('smembers', KEYS[1])) do
  local notice = redis.call('get', ARGV[1] .. id)
  if notice then return notice end
  redis.call('srem', KEYS[1], id)
end
return false
"""


class StateUnavailable(DBSwapError, ConnectionError):
    """No state to serve: Redis cannot answer and this host never saw one; sessions are refused."""


def split_prefix(url: str) -> tuple[str, str]:
    """``redis://h/0?prefix=app`` -> (``redis://h/0``, ``app``); the default prefix is dbswap."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), "dbswap") or "dbswap"
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    base = urlunsplit(parts._replace(query=rest))
    if parts.scheme == "unix" and not base.startswith("unix://"):
        base = "unix://" + base[len("unix:") :]  # urlunsplit drops the empty host's "//"
    return base, prefix


class RedisStateStore:
    """State in ``<prefix>:state``, lock in ``<prefix>:lock``, news on ``<prefix>:switched``.

    ``cache_dir``: where this host keeps the last state it saw (``from_env()``
    passes the runtime dir); without it, a process that starts while Redis is
    down has no state and refuses sessions.
    """

    def __init__(
        self,
        url: str,
        *,
        poll_interval: float = 1.0,
        lease: float = 15.0,
        lock_lease: float = LOCK_LEASE,
        socket_timeout: float = 2.0,
        cache_dir: str | os.PathLike[str] | None = None,
        listen: bool = True,
        known: State | None = None,
        client_name: str | None = None,
    ) -> None:
        """``listen=False``: commands only (no subscription, no thread, no state kept): what a
        process that reads the state from its host's relay (``_relay``) switches with.
        ``known``: the last state this host knew (instead of ``cache_dir``'s).
        ``client_name``: how its connections appear in ``CLIENT LIST`` (default
        ``dbswap:<prefix>:<host name>``)."""
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
            # One command connection, shared by this store's threads (a short wait at most),
            # and the listener's subscription: two per process, per host with a relay.
            pool = redis.BlockingConnectionPool.from_url(
                url,
                max_connections=2 if listen else 1,  # the subscription takes one of them
                timeout=socket_timeout,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                client_name=client_name or f"dbswap:{prefix}:{socket.gethostname()}",
            )
            self._client: Any = redis.Redis(connection_pool=pool)
        except ValueError as exc:
            raise ConfigError(f"bad DBSWAP_STATE URL {self._masked_url!r}: {exc}") from None
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._refused: type[BaseException] = redis.ResponseError  # it answered, with an error
        self._prefix = prefix
        self._state_key, self._lock_key = f"{prefix}:state", f"{prefix}:lock"
        self._audit_key = f"{prefix}:audit"
        self._notices_key = f"{prefix}:production-locks"
        self.channel = f"{prefix}:switched"
        self._read_script = self._client.register_script(_READ)
        self._write_script = self._client.register_script(_WRITE_IF_LOCKED)
        self._release_script = self._client.register_script(_RELEASE_IF_OWNED)
        self._notice_script = self._client.register_script(_LIVE_LOCK_NOTICE)
        self.poll_interval = poll_interval
        self.lease = lease
        self.lock_lease = lock_lease  # a production-lock notice's (see _redis_notice)
        self._host_cache = Path(cache_dir) / HOST_CACHE_FILE if cache_dir is not None else None
        # Called as (state, reason) after this process wrote back a state Redis had lost: the
        # board audits it. Without it nothing is written back (the state is only kept here).
        self.on_restored: Callable[[State, str], None] | None = None
        # Called with each new state this process learns (the host's relay mirrors it).
        self.on_state: Callable[[State], None] | None = None
        self.restart_after_fork = listen  # a relay's store stays with the parent (_relay)
        # (key, milliseconds): the listener's poll renews this key's TTL in the same round trip
        # (a relay's list of its host's followers); ``on_lapsed`` is called when it was gone.
        self.renew_with_poll: tuple[str, int] | None = None
        self.on_lapsed: Callable[[], None] | None = None
        self._version = memoryview(bytearray(8)).cast("Q")  # bumped when _cached changes
        self._version_lock = threading.Lock()
        self._watchers: weakref.WeakSet[EventWatcher] = weakref.WeakSet()
        self._cached: State | None = known or _read_host_cache(self._host_cache, prefix)
        self._from_host_cache = self._cached is not None
        self._answered = False  # Redis answered once: "no state" then means never switched
        self._trouble: str | None = None  # why the state Redis gave is not the one served
        self._warned: str | None = None  # the unusable value last warned about (a digest)
        self._warned_message = False
        self._cache_warned = False
        self._listener_failure: str | None = None
        self._lock_notice: LockNotice | None = None  # this process's production lock
        self._reachable = True
        self._down_because = "no answer"  # the error that made it unreachable, for messages
        self._thread_lock = threading.Lock()
        self._token: str | None = None
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        if listen:
            try:
                self._refresh()
            except self._errors as exc:
                self._set_reachable(False, exc)
            self._start_listener()
        _live_stores.add(self)

    def disconnect(self) -> None:
        """Close the idle connections (the client opens one again when next needed)."""
        with contextlib.suppress(*self._errors):
            self._client.connection_pool.disconnect()

    def describe(self) -> str:
        return f"Redis at {self._masked_url}"

    def trouble(self) -> str | None:
        if self._reachable:
            return self._trouble
        state, down = self._cached, f"{self.describe()} is unreachable ({self._down_because})"
        if state is None and not self._answered:
            return f"{down} and this host has no last known state: sessions are refused"
        if state is None:
            return f"{down}; keeping the default target (nothing was switched when it answered)"
        if self._from_host_cache:
            return f"{down}; using this host's last known state ({_shown(state)}), not confirmed"
        return f"{down}; keeping the last state seen ({_shown(state)})"

    # -- reading: no I/O on the hot path --------------------------------------

    def current(self) -> State | None:
        state = self._cached
        if state is None and not self._answered:
            raise StateUnavailable(
                f"the active target is unknown: {self.describe()} has not answered and this "
                f"host has no last known state ({self._host_cache or 'no cache_dir'}); "
                "sessions are refused until Redis answers, rather than guess a database"
            )
        return state

    def signal(self) -> tuple[Signal, float] | None:
        return self._version, math.inf  # the listener keeps _cached fresh: no deadline

    def _cache(self, state: State) -> None:
        with self._version_lock:
            cached = self._cached
            if state == cached or (cached is not None and state.generation < cached.generation):
                return  # nothing new, or older than what we know: generations never go back
            self._cached = state
            self._version[0] = (self._version[0] + 1) % 2**64
        for watcher in list(self._watchers):
            watcher.event.set()  # follower threads: look now
        self._save_host_cache(state)
        if self.on_state is not None:
            try:
                self.on_state(state)
            except Exception as exc:  # the listener must go on
                logger.error("passing on a new state failed: %s", exc)

    def _settle(self, state: State | None) -> None:
        """Redis gave a usable state (or none, never switched): it is the one served."""
        self._trouble, self._warned, self._from_host_cache = None, None, False
        if state is not None:
            self._cache(state)

    def read(self) -> State | None:
        try:
            return self._refresh(strict=True)
        except self._errors as exc:
            raise self._unreachable_error(exc) from None

    def _refresh(self, strict: bool = False) -> State | None:
        """Read the key and follow it; ``strict`` (holding the lock): write back a lost state."""
        reply = self._read_script(keys=[self._state_key], args=[MAX_STATE_BYTES])
        return self._follow(reply, strict)

    def _poll(self) -> None:
        """The listener's look at the key, now and then, and the renewal it carries."""
        renew = self.renew_with_poll
        if renew is None:
            self._refresh()
            return
        pipe = self._client.pipeline(transaction=False)
        self._read_script(keys=[self._state_key], args=[MAX_STATE_BYTES], client=pipe)
        pipe.pexpire(*renew)
        reply, renewed = pipe.execute()
        self._follow(reply)
        if not renewed and self.on_lapsed is not None:
            self.on_lapsed()

    def _follow(self, reply: Any, strict: bool = False) -> State | None:
        self._answered = True
        self._set_reachable(True)
        known = self._cached
        if reply is None:
            if known is None:
                self._settle(None)  # never switched: the default target is right
                return None
            return self._lost(known, "the state key is missing", strict)
        state, reason = _parse(reply)
        if state is None:
            self._unusable(reply, reason)
            if strict:
                raise StateUnreadable(self._state_key)
            return known
        if known is not None and state.generation < known.generation:
            return self._lost(
                known, f"the state went back to generation {state.generation}", strict
            )
        self._settle(state)
        return state

    def _lost(self, known: State, why: str, strict: bool) -> State:
        """Redis lost the state we know: keep serving it, and write it back."""
        self._trouble = (
            f"{why} in {self.describe()} (a restart without persistence, FLUSHALL, eviction, "
            f"an old snapshot?); keeping {_shown(known)} until it is written back"
        )
        if strict:
            return self._restore(known, why)
        if self.on_restored is not None:
            try:
                with self.lock(0):  # as a switch does: one process writes it back, once
                    self._refresh(strict=True)
            except (SwitchLocked, StateUnreadable):
                pass  # a switch is under way (it writes a newer state), or the key changed
        return self._cached or known

    def _restore(self, known: State, why: str) -> State:
        """Under the lock: write ``known`` back one generation higher, and have it audited."""
        hook = self.on_restored
        if hook is None:
            return known  # nobody would audit it; a switch continues from it anyway
        restored = replace(known, generation=known.generation + 1)
        self.write(restored)
        logger.warning(
            "%s in %s; wrote back %s from this process's last state",
            why,
            self.describe(),
            _shown(restored),
        )
        hook(restored, f"{why} in Redis; written back from the last state seen by this process")
        return restored

    def _unusable(self, reply: bytes | list[bytes], reason: str) -> None:
        known = self._cached
        keeping = f"keeping {_shown(known)}" if known else "using the default target"
        self._trouble = (
            f"the state in {self.describe()} is unusable ({reason}); {keeping} until the "
            "next switch rewrites it"
        )
        digest = (
            reason
            if isinstance(reply, list)
            else hashlib.blake2b(reply, digest_size=16).hexdigest()
        )
        if digest != self._warned:  # once per bad value, not once per poll
            self._warned = digest
            # An error when it means serving a target nobody chose.
            (logger.warning if known else logger.error)("%s", self._trouble)

    def _accept_published(self, raw: bytes) -> None:
        if len(raw) > MAX_STATE_BYTES:
            state, reason = None, f"larger than {MAX_STATE_BYTES} bytes"
        else:
            state, reason = _parse(raw)
        if state is None:
            if not self._warned_message:
                self._warned_message = True
                logger.warning("ignoring a message on %s: not a state (%s)", self.channel, reason)
            return
        cached = self._cached
        if cached is None or state.generation > cached.generation:
            self._settle(state)

    def _set_reachable(self, reachable: bool, error: BaseException | None = None) -> None:
        if reachable == self._reachable:
            return
        self._reachable = reachable
        if reachable:
            logger.warning("%s is reachable again", self.describe())
            return
        self._down_because = _why(error) if error else "no answer"
        state = self._cached
        if state is None and not self._answered:
            serving = "this host has no last known state: sessions are refused"
        elif state is None:
            serving = "keeping the default target"
        elif self._from_host_cache:
            serving = f"using this host's last known state ({_shown(state)})"
        else:
            serving = f"keeping {state.target}"
        logger.warning(
            "%s is unreachable (%s); %s; switches are refused until it returns",
            self.describe(),
            self._down_because,
            serving,
        )

    # -- this host's last state, for a start without Redis -------------------

    def _save_host_cache(self, state: State) -> None:
        path = self._host_cache
        if path is None:
            return
        try:
            saved = _read_host_cache(path, self._prefix)
            if saved is not None and saved.generation > state.generation:
                return  # another process of this host saw a newer one
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".db-target-cache.", suffix=".tmp", dir=path.parent)
            try:
                os.fchmod(fd, STATE_MODE)
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(f'{{"prefix": {json.dumps(self._prefix)}, "state": {state.to_json()}}}')
                os.replace(tmp, path)  # atomic: a reader sees the old file or the new one
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            if not self._cache_warned:
                self._cache_warned = True
                logger.warning(
                    "cannot keep this host's last state in %s (%s): a process that starts "
                    "while Redis is down will refuse sessions",
                    path,
                    exc.strerror or type(exc).__name__,
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
                    # Awake for the poll only (a relay per host idles here); close() waits 2 s.
                    wait = max(0.0, min(next_poll - time.monotonic(), 1.0))
                    message = pubsub.get_message(timeout=wait)
                    if message is not None and message.get("type") == "message":
                        self._accept_published(message["data"])
                    if time.monotonic() >= next_poll:
                        self._poll()
                        next_poll = time.monotonic() + self.poll_interval
            except self._refused as exc:  # Redis answered with an error: not an outage
                self._trouble = f"{self.describe()} refused a command ({_why(exc)})"
                self._listener_failed(exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, self.poll_interval)
            except self._errors as exc:
                if was_connected:  # a dropped connection: reconnect at once before calling it down
                    was_connected = False
                    continue
                self._set_reachable(False, exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, self.poll_interval)
            except Exception as exc:  # a bug, or input nobody foresaw: the thread must go on
                self._listener_failed(exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, self.poll_interval)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(*self._errors):
                        pubsub.close()

    def _listener_failed(self, exc: BaseException) -> None:
        """Log a listener failure once (not once per poll); the loop goes on."""
        key = f"{type(exc).__name__}: {exc}"
        if key != self._listener_failure:
            self._listener_failure = key
            logger.error(
                "the Redis listener of %s failed (%s); it goes on",
                self.describe(),
                _why(exc),
                exc_info=not isinstance(exc, self._errors),  # a bug: show where
            )

    # -- the production lock, seen by the whole fleet --------------------------

    def announce_lock(self, reason: str) -> None:
        """A notice key with a lease, renewed by its own thread: it ends with this process."""
        if self._lock_notice is None:
            self._lock_notice = LockNotice(
                self._client, self._prefix, reason, self.lock_lease, self._errors
            )
            self._lock_notice.start()

    def lock_holder(self) -> str | None:
        if not self._reachable:
            return None  # switches are refused anyway; status says the state is unconfirmed
        try:
            raw = self._notice_script(
                keys=[self._notices_key], args=[f"{self._prefix}:production-lock:"]
            )
        except self._errors as exc:
            raise SwitchLocked(
                f"cannot tell whether a process holds the production lock ({self.describe()}: "
                f"{_why(exc)}); switching is refused"
            ) from None
        return None if raw is None else _lock_reason(raw)

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
                except self._errors as exc:
                    raise self._unreachable_error(exc) from None
                if acquired:
                    self._set_reachable(True)  # before lock_holder(): it trusts a known outage
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
                    self._release_script(keys=[self._lock_key], args=[token])
        finally:
            self._thread_lock.release()

    def stage(self, state: State) -> None:
        return None  # one atomic script does the whole write

    def unstage(self) -> None:
        return None

    def write(self, state: State) -> None:
        try:
            written = self._write_script(
                keys=[self._state_key, self._lock_key],
                args=[state.to_json(), self._token or "", self.channel],
            )
        except self._errors as exc:
            raise self._unreachable_error(exc) from None
        if not written:
            raise SwitchLocked(
                f"the switch took longer than the lock's lease ({self.lease:g} s) and "
                "another switch may have started; nothing was written, try again"
            )
        self._settle(state)

    # -- the fleet's audit trail ------------------------------------------------

    def watcher(self) -> Watcher:
        watcher = EventWatcher()
        self._watchers.add(watcher)
        return watcher

    def revalidate(self) -> None:
        return None  # the listener keeps the state fresh

    def publish_follower(self, ident: str, record: str) -> None:
        key = f"{self._prefix}:follower:{ident}"
        with contextlib.suppress(*self._errors):  # away: the next heartbeat tries again
            self._client.set(key, record, px=int(FOLLOWER_TTL * 1000))

    def withdraw_follower(self, ident: str) -> None:
        with contextlib.suppress(*self._errors):
            self._client.delete(f"{self._prefix}:follower:{ident}")

    def followers(self) -> list[str] | None:
        """Every process's record: its own key, or in its host's list (a relay's)."""
        try:
            own = list(self._client.scan_iter(match=f"{self._prefix}:follower:*", count=1000))
            hosts = list(self._client.scan_iter(match=f"{self._prefix}:host:*", count=1000))
            values = self._client.mget(own) if own else []
            lists = self._client.mget(hosts) if hosts else []
        except self._errors:
            return None
        records = [v.decode("utf-8", "replace") for v in values if v is not None]
        for raw in lists:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                records.extend(str(r) for r in json.loads(raw))
        return records

    def host_key(self, host: str) -> str:
        return f"{self._prefix}:host:{host}"

    def publish_host(self, host: str, records: list[str], ttl: float) -> bool:
        """A relay's list of its host's followers (``ttl``: it lapses with the relay)."""
        try:
            self._client.set(self.host_key(host), json.dumps(records), px=int(ttl * 1000))
        except self._errors:
            return False
        return True

    def withdraw_host(self, host: str) -> None:
        with contextlib.suppress(*self._errors):
            self._client.delete(self.host_key(host))

    def maintain(self) -> None:
        return None  # the listener thread does everything

    def revoke(self, token: str, until: float) -> None:
        ttl = max(1, math.ceil((until - time.time()) * 1000))
        try:
            self._client.set(f"{self._prefix}:revoked:{token}", "1", px=ttl)
        except self._errors as exc:
            raise self._unreachable_error(exc) from None

    def revoked(self, token: str) -> bool:
        try:
            return bool(self._client.exists(f"{self._prefix}:revoked:{token}"))
        except self._errors:
            return True  # cannot tell: refuse the token

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

    def _unreachable_error(self, error: BaseException | None = None) -> SwitchLocked:
        refused = error is not None and isinstance(error, self._refused)
        if not refused:
            self._set_reachable(False, error)
        return SwitchLocked(
            f"the state store ({self.describe()}) "
            + ("refused a command" if refused else "is unreachable")
            + (f" ({_why(error)})" if error is not None else "")
            + "; switching is refused until it works again (the app keeps its current target)"
        )

    def close(self) -> None:
        """Stop the listener thread, withdraw a lock notice and close the connections."""
        self._stop.set()
        if self._listener is not None and self._listener is not threading.current_thread():
            self._listener.join(timeout=2)
        notice, self._lock_notice = self._lock_notice, None
        if notice is not None:
            notice.withdraw()
        with contextlib.suppress(*self._errors):
            self._client.close()

    def _restart_after_fork(self) -> None:
        # The parent's listener thread does not exist in the child; the pool reconnects itself.
        if not self.restart_after_fork:
            return
        self._thread_lock = threading.Lock()
        self._version_lock = threading.Lock()
        if self._lock_notice is not None:  # the child's own notice, with its own pid
            self._lock_notice = self._lock_notice.for_child()
        if not self._stop.is_set():
            self._start_listener()


def _parse(raw: bytes | list[bytes]) -> tuple[State | None, str]:
    """(the state, "") or (None, why not); a list is the read script's verdict on the value."""
    if isinstance(raw, list):
        return None, raw[0].decode("utf-8", "replace") if raw else "unreadable"
    try:
        return State.from_json(raw.decode("utf-8")), ""
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except ValueError as exc:
        return None, str(exc)


def host_cache(directory: Path, url: str) -> State | None:
    """The last state a (non-relayed) process of this host saw for ``url``'s prefix, if any."""
    return _read_host_cache(directory / HOST_CACHE_FILE, split_prefix(url)[1])


def _read_host_cache(path: Path | None, prefix: str) -> State | None:
    """The state this host last saw for ``prefix``; None if none (or unusable)."""
    if path is None:
        return None
    try:
        saved = json.loads(read_file(path, MAX_STATE_BYTES + 1))  # never through a link
        if saved.get("prefix") != prefix:
            return None  # another fleet's state in the same directory
        return State.from_json(json.dumps(saved["state"]))
    except (OSError, ValueError, RecursionError, AttributeError, KeyError, TypeError):
        return None


def _shown(state: State) -> str:
    return f"{state.target!r}, generation {state.generation}"


def _why(exc: BaseException) -> str:
    """One short masked line: the error's type and the first line of its message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return mask_text(f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__)


_live_stores: weakref.WeakSet[RedisStateStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_live_stores):
        store._restart_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
