"""Engines per target and mode, created lazily: one Engine (and, on demand, one AsyncEngine).

Creating an engine opens no connection; the first session or health check
does. When the board switches away from a target, that target is *retired*:
its idle pooled connections are closed at once, and each connection still in
use is closed when its session gives it back, so nothing stays open to an
inactive database. Switching back un-retires it and reuses the engine.

Retiring *parks* an engine: it hands out a pool that closes every connection
given back to it, and its previous pool gets the same check-in listener. The
listener lives only on those pools: the pool of an active target has none,
because SQLAlchemy's check-in dispatch alone costs a SQLite query ~0.9 %.
Un-parking gives the engine a clean pool made when it was parked.

A target used read-only gets a second engine with its own pool, whose
connections are put in the server's own read-only mode once, when they are
opened; its errors that are the server's refusal become ``ReadOnlyTarget``.
So a pooled connection never carries one mode into a session of the other,
and no session of either mode pays anything per checkout. Switching the
active target from one mode to the other releases the old mode's pool.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, ExceptionContext
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, Pool, SingletonThreadPool

from ._errors import ConfigError, ReadOnlyTarget
from ._targets import Target, check_seconds

if TYPE_CHECKING:  # asyncio is imported only where an asyncio engine is made or used
    import asyncio
    import concurrent.futures

    from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger("dbswap")

CONNECT_TIMEOUT = 10  # seconds; the health check has its own, shorter, deadline
POOL_SIZE = 10  # idle connections a pool keeps (SQLAlchemy's default is 5), unless set

_ASYNC_DRIVERS = {
    "sqlite": "aiosqlite",
    "postgresql": "psycopg",
    "mysql": "aiomysql",
    "mariadb": "aiomysql",
}
_ASYNC_READY = {"aiosqlite", "psycopg", "asyncpg", "aiomysql", "asyncmy", "psycopg_async"}
# Drivers that only work under asyncio: a synchronous engine cannot use them.
_ASYNC_ONLY = _ASYNC_READY - {"psycopg"}
# The name each driver gives its connect timeout (asyncpg and pg8000 refuse libpq's).
_TIMEOUT_ARGUMENT = {
    "psycopg": "connect_timeout",
    "psycopg_async": "connect_timeout",
    "psycopg2": "connect_timeout",
    "asyncpg": "timeout",
    "pg8000": "timeout",
    "pymysql": "connect_timeout",
    "aiomysql": "connect_timeout",
    "asyncmy": "connect_timeout",
    "mysqldb": "connect_timeout",
    "mysqlconnector": "connection_timeout",
}


def is_async_only(url: URL) -> bool:
    """Whether the URL names a driver that works only under asyncio (asyncpg, aiosqlite...)."""
    return url.get_driver_name() in _ASYNC_ONLY


def async_url(url: URL) -> URL:
    """The asyncio flavour of a URL (``sqlite`` -> ``sqlite+aiosqlite`` ...)."""
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if driver in _ASYNC_READY:
        return url
    async_driver = _ASYNC_DRIVERS.get(backend)
    return url.set(drivername=f"{backend}+{async_driver}") if async_driver else url


def _connect_args(url: URL) -> dict[str, Any]:
    """A connect timeout, under the name the URL's driver takes (if we know it)."""
    if url.get_backend_name() == "sqlite":
        return {}
    argument = _TIMEOUT_ARGUMENT.get(url.get_driver_name())
    if argument is None or argument in url.query:
        return {}
    return {argument: CONNECT_TIMEOUT}


# (enter read-only, leave read-only) per backend: the server enforces it, not SQL parsing.
_MODE_SQL = {
    "postgresql": (
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    ),
    "mysql": ("SET SESSION TRANSACTION READ ONLY", "SET SESSION TRANSACTION READ WRITE"),
    "mariadb": ("SET SESSION TRANSACTION READ ONLY", "SET SESSION TRANSACTION READ WRITE"),
    "sqlite": ("PRAGMA query_only = ON", "PRAGMA query_only = OFF"),
}


def _is_read_only_refusal(error: BaseException | None) -> bool:
    """The server's own "you are read-only" error, per driver."""
    if error is None:
        return False
    if getattr(error, "sqlstate", None) == "25006":  # psycopg: read_only_sql_transaction
        return True
    args = getattr(error, "args", ())
    if args and args[0] == 1792:  # MySQL/MariaDB: ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
        return True
    if getattr(error, "sqlite_errorcode", None) == 8:  # SQLITE_READONLY
        return True
    return "readonly database" in str(error) or "READ ONLY transaction" in str(error)


def is_memory_sqlite(url: URL) -> bool:
    """An in-memory SQLite database lives in its connections: never close or re-open them."""
    if url.get_backend_name() != "sqlite":
        return False
    database = url.database or ""
    return (
        database in ("", ":memory:")
        or url.query.get("mode") == "memory"
        or ("mode=memory" in database)
    )


Key = tuple[str, bool]  # (target name, read-only?)


class _Retirer:
    """One thread per process retires the targets whose grace has passed.

    Not a timer thread per retire: a fleet switching ten times a second would
    start forty threads a second, and a switch back within the grace costs nothing.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._due: dict[tuple[int, str], tuple[float, weakref.ReferenceType[EngineCache]]] = {}
        self._thread: threading.Thread | None = None
        self._wakes_at = math.inf  # when the thread wakes by itself (monotonic)

    def schedule(self, cache: EngineCache, name: str, at: float) -> None:
        with self._condition:
            self._due[(id(cache), name)] = (at, weakref.ref(cache))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dbswap-retire", daemon=True)
                self._thread.start()
            # Woken only for a sooner deadline: a fleet switching back and forth within the
            # grace cancels and schedules on every switch, and the thread sleeps through it.
            if at < self._wakes_at:
                self._condition.notify()

    def cancel(self, cache: EngineCache, name: str) -> None:
        with self._condition:
            self._due.pop((id(cache), name), None)

    def _run(self) -> None:
        while True:
            with self._condition:
                while True:
                    now = time.monotonic()
                    due = [key for key, (at, _) in self._due.items() if at <= now]
                    if due:
                        ready = [(key[1], self._due.pop(key)[1]) for key in due]
                        break
                    self._wakes_at = min((at for at, _ in self._due.values()), default=math.inf)
                    self._condition.wait(
                        None if self._wakes_at == math.inf else self._wakes_at - now
                    )
            for name, ref in ready:
                cache = ref()
                if cache is not None:
                    try:
                        cache._retire_now(name, scheduled=True)
                    except Exception as exc:  # the thread must go on
                        logger.error("retiring %r failed: %s", name, exc)

    def after_fork_in_child(self) -> None:
        self._condition = threading.Condition()
        self._due.clear()
        self._thread = None
        self._wakes_at = math.inf


_retirer = _Retirer()


class EngineCache:
    """Engines keyed by target name and mode; safe to use from many threads."""

    def __init__(
        self,
        engine_options: Mapping[str, Any] | None = None,
        retire_grace: float = 0.0,
        target_options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self._options = dict(engine_options or {})
        self._target_options = {name: dict(o) for name, o in (target_options or {}).items()}
        # Seconds a target's pool survives being switched away from: a quick switch back
        # finds it warm (no reconnect storm, no new pool); 0 closes its connections at once.
        self.retire_grace = check_seconds(retire_grace, "retire_grace", zero_ok=True)
        self._retire_lock = threading.Lock()
        self._retiring: set[str] = set()  # switched away from, within their grace
        self._lock = threading.Lock()
        self._sync: dict[Key, Engine] = {}
        self._async: dict[Key, AsyncEngine] = {}
        self._loops: dict[str, weakref.ReferenceType[asyncio.AbstractEventLoop]] = {}
        # asyncio pool disposals scheduled by retires, still running
        self._disposals: set[asyncio.Future[None] | concurrent.futures.Future[None]] = set()
        self._retired: set[str] = set()
        self._parked: dict[Engine, Pool] = {}  # a retired engine -> its pool for coming back
        self._park_lock = threading.Lock()
        # (name, is_async, read_only) -> the Engine a pinned session binds to
        self._binds: dict[tuple[str, bool, bool], Engine] = {}
        self.epoch = 0  # grows whenever engines handed out before may no longer be used
        self.on_new_epoch: Callable[[], None] | None = None  # the board drops its fast pins
        _live_caches.add(self)

    def bind(self, target: Target, is_async: bool, read_only: bool) -> Engine:
        """The Engine a pinned session uses (one dict lookup when warm)."""
        key = (target.name, is_async, read_only)
        engine = self._binds.get(key)
        if engine is None:
            if is_async:
                engine = self.async_(target, read_only=read_only).sync_engine
            else:
                engine = self.sync(target, read_only)
            self._binds[key] = engine
        return engine

    def sync(self, target: Target, read_only: bool = False) -> Engine:
        key = (target.name, read_only)
        engine = self._sync.get(key)
        if engine is None:
            with self._lock:
                engine = self._sync.get(key)
                if engine is None:
                    engine = self._sync[key] = self._create(target, read_only)
                    if target.name in self._retired:
                        self._close_idle(self._park(engine))
        return engine

    def async_(
        self,
        target: Target,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        read_only: bool = False,
    ) -> AsyncEngine:
        key = (target.name, read_only)
        engine = self._async.get(key)
        if engine is None:
            with self._lock:
                engine = self._async.get(key)
                if engine is None:
                    if read_only:  # the board refuses first; this guards any other way in
                        check_read_only_possible(target)
                    engine = self._create_async(target, read_only)
                    if loop is None:
                        loop = _running_loop()
                    if loop is not None:
                        self._loops[target.name] = weakref.ref(loop)
                    self._async[key] = engine
                    if target.name in self._retired:
                        self._park(engine.sync_engine)  # new: nothing idle to close yet
        return engine

    def private_async(self, target: Target, read_only: bool) -> AsyncEngine:
        """A throw-away asyncio engine without a pool, for a check on a private event loop.

        What synchronous code (the CLI, ``board.check()``) checks an asyncio-only
        driver (asyncpg, aiosqlite, ...) with: nothing of it outlives its loop.
        """
        if read_only:
            check_read_only_possible(target)
        return self._create_async(target, read_only, poolclass=NullPool)

    def _create_async(self, target: Target, read_only: bool, **extra: Any) -> AsyncEngine:
        from sqlalchemy.ext.asyncio import create_async_engine

        url = async_url(target.sa_url)
        options = _pool_default(self._options_for(target) | extra, url)
        options["connect_args"] = _connect_args(url) | options.get("connect_args", {})
        engine = create_async_engine(url, **options)
        _label_connections(engine.sync_engine, target.name, read_only)
        if read_only:
            _make_read_only(engine.sync_engine, target)
        return engine

    def _options_for(self, target: Target) -> dict[str, Any]:
        return self._options | self._target_options.get(target.name, {})

    def on_app_loop(
        self, target: Target, read_only: bool
    ) -> tuple[AsyncEngine, asyncio.AbstractEventLoop] | None:
        """If the app uses asyncio sessions: ``target``'s asyncio engine and the app's loop.

        None when no app loop runs, when called on that loop (it cannot be waited
        for there), or when the target has no asyncio driver.
        """
        loops = (ref() for ref in list(self._loops.values()))
        loop = next((lp for lp in loops if lp is not None and lp.is_running()), None)
        if loop is None or _running_loop() is loop:
            return None
        try:
            return self.async_(target, loop, read_only=read_only), loop
        except Exception as exc:  # e.g. no asyncio driver installed: check the sync way
            logger.debug("no asyncio engine for %r: %s", target.name, exc)
            return None

    def created(self, name: str) -> bool:
        return any(key[0] == name for key in [*self._sync, *self._async])

    def _create(self, target: Target, read_only: bool) -> Engine:
        if read_only:
            check_read_only_possible(target)
        url = target.sa_url
        if is_async_only(url):
            raise ConfigError(
                f"target {target.name!r} uses {url.get_driver_name()}, an asyncio-only driver: "
                "use board.async_sessionmaker() or board.async_engine_for(), or give the "
                "target a URL with a synchronous driver for synchronous sessions"
            )
        options = self._options_for(target)
        if is_memory_sqlite(url) and url.database not in (None, "", ":memory:"):
            # a shared-cache memory URI: name the pool SQLAlchemy used to pick on its own
            options.setdefault("poolclass", SingletonThreadPool)
        options = _pool_default(options, url)
        options["connect_args"] = _connect_args(url) | options.get("connect_args", {})
        engine = create_engine(url, **options)
        _label_connections(engine, target.name, read_only)
        if read_only:
            _make_read_only(engine, target)
        return engine

    def retire(self, name: str) -> None:
        """The target is no longer active: release its connections (after the grace, if any)."""
        if self.retire_grace <= 0:
            self._retire_now(name, scheduled=False)
            return
        with self._retire_lock:
            if name in self._retired or name in self._retiring:
                return
            self._retiring.add(name)
        _retirer.schedule(self, name, time.monotonic() + self.retire_grace)

    def _retire_now(self, name: str, *, scheduled: bool) -> None:
        with self._retire_lock:
            if scheduled and name not in self._retiring:
                return  # switched back to it meanwhile
            self._retiring.discard(name)
            self._retired.add(name)
        for read_only in (False, True):
            self.release(name, read_only)

    def release(self, name: str, read_only: bool) -> None:
        """Park one mode's engines: idle connections close now, the others on check-in."""
        engine = self._sync.get((name, read_only))
        if engine is not None:
            self._close_idle(self._park(engine))
        async_engine = self._async.get((name, read_only))
        if async_engine is not None:
            previous = self._park(async_engine.sync_engine)
            if previous is not None:
                self._dispose_async_later(name, previous)

    def _park(self, engine: Engine) -> Pool | None:
        """Give ``engine`` a pool that closes what it gets back; return the pool it had.

        Listeners are added only to pools no thread can be dispatching on: the new
        pool before the engine hands it out, the old one if it has no other
        check-in listener (else its connections close when it is collected, as
        after a plain ``Engine.dispose()``).
        """
        if is_memory_sqlite(engine.url):
            return None  # closing a connection would lose the database itself
        with self._park_lock:
            if engine in self._parked:
                return None
            previous = engine.pool
            self._parked[engine] = previous.recreate()  # copies its listeners: none of ours
            closing = previous.recreate()
            event.listen(closing, "checkin", _close_when_given_back)
            engine.pool = closing
            if not previous.dispatch.checkin:
                event.listen(previous, "checkin", _close_when_given_back)
        return previous

    def _unpark(self, engine: Engine) -> None:
        with self._park_lock:
            clean = self._parked.pop(engine, None)
            if clean is not None:
                engine.pool = clean  # the closing pool still closes what it gets back

    @staticmethod
    def _close_idle(pool: Pool | None) -> None:
        if pool is not None:
            pool.dispose()

    def in_use(self, name: str) -> int:
        """Connections of target ``name`` checked out right now (sessions in a transaction)."""
        busy = 0
        for read_only in (False, True):
            for engine in (self._sync.get((name, read_only)), self._async.get((name, read_only))):
                if engine is not None:
                    checkedout = getattr(engine.pool, "checkedout", None)  # QueuePool and co
                    busy += checkedout() if checkedout is not None else 0
        return busy

    def activate(self, name: str, read_only: bool) -> None:
        """``name`` is active in this mode: un-retire it and un-park that mode's engines."""
        with self._retire_lock:
            retiring = name in self._retiring
            self._retiring.discard(name)
            self._retired.discard(name)
        if retiring:
            _retirer.cancel(self, name)
        engine = self._sync.get((name, read_only))
        if engine is not None:
            self._unpark(engine)
        async_engine = self._async.get((name, read_only))
        if async_engine is not None:
            self._unpark(async_engine.sync_engine)

    def _dispose_async_later(self, name: str, pool: Pool) -> None:
        """Close the idle connections of an asyncio pool on the loop that owns them."""
        import asyncio

        ref = self._loops.get(name)
        loop = ref() if ref is not None else None
        disposal: asyncio.Future[None] | concurrent.futures.Future[None]
        if loop is not None and loop is _running_loop():
            disposal = loop.create_task(_dispose_pool(pool))
        elif loop is not None and loop.is_running():
            disposal = asyncio.run_coroutine_threadsafe(_dispose_pool(pool), loop)
        else:  # its loop has ended (a test client's, ``asyncio.run``'s): nobody else has them
            threading.Thread(
                target=asyncio.run, args=(_dispose_pool(pool),), name="dbswap-dispose", daemon=True
            ).start()  # on a loop of its own, in a thread of its own (this one may run another)
            return
        self._disposals.add(disposal)  # adispose() waits for it: nothing left pending
        disposal.add_done_callback(self._disposals.discard)

    def dispose(self) -> None:
        """Close every pooled connection (sync engines; async ones need ``adispose``)."""
        with self._lock:
            for engine in self._sync.values():
                engine.dispose()

    async def adispose(self) -> None:
        import asyncio

        for disposal in list(self._disposals):
            with contextlib.suppress(Exception):
                await (
                    disposal
                    if isinstance(disposal, asyncio.Future)
                    else asyncio.wrap_future(disposal)
                )
        for engine in list(self._async.values()):
            await engine.dispose()
            self._parked.pop(engine.sync_engine, None)
        self._async.clear()
        self._loops.clear()
        self._binds = {k: v for k, v in self._binds.items() if not k[1]}
        self._new_epoch()

    def _new_epoch(self) -> None:
        self.epoch += 1
        if self.on_new_epoch is not None:
            self.on_new_epoch()

    def _forget_after_fork(self) -> None:
        # A child must never use its parent's pooled sockets: start empty.
        for engine in self._sync.values():
            engine.dispose(close=False)
        for async_engine in self._async.values():
            async_engine.sync_engine.dispose(close=False)
        self._lock = threading.Lock()
        self._retire_lock = threading.Lock()
        self._retiring.clear()  # the child's engines start empty: nothing to retire
        self._disposals.clear()  # nor its event loop's tasks
        self._parked.clear()
        self._park_lock = threading.Lock()
        self._sync.clear()
        self._async.clear()
        self._loops.clear()
        self._binds.clear()
        self._new_epoch()


def _pool_default(options: dict[str, Any], url: URL) -> dict[str, Any]:
    """``pool_size=POOL_SIZE`` unless the app chose its pool: SQLAlchemy keeps 5 idle
    connections and closes any more on their return, so a worker whose threads move from
    one target's pool to the other's on every switch would reconnect its sixth and later
    threads each time."""
    if is_memory_sqlite(url) or {"poolclass", "pool", "pool_size"} & set(options):
        return options
    return options | {"pool_size": POOL_SIZE}


def _close_when_given_back(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    """Check-in listener of the pools of parked engines: nothing stays open in them."""
    if dbapi_connection is not None:
        record.invalidate()


def _label_connections(engine: Engine, target: str, read_only: bool) -> None:
    """``conn.info["dbswap_target"]`` and ``["dbswap_read_only"]`` for every connection.

    Written once per DBAPI connection, in the pool's ``connect`` event: a pooled
    connection's ``info`` outlives its checkouts, so ``connect()`` pays nothing,
    and ``Pool.recreate()`` (parking) keeps the listener.
    """

    def label(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["dbswap_target"] = target
        record.info["dbswap_read_only"] = read_only

    event.listen(engine, "connect", label)


def _make_read_only(engine: Engine, target: Target) -> None:
    """Every connection of ``engine`` is read-only, enforced by the server from its opening."""
    enter = _MODE_SQL[target.dialect][0]
    needs_commit = target.dialect != "sqlite"

    @event.listens_for(engine, "connect")
    def _set_mode(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(enter)
        finally:
            cursor.close()
        if needs_commit:  # the SET must not stay inside an implicit transaction
            dbapi_connection.commit()

    @event.listens_for(engine, "handle_error")
    def _read_only_error(context: ExceptionContext) -> BaseException | None:
        if _is_read_only_refusal(context.original_exception):
            return ReadOnlyTarget(target.name)
        return None


def private_memory_sqlite(url: URL) -> bool:
    """A SQLite database private to each connection: no second pool can open it."""
    return is_memory_sqlite(url) and "cache=shared" not in url.render_as_string()


def check_read_only_possible(target: Target) -> None:
    """``ConfigError`` if ``target`` cannot have a read-only pool (its own connections)."""
    if private_memory_sqlite(target.sa_url):
        raise ConfigError(
            f"target {target.name!r} is a private in-memory SQLite database, which read-only "
            "mode cannot open a second pool to; use a SQLite file or a shared-cache memory URI"
        )


async def _dispose_pool(pool: Pool) -> None:
    from sqlalchemy.util import greenlet_spawn

    await greenlet_spawn(pool.dispose)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread; None (without importing asyncio) if none."""
    module = sys.modules.get("asyncio")
    if module is None:
        return None
    try:
        loop: asyncio.AbstractEventLoop = module.get_running_loop()
    except RuntimeError:
        return None
    return loop


_live_caches: weakref.WeakSet[EngineCache] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    _retirer.after_fork_in_child()  # the parent's thread does not exist here
    for cache in list(_live_caches):
        cache._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
