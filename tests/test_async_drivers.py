"""Every asyncio driver the README promises, against the real servers.

asyncpg, psycopg (async), aiomysql and aiosqlite targets, each: async sessions,
``use()`` and ``check()`` from synchronous code (no event loop: the check runs
on a private one), the CLI, and the admin API of a live uvicorn app whose
pages read through async sessions.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi import FastAPI

from dbhelpers import ITEMS, seed
from dbswap import ConfigError, Switchboard
from dbswap.cli import cli
from dbswap.fastapi import admin_router
from webhelpers import ADMIN, SWITCH, authorize_by_token, live_server

DRIVERS = [
    pytest.param("postgresql+asyncpg", marks=pytest.mark.postgres, id="asyncpg"),
    pytest.param("postgresql+psycopg_async", marks=pytest.mark.postgres, id="psycopg-async"),
    pytest.param("mysql+aiomysql", marks=pytest.mark.mariadb, id="aiomysql"),
    pytest.param("sqlite+aiosqlite", id="aiosqlite"),
]


@pytest.fixture(params=DRIVERS)
def urls(
    request: pytest.FixtureRequest,
    sqlite_url: Callable[[str], str],
    pg_url: Callable[[str], str],
    mariadb_url: Callable[[str], str],
) -> dict[str, str]:
    """Two seeded databases; the targets' URLs name the asyncio driver under test."""
    driver: str = request.param
    make = {"postgresql": pg_url, "mysql": mariadb_url, "sqlite": sqlite_url}[driver.split("+")[0]]
    result = {}
    for name, rows in (("local", ["local-1"]), ("production", ["prod-1", "prod-2"])):
        plain = make(name)
        seed(plain, rows)  # seeded with a synchronous driver, outside dbswap
        result[name] = sa.make_url(plain).set(drivername=driver).render_as_string(False)
    return result


@pytest.fixture
def board(urls: dict[str, str], tmp_path: Path) -> Iterator[Switchboard]:
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")
    yield board
    board.close()


async def read_labels(board: Switchboard) -> tuple[str, list[str]]:
    async with board.async_sessionmaker()() as s:
        rows = await s.execute(sa.select(ITEMS.c.label).order_by(ITEMS.c.id))
        return s.sync_session.dbswap_target, list(rows.scalars())


def test_check_and_use_from_sync_code_then_async_sessions(board: Switchboard) -> None:
    """As the CLI does: no event loop, so each check runs on a private one."""
    assert [h.ok for h in board.check()] == [True, True], board.check()
    result = board.use("production", user="alice")
    assert (result.previous, result.target) == ("local", "production")

    async def scenario() -> tuple[str, list[str]]:
        try:
            return await read_labels(board)
        finally:
            await board.adispose()

    assert asyncio.run(scenario()) == ("production", ["prod-1", "prod-2"])


def test_use_from_inside_an_app_with_its_own_loop(board: Switchboard) -> None:
    async def scenario() -> list[tuple[str, list[str]]]:
        try:
            first = await read_labels(board)
            await asyncio.to_thread(board.use, "production")  # as the admin API does
            return [first, await read_labels(board)]
        finally:
            await board.adispose()

    assert asyncio.run(scenario()) == [("local", ["local-1"]), ("production", ["prod-1", "prod-2"])]


def test_an_unreachable_asyncio_target_is_refused_with_its_reason(
    urls: dict[str, str], tmp_path: Path
) -> None:
    if urls["local"].startswith("sqlite"):
        broken = f"sqlite+aiosqlite:///{tmp_path / 'missing.db'}"
    else:
        broken = sa.make_url(urls["local"]).set(port=1).render_as_string(False)
    board = Switchboard({**urls, "broken": broken}, runtime_dir=tmp_path / "rt")
    try:
        health = {h.target: h for h in board.check(timeout=5)}
        assert health["local"].ok and not health["broken"].ok
        assert health["broken"].error
        with pytest.raises(Exception, match="broken"):
            board.use("broken", timeout=5)
        assert board.active == "local"
    finally:
        board.close()


def test_sync_sessions_on_an_asyncio_only_driver_say_what_to_do(board: Switchboard) -> None:
    if board.targets["local"].sa_url.get_driver_name() == "psycopg_async":
        pytest.skip("psycopg's sync flavour exists; only asyncio-only drivers are refused")
    with pytest.raises(ConfigError, match="asyncio-only driver"), board.sessionmaker()() as s:
        s.execute(sa.text("SELECT 1"))


def test_the_cli_checks_and_switches_asyncio_targets(
    urls: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {
        "DATABASE_URL_LOCAL": urls["local"],
        "DATABASE_URL_PRODUCTION": urls["production"],
        "DBSWAP_RUNTIME_DIR": str(tmp_path / "rt"),
    }
    runner = CliRunner()
    checked = runner.invoke(cli, ["check", "--json"], env=env, catch_exceptions=False)
    assert checked.exit_code == 0, checked.output
    assert [row["ok"] for row in json.loads(checked.output)] == [True, True]
    switched = runner.invoke(cli, ["use", "production", "--yes"], env=env, catch_exceptions=False)
    assert switched.exit_code == 0, switched.output
    status = json.loads(runner.invoke(cli, ["status", "--json"], env=env).output)
    assert status["target"] == "production"


def test_the_admin_api_switches_an_app_reading_through_async_sessions(
    board: Switchboard,
) -> None:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await board.adispose()

    app = FastAPI(lifespan=lifespan)
    app.include_router(admin_router(board, authorize=authorize_by_token))

    @app.get("/labels")
    async def labels() -> dict[str, object]:
        target, rows = await read_labels(board)
        return {"target": target, "labels": rows}

    with live_server(app) as base, httpx.Client(base_url=base, timeout=20) as client:
        assert client.get("/labels").json() == {"target": "local", "labels": ["local-1"]}
        switched = client.post(SWITCH, json={"target": "production"}, headers=ADMIN)
        assert switched.status_code == 200, switched.text
        after = client.get("/labels").json()
        assert after == {"target": "production", "labels": ["prod-1", "prod-2"]}
        status = client.get("/api/admin/database", headers=ADMIN).json()
        assert status["target"] == "production"
