"""One Engine (and, on demand, one AsyncEngine) per target URL, created lazily.

Creating an engine opens no connection; the first session or health check
does. When the board switches away from a target, that target is *retired*:
its idle pooled connections are closed at once, and each connection still in
use is closed when its session gives it back, so nothing stays open to an
inactive database. Switching back un-retires it and reuses the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from ._targets import Target

CONNECT_TIMEOUT = 10  # seconds; the health check has its own, shorter, deadline

_ASYNC_DRIVERS = {
    "sqlite": "aiosqlite",
    "postgresql": "psycopg",
    "mysql": "aiomysql",
    "mariadb": "aiomysql",
}
_ASYNC_READY = {"aiosqlite", "psycopg", "asyncpg", "aiomysql", "asyncmy", "psycopg_async"}


def async_url(url: URL) -> URL:
    """The asyncio flavour of a URL (``sqlite`` -> ``sqlite+aiosqlite`` ...)."""
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if driver in _ASYNC_READY:
        return url
    async_driver = _ASYNC_DRIVERS.get(backend)
    return url.set(drivername=f"{backend}+{async_driver}") if async_driver else url


def _connect_args(url: URL) -> dict[str, Any]:
    networked = url.get_backend_name() in ("postgresql", "mysql", "mariadb")
    if networked and "connect_timeout" not in url.query:
        return {"connect_timeout": CONNECT_TIMEOUT}
    return {}


def _is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


class EngineCache:
    """Engines keyed by target name; safe to use from many threads."""

    def __init__(self, engine_options: Mapping[str, Any] | None = None) -> None:
        self._options = dict(engine_options or {})
        self._lock = threading.Lock()
        self._sync: dict[str, Engine] = {}
        self._async: dict[str, AsyncEngine] = {}
        self._loops: dict[str, weakref.ReferenceType[asyncio.AbstractEventLoop]] = {}
        self._retired: set[str] = set()
        _live_caches.add(self)

    def sync(self, target: Target) -> Engine:
        engine = self._sync.get(target.name)
        if engine is None:
            with self._lock:
                engine = self._sync.get(target.name)
                if engine is None:
                    engine = self._sync[target.name] = self._create(target)
        return engine

    def async_(self, target: Target) -> AsyncEngine:
        engine = self._async.get(target.name)
        if engine is None:
            with self._lock:
                engine = self._async.get(target.name)
                if engine is None:
                    url = async_url(target.sa_url)
                    engine = create_async_engine(
                        url, connect_args=_connect_args(url), **self._options
                    )
                    self._watch_checkins(engine.sync_engine, target.name)
                    with contextlib.suppress(RuntimeError):
                        self._loops[target.name] = weakref.ref(asyncio.get_running_loop())
                    self._async[target.name] = engine
        return engine

    def created(self, name: str) -> bool:
        return name in self._sync or name in self._async

    def _create(self, target: Target) -> Engine:
        url = target.sa_url
        engine = create_engine(url, connect_args=_connect_args(url), **self._options)
        self._watch_checkins(engine, target.name)
        return engine

    def _watch_checkins(self, engine: Engine, name: str) -> None:
        if _is_memory_sqlite(engine.url):
            return  # closing the connection would lose the database itself
        retired = self._retired

        @event.listens_for(engine, "checkin")
        def _close_if_retired(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
            if name in retired and dbapi_connection is not None:
                record.invalidate()

    def retire(self, name: str) -> None:
        """The target is no longer active: release its idle connections now."""
        self._retired.add(name)
        engine = self._sync.get(name)
        if engine is not None and not _is_memory_sqlite(engine.url):
            engine.dispose()  # a fresh pool; connections in use close on check-in
        async_engine = self._async.get(name)
        if async_engine is not None:
            self._dispose_async_later(name, async_engine)

    def activate(self, name: str) -> None:
        self._retired.discard(name)

    def _dispose_async_later(self, name: str, engine: AsyncEngine) -> None:
        """Close idle asyncio connections on the loop that owns them."""
        ref = self._loops.get(name)
        loop = ref() if ref is not None else None
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            loop.create_task(_dispose_pool(engine))
        elif loop.is_running():
            asyncio.run_coroutine_threadsafe(_dispose_pool(engine), loop)

    def dispose(self) -> None:
        """Close every pooled connection (sync engines; async ones need ``adispose``)."""
        with self._lock:
            for engine in self._sync.values():
                engine.dispose()

    async def adispose(self) -> None:
        for engine in list(self._async.values()):
            await engine.dispose()
        self._async.clear()
        self._loops.clear()

    def _forget_after_fork(self) -> None:
        # A child must never use its parent's pooled sockets: start empty.
        for engine in self._sync.values():
            engine.dispose(close=False)
        for async_engine in self._async.values():
            async_engine.sync_engine.dispose(close=False)
        self._lock = threading.Lock()
        self._sync.clear()
        self._async.clear()
        self._loops.clear()


async def _dispose_pool(engine: AsyncEngine) -> None:
    await engine.dispose()


_live_caches: weakref.WeakSet[EngineCache] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for cache in list(_live_caches):
        cache._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
