"""Health checks: can the target be reached and read, and at which schema revision?

A check runs in a worker thread with a deadline (a hung server must not hang
a switch), except for an in-memory SQLite database, which lives in the
calling thread's connection. When the app uses asyncio sessions and the
target is a server, ``use()`` checks through the app's own asyncio pool, on
its event loop, instead: the checked connection is then the one the first
request after the switch uses, and no synchronous pool is opened for the
check. Errors become one masked line, never a stack.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from ._engines import is_memory_sqlite
from ._schema import SchemaGuard
from ._targets import Target, check_seconds

if TYPE_CHECKING:
    import asyncio

    from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(frozen=True)
class Health:
    """One target's health check: reachable or not, how fast, and why not (masked)."""

    target: str
    dialect: str
    ok: bool
    latency_ms: float | None = None
    error: str | None = None
    revisions: tuple[str, ...] | None = None  # the target's Alembic revision(s), if guarded
    expected_revisions: tuple[str, ...] | None = None  # the code's head(s), if guarded

    @property
    def schema_ok(self) -> bool | None:
        """True/False when a schema guard is configured and the target answered."""
        if self.revisions is None or self.expected_revisions is None:
            return None
        return bool(self.revisions) and self.revisions == self.expected_revisions


def check_target(
    engine: Engine,
    target: Target,
    timeout: float,
    guard: SchemaGuard | None,
    mask: Callable[[str], str],
    meanwhile: Callable[[], None] | None = None,
) -> Health:
    """Connect, query and (with a guard) read the revisions, within ``timeout`` seconds.

    ``meanwhile``: work for the calling thread while the check's thread waits on
    the database (``use()`` stages its state write there).
    """
    timeout = check_seconds(timeout, "timeout")
    return _check_in_thread(
        lambda: _probe(engine, target, guard), target, timeout, guard, mask, meanwhile
    )


def check_target_async(
    engine: AsyncEngine,
    target: Target,
    timeout: float,
    guard: SchemaGuard | None,
    mask: Callable[[str], str],
    meanwhile: Callable[[], None] | None = None,
) -> Health:
    """``check_target`` for an asyncio-only driver, from synchronous code.

    The probe runs on a private event loop in the check's thread; ``engine``
    has no pool, so nothing of it outlives that loop.
    """
    import asyncio

    timeout = check_seconds(timeout, "timeout")

    async def probe() -> tuple[str, ...] | None:
        try:
            return await _probe_async(engine, target, guard)
        finally:
            await engine.dispose()

    return _check_in_thread(lambda: asyncio.run(probe()), target, timeout, guard, mask, meanwhile)


def _check_in_thread(
    run_probe: Callable[[], tuple[str, ...] | None],
    target: Target,
    timeout: float,
    guard: SchemaGuard | None,
    mask: Callable[[str], str],
    meanwhile: Callable[[], None] | None,
) -> Health:
    outcome: dict[str, Any] = {}
    started = time.perf_counter()

    def probe() -> None:
        try:
            outcome["revisions"] = run_probe()
            if guard is not None:
                outcome["expected"] = guard.code_heads()
        except BaseException as exc:
            outcome["error"] = exc

    if is_memory_sqlite(target.sa_url):
        probe()  # its database lives in this thread's connection: check that one
        if meanwhile is not None:
            meanwhile()
    else:
        worker = threading.Thread(target=probe, name=f"dbswap-check-{target.name}", daemon=True)
        worker.start()
        try:
            if meanwhile is not None:
                meanwhile()
        finally:
            worker.join(max(0.0, started + timeout - time.perf_counter()))
        if worker.is_alive():
            return _failed(target, f"no answer within {timeout:g} s")
    if "error" in outcome:
        return _failed(target, mask(_describe(outcome["error"], target)))
    return _healthy(target, started, outcome.get("revisions"), outcome.get("expected"))


def check_target_on_loop(
    engine: AsyncEngine,
    loop: asyncio.AbstractEventLoop,
    target: Target,
    timeout: float,
    guard: SchemaGuard | None,
    mask: Callable[[str], str],
    meanwhile: Callable[[], None] | None = None,
) -> Health:
    """``check_target`` through an asyncio engine, on ``loop`` (never called on it)."""
    import asyncio

    timeout = check_seconds(timeout, "timeout")
    started = time.perf_counter()
    future = asyncio.run_coroutine_threadsafe(_probe_async(engine, target, guard), loop)
    if meanwhile is not None:
        try:
            meanwhile()
        except BaseException:
            future.cancel()
            raise
    try:
        revisions = future.result(max(0.0, started + timeout - time.perf_counter()))
        expected = guard.code_heads() if guard is not None else None
    except Exception as exc:  # the probe's error, or no answer in time
        if not future.done():
            future.cancel()  # the connection attempt ends on the loop; nothing is kept
            reason = f"no answer within {timeout:g} s (checked on the app's event loop)"
            return _failed(target, reason)
        return _failed(target, mask(_describe(exc, target)))
    return _healthy(target, started, revisions, expected)


def _failed(target: Target, reason: str) -> Health:
    return Health(target.name, target.dialect, False, None, reason)


def _healthy(
    target: Target,
    started: float,
    revisions: tuple[str, ...] | None,
    expected: tuple[str, ...] | None,
) -> Health:
    latency = round((time.perf_counter() - started) * 1000, 3)
    return Health(target.name, target.dialect, True, latency, None, revisions, expected)


def _probe(engine: Engine, target: Target, guard: SchemaGuard | None) -> tuple[str, ...] | None:
    """Connect, run a trivial query that needs a real, readable database, read the revision.

    A pooled connection the server has dropped (a restart, an idle timeout,
    ``pg_terminate_backend``) fails its first query: SQLAlchemy then invalidates
    it and the pool's other idle ones, and the probe runs once more on a fresh
    connection, so only a server that is really down fails the check.
    """
    query = _probe_query(target)

    def run() -> tuple[str, ...] | None:
        with engine.connect() as conn:
            conn.execute(text(query)).scalar()
            return guard.database_heads(conn) if guard is not None else None

    try:
        return run()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    return run()


async def _probe_async(
    engine: AsyncEngine, target: Target, guard: SchemaGuard | None
) -> tuple[str, ...] | None:
    query = _probe_query(target)  # (a SQLite file: one stat on the loop, before it is opened)

    async def run() -> tuple[str, ...] | None:
        async with engine.connect() as conn:
            (await conn.execute(text(query))).scalar()
            return await conn.run_sync(guard.database_heads) if guard is not None else None

    try:
        return await run()
    except DBAPIError as exc:  # a dropped pooled connection: once more, as in _probe
        if not exc.connection_invalidated:
            raise
    return await run()


def _probe_query(target: Target) -> str:
    """A trivial query that needs a real, readable database (a missing SQLite file raises)."""
    if not target.is_sqlite:
        return "SELECT 1"
    database = target.sa_url.database or ""
    on_disk = database not in ("", ":memory:") and not database.startswith("file:")
    if on_disk and not os.path.isfile(database):
        raise FileNotFoundError(f"SQLite file {database} does not exist")
    return "SELECT count(*) FROM sqlite_master"  # fails on a file that is not a database


def _describe(exc: BaseException, target: Target) -> str:
    """A one-line reason, without the driver's stack; masked by the caller."""
    if isinstance(exc, ModuleNotFoundError):
        extra = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}.get(
            target.dialect, "all"
        )
        return f"its driver is not installed ({exc.name}); pip install 'dbswap[{extra}]'"
    if isinstance(exc, FileNotFoundError):
        return str(exc)
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    message = _one_line(str(original))
    return f"{type(original).__name__}: {message}" if message else type(original).__name__


def _one_line(message: str, limit: int = 300) -> str:
    """A driver's (often multi-line) message as one line that keeps its reason.

    libpq puts the reason after "...failed:" on the same line or the next one,
    and hints ("Is the server running...?") on further lines: the first line is
    kept, with the lines that complete it while it ends with a colon.
    """
    lines = [" ".join(line.split()) for line in message.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    kept = lines[0]
    for line in lines[1:]:
        if not kept.endswith(":"):
            break
        kept = f"{kept} {line}"
    return kept if len(kept) <= limit else kept[: limit - 3] + "..."
