"""Target 1 (d): the asyncio flavour, ``board.async_sessionmaker()`` vs a plain one.

Both sides use the same AsyncEngine (``board.async_engine_for(name)``); one
event loop runs the whole suite, and every batch runs to completion on it.
As in ``overhead``, each row has an A/A twin of its baseline.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbswap import Switchboard

from ._databases import Item, seed, sqlite_file
from ._measure import Batch
from ._report import Row
from ._workspace import Workspace
from .overhead import SUITE, Case, measure, switched_once

PLAIN = "plain async_sessionmaker, same engine"


def run(ws: Workspace) -> list[Row]:
    loop = asyncio.new_event_loop()
    try:
        local = sqlite_file(ws.fast, "async-local")
        seed(local)
        urls = {"local": local, "production": sqlite_file(ws.fast, "async-prod")}
        rows = _measure(ws, loop, urls, "1d.get.aiosqlite", "async ORM get, aiosqlite (tmpfs)")
        key, label = "1d.get.pg-async", "async ORM get, PostgreSQL (psycopg async)"
        if ws.postgres is None:
            rows.append(Row.skip(SUITE, key, label, ws.postgres_reason))
        else:
            rows += _measure(ws, loop, ws.pg_urls(), key, label)
        return rows
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def aget(loop: asyncio.AbstractEventLoop, factory: async_sessionmaker[AsyncSession]) -> Batch:
    async def batch(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            async with factory() as session:
                await session.get(Item, 1)
        return time.perf_counter() - started

    return lambda n: loop.run_until_complete(batch(n))


def _measure(
    ws: Workspace, loop: asyncio.AbstractEventLoop, urls: dict[str, str], key: str, label: str
) -> list[Row]:
    board = ws.board(urls, key)
    switched_once(board, "production")

    async def plain_on_this_loop(of: Switchboard) -> async_sessionmaker[AsyncSession]:
        return async_sessionmaker(bind=of.async_engine_for("local"))

    try:
        plain = loop.run_until_complete(plain_on_this_loop(board))
        twin = loop.run_until_complete(plain_on_this_loop(board))
        case = Case(
            key,
            label,
            PLAIN,
            aget(loop, plain),
            aget(loop, twin),
            aget(loop, board.async_sessionmaker()),
        )
        return measure(ws, case)
    finally:
        loop.run_until_complete(board.adispose())
