"""Drain mode: new sessions wait, in-flight ones finish, then the switch commits."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dbhelpers import labels, seed
from dbswap import ConfigError, DrainTimeout, Switchboard

READ = sa.text("SELECT label FROM items ORDER BY id")


@pytest.fixture
def urls(sqlite_url: Callable[[str], str]) -> dict[str, str]:
    result = {"local": sqlite_url("local"), "production": sqlite_url("production")}
    seed(result["local"], ["l"])
    seed(result["production"], ["p"])
    return result


@pytest.fixture
def board(urls: dict[str, str], tmp_path: Path) -> Iterator[Switchboard]:
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")
    yield board
    board.dispose()


def test_drain_waits_for_in_flight_sessions_then_waiters_use_the_new_target(
    board: Switchboard, urls: dict[str, str]
) -> None:
    make = board.sessionmaker()
    for _ in range(3):  # a running app: new sessions take the inline fast path
        with make() as s:
            s.execute(READ)
    in_flight = make()
    in_flight.execute(READ)  # holds a local connection: a transaction in progress
    results: dict[str, object] = {}

    def switch() -> None:
        results["switch"] = board.use("production", drain=True, drain_timeout=5)

    switcher = threading.Thread(target=switch)
    switcher.start()
    time.sleep(0.2)
    assert switcher.is_alive()  # waiting for the in-flight session
    assert board.active == "local"

    def late_request() -> None:
        with make() as s:  # begun during the drain: waits, then runs on production
            results["late"] = s.execute(READ).scalar()

    late = threading.Thread(target=late_request)
    late.start()
    time.sleep(0.2)
    assert "late" not in results  # paused
    in_flight.execute(sa.text("INSERT INTO items (id, label) VALUES (2, 'finished-on-local')"))
    in_flight.commit()
    in_flight.close()
    switcher.join(5)
    late.join(5)
    assert results["late"] == "p"
    assert board.active == "production"
    assert labels(urls["local"]) == ["l", "finished-on-local"]
    assert board.history(1)[0]["drain"] is True


def test_drain_timeout_aborts_and_traffic_continues_on_the_old_target(
    board: Switchboard,
) -> None:
    make = board.sessionmaker()
    stuck = make()
    stuck.execute(READ)
    waited: list[float] = []

    def request_during_drain() -> None:
        time.sleep(0.1)
        start = time.monotonic()
        with make() as s:
            s.execute(READ)
            waited.append(time.monotonic() - start)

    waiter = threading.Thread(target=request_during_drain)
    waiter.start()
    with pytest.raises(DrainTimeout) as info:
        board.use("production", drain=True, drain_timeout=0.5)
    assert info.value.in_flight == 1 and "aborted" in str(info.value)
    waiter.join(5)
    assert not waiter.is_alive() and waited and waited[0] < 1.6  # never hangs
    assert board.active == "local" and board.generation == 0
    assert board.history(1)[0]["outcome"] == "failed"
    stuck.close()
    with make() as s:
        assert s.execute(READ).scalar() == "l"


def test_drain_with_nothing_in_flight_is_immediate(board: Switchboard) -> None:
    start = time.monotonic()
    board.use("production", drain=True)
    assert time.monotonic() - start < 1
    assert board.active == "production"


def test_async_code_awaits_ready_during_a_drain(board: Switchboard) -> None:
    async def scenario() -> tuple[float, str]:
        make = board.sessionmaker()
        holder = make()
        holder.execute(READ)
        switch = asyncio.ensure_future(
            asyncio.to_thread(board.use, "production", drain=True, drain_timeout=5)
        )
        await asyncio.sleep(0.1)
        asyncio.get_running_loop().call_later(0.2, holder.close)
        start = time.monotonic()
        await board.ready()
        waited = time.monotonic() - start
        await switch
        return waited, board.active

    waited, active = asyncio.run(scenario())
    assert 0.05 < waited < 2 and active == "production"


def test_bad_drain_timeout_is_refused(board: Switchboard) -> None:
    with pytest.raises(ConfigError, match="drain_timeout"):
        board.use("production", drain=True, drain_timeout=0)
    assert board.active == "local"
