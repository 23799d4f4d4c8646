"""A health check is never fooled by a pooled connection the server has dropped.

With ``retire_grace`` the pool of a switched-away target survives; if the
server drops its idle connections meanwhile (a restart, an idle timeout, here
``pg_terminate_backend`` on the real server), switching back must still pass
the check of a healthy server, and still fail for one that refuses connections.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from dbhelpers import PG_ADMIN, labels, seed
from dbswap import Switchboard, TargetUnavailable

pytestmark = pytest.mark.postgres
T = TypeVar("T")


def _terminate(database: str) -> int:
    """Drop every connection to ``database`` on the server, as a restart would."""
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            query = sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"
            )
            return int(conn.execute(query, {"db": database}).scalar_one())
    finally:
        admin.dispose()


def _allow_connections(database: str, allowed: bool) -> None:
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            value = "true" if allowed else "false"
            conn.execute(sa.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {value}'))
    finally:
        admin.dispose()


@pytest.fixture
def board(
    pg_url: Callable[[str], str], sqlite_url: Callable[[str], str], tmp_path: object
) -> Iterator[Switchboard]:
    local, production = sqlite_url("local"), pg_url("production")
    seed(local, ["local-1"])
    seed(production, ["prod-1"])
    board = Switchboard(
        {"local": local, "production": production},
        runtime_dir=f"{tmp_path}/rt",
        retire_grace=30,  # the switched-away pool stays for the whole test
    )
    yield board
    board.dispose()


def _database(board: Switchboard) -> str:
    return str(board.target("production").sa_url.database)


def _read(board: Switchboard) -> list[str]:
    with board.sessionmaker()() as s:
        return [row[0] for row in s.execute(sa.text("SELECT label FROM items"))]


@pytest.mark.parametrize("round_", range(5))
def test_switching_back_to_a_healthy_server_passes_after_it_dropped_the_pooled_connections(
    board: Switchboard, round_: int
) -> None:
    board.use("production")
    assert _read(board) == ["prod-1"]  # its connection goes back to the pool
    board.use("local")  # production's pool survives the grace, idle connection in it
    assert _terminate(_database(board)) >= 1
    result = board.use("production")  # the check meets the dead connection first
    assert result.changed and board.active == "production"
    assert _read(board) == ["prod-1"]
    assert board.history(1)[0]["outcome"] == "ok"


def test_a_server_that_refuses_connections_still_fails_the_check(board: Switchboard) -> None:
    database = _database(board)
    board.use("production")
    assert _read(board) == ["prod-1"]
    board.use("local")
    _allow_connections(database, False)
    try:
        assert _terminate(database) >= 1
        with pytest.raises(TargetUnavailable) as info:
            board.use("production")
        assert "not currently accepting connections" in info.value.reason
        assert "\n" not in info.value.reason
        assert board.active == "local"
        assert [h.ok for h in board.check("production")] == [False]
    finally:
        _allow_connections(database, True)
    assert board.use("production").changed  # back up: the next switch passes
    assert labels(board.url_for("production")) == ["prod-1"]


def test_the_asyncio_check_on_the_apps_loop_also_retries_once(board: Switchboard) -> None:
    """An app with asyncio sessions is checked through its own asyncio pool, on its loop."""
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()

    def on_loop(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(10)

    async def read() -> list[str]:
        async with board.async_sessionmaker()() as s:
            return [row[0] for row in await s.execute(sa.text("SELECT label FROM items"))]

    try:
        board.use("production")
        assert on_loop(read()) == ["prod-1"]  # the asyncio pool now holds a connection
        board.use("local")
        assert on_loop(read()) == ["local-1"]
        assert _terminate(_database(board)) >= 1
        assert board.use("production").changed
        assert on_loop(read()) == ["prod-1"]
    finally:
        on_loop(board.adispose())
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        loop.close()
