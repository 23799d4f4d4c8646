"""Read-only switches, enforced by the database server itself."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dbhelpers import Item, labels, pg_connections, seed
from dbswap import ConfigError, ReadOnlyTarget, Switchboard

BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def urls(
    backend: str,
    sqlite_url: Callable[[str], str],
    pg_url: Callable[[str], str],
    mariadb_url: Callable[[str], str],
) -> dict[str, str]:
    make = {"sqlite": sqlite_url, "postgresql": pg_url, "mariadb": mariadb_url}[backend]
    result = {"local": make("local"), "production": make("production")}
    seed(result["local"], ["local-1"])
    seed(result["production"], ["prod-1", "prod-2"])
    return result


@pytest.fixture
def board(urls: dict[str, str], tmp_path: Path) -> Iterator[Switchboard]:
    board = Switchboard(urls, runtime_dir=tmp_path / "rt", read_only_targets=["production"])
    yield board
    board.dispose()


def writes(backend: str) -> list[str]:
    statements = [
        "INSERT INTO items (id, label) VALUES (99, 'sneaky')",
        "UPDATE items SET label = 'changed'",
        "DELETE FROM items",
        "CREATE TABLE intruder (id INTEGER)",
    ]
    if backend == "postgresql":
        statements += ["EXPLAIN ANALYZE DELETE FROM items", "SELECT * FROM items FOR UPDATE"]
    return statements


def test_every_kind_of_write_is_refused_by_the_server(
    board: Switchboard, urls: dict[str, str], backend: str
) -> None:
    result = board.use("production")  # read-only by default (DBSWAP_READONLY)
    assert result.read_only and board.read_only
    make = board.sessionmaker()
    for statement in writes(backend):
        with make() as s, pytest.raises(ReadOnlyTarget) as info:
            s.execute(sa.text(statement))
            s.commit()
        assert info.value.__cause__ is not None  # the driver's error, chained
        assert "--writable" in str(info.value) and "'production'" in str(info.value)
    with make() as s, pytest.raises(ReadOnlyTarget):
        s.add(Item(id=50, label="orm-flush"))
        s.commit()
    with board.engine.begin() as conn, pytest.raises(ReadOnlyTarget):
        conn.execute(sa.text("DELETE FROM items"))
    with make() as s:  # reads work
        assert list(s.scalars(sa.select(Item.label).order_by(Item.id))) == ["prod-1", "prod-2"]
    assert labels(urls["production"]) == ["prod-1", "prod-2"]  # a plain connection agrees
    inspector_engine = sa.create_engine(urls["production"])
    assert not sa.inspect(inspector_engine).has_table("intruder")
    inspector_engine.dispose()


def test_each_mode_has_its_own_pool_and_a_mode_switch_releases_the_other(
    board: Switchboard, urls: dict[str, str]
) -> None:
    """The server's read-only mode is set once per connection, in a pool of its own: a
    pooled connection can never carry one mode into a session of the other."""
    board.use("production", read_only=True)
    make = board.sessionmaker()
    with make() as s:
        s.execute(sa.select(Item.id)).all()
        read_only_connection = s.connection().connection.dbapi_connection
    read_only_pool = board._engines.sync(board.targets["production"], read_only=True).pool
    assert read_only_pool.checkedin() >= 1
    result = board.use("production", read_only=False)  # same target, new mode: a real switch
    assert result.changed and result.generation == 2 and not board.read_only
    assert read_only_pool.checkedin() == 0  # released: its idle connections are closed
    with make() as s:
        s.add(Item(id=60, label="now-allowed"))
        s.commit()
        assert s.connection().connection.dbapi_connection is not read_only_connection
    assert labels(urls["production"])[-1] == "now-allowed"
    writable_pool = board.engine_for("production").pool
    board.use("production", read_only=True)  # and back: refused again
    assert writable_pool.checkedin() == 0
    with make() as s, pytest.raises(ReadOnlyTarget):
        s.execute(sa.text("DELETE FROM items"))
    assert labels(urls["production"])[-1] == "now-allowed"


@pytest.mark.postgres
def test_a_mode_switch_leaves_no_connection_of_the_other_mode_open(
    pg_url: Callable[[str], str], tmp_path: Path
) -> None:
    urls = {"local": pg_url("local"), "production": pg_url("production")}
    seed(urls["production"], ["prod-1"])
    database = sa.make_url(urls["production"]).database
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")
    make = board.sessionmaker()
    try:
        for read_only in (True, False, True, False):
            board.use("production", read_only=read_only)
            with make() as s:
                s.execute(sa.select(Item.id)).all()
            with make() as s:
                modes = s.execute(sa.text("SHOW transaction_read_only")).scalar()
                assert modes == ("on" if read_only else "off")
            assert pg_connections(database) == 1  # the active mode's one pooled connection
    finally:
        board.dispose()


def test_pinning_holds_across_a_mode_change_in_both_directions(
    board: Switchboard, urls: dict[str, str]
) -> None:
    make = board.sessionmaker()
    board.use("production", read_only=False)
    writable = make()
    writable.execute(sa.select(Item.id)).all()
    board.use("production", read_only=True)
    read_only = make()
    assert read_only.dbswap_read_only and not writable.dbswap_read_only
    writable.add(Item(id=70, label="begun-writable"))
    writable.commit()  # still writable after the mode changed
    with pytest.raises(ReadOnlyTarget):
        read_only.execute(sa.text("UPDATE items SET label = 'x'"))
    read_only.rollback()
    board.use("production", read_only=False)
    with pytest.raises(ReadOnlyTarget):  # begun read-only: stays read-only
        read_only.execute(sa.text("DELETE FROM items"))
    read_only.close()
    writable.close()
    assert labels(urls["production"]) == ["prod-1", "prod-2", "begun-writable"]


def test_local_stays_writable_and_noop_needs_same_mode(board: Switchboard) -> None:
    assert not board.read_only
    board.use("production")
    assert not board.use("production", read_only=True).changed
    assert board.use("local").read_only is False
    with board.sessionmaker()() as s:
        s.add(Item(id=80, label="local-write"))
        s.commit()


@pytest.mark.postgres
def test_async_read_only_on_postgresql(pg_url: Callable[[str], str], tmp_path: Path) -> None:
    urls = {"local": pg_url("local"), "production": pg_url("production")}
    seed(urls["production"], ["p"])
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")

    async def scenario() -> list[str]:
        make = board.async_sessionmaker()
        try:
            await asyncio.to_thread(board.use, "production", read_only=True)
            async with make() as s:
                with pytest.raises(ReadOnlyTarget):
                    await s.execute(sa.text("DELETE FROM items"))
            async with make() as s:
                return list(await s.scalars(sa.text("SELECT label FROM items")))
        finally:
            await board.adispose()

    assert asyncio.run(scenario()) == ["p"]
    assert labels(urls["production"]) == ["p"]


def test_a_second_process_follows_a_mode_change(
    board: Switchboard, urls: dict[str, str], tmp_path: Path
) -> None:
    code = textwrap.dedent(
        f"""
        import json, sys, sqlalchemy as sa
        from dbswap import Switchboard, ReadOnlyTarget
        board = Switchboard({urls!r}, runtime_dir={str(tmp_path / "rt")!r})
        make = board.sessionmaker()
        for line in sys.stdin:
            with make() as s:
                try:
                    s.execute(sa.text("UPDATE items SET label = label"))
                    s.rollback()
                    outcome = "writable"
                except ReadOnlyTarget:
                    outcome = "read-only"
            print(json.dumps([board.active, board.read_only, outcome]), flush=True)
        board.dispose()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None

    def ask() -> list[object]:
        proc.stdin.write("?\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        return list(json.loads(proc.stdout.readline()))  # type: ignore[union-attr]

    try:
        board.use("production", read_only=True)
        assert ask() == ["production", True, "read-only"]
        board.use("production", read_only=False)
        assert ask() == ["production", False, "writable"]
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
        proc.stdout.close()


def test_state_and_audit_record_the_mode(board: Switchboard) -> None:
    board.use("production", user="alice")
    state = json.loads((board.runtime_dir / "db-target.json").read_text())
    assert state["read_only"] is True
    assert board.history(1)[0]["read_only"] is True
    assert board.state.read_only is True


def test_readonly_env_naming_an_unknown_target_is_a_config_error(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL_LOCAL": "sqlite:///l.db",
        "DATABASE_URL_PRODUCTION": "sqlite:///p.db",
        "DBSWAP_READONLY": "production, staging",
    }
    with pytest.raises(ConfigError, match=r"'staging'.*known targets: local, production"):
        Switchboard.from_env(env, cwd=tmp_path)
    ok = Switchboard.from_env(env | {"DBSWAP_READONLY": "production"}, cwd=tmp_path)
    assert ok.read_only_targets == {"production"}


def test_a_plain_connection_after_a_read_only_session_is_writable(
    board: Switchboard, urls: dict[str, str]
) -> None:
    """The mode a session asks for never leaks to other checkouts of the same thread."""
    board.use("production", read_only=True)
    with board.sessionmaker()() as s:
        s.execute(sa.select(Item.id)).all()
        s.execute(sa.select(Item.label)).all()  # asks again: no checkout follows
    with board.engine_for("production").begin() as conn:
        conn.execute(sa.text("INSERT INTO items (id, label) VALUES (90, 'plain-write')"))
    assert labels(urls["production"])[-1] == "plain-write"
    with board.engine.begin() as conn, pytest.raises(ReadOnlyTarget):  # board.engine follows
        conn.execute(sa.text("DELETE FROM items"))


def test_read_only_on_a_private_in_memory_sqlite_is_refused_clearly(
    tmp_path: Path, sqlite_url: Callable[[str], str]
) -> None:
    """Its database lives in one connection per thread: a read-only pool would see another."""
    urls = {"local": "sqlite://", "production": sqlite_url("production")}
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")
    with pytest.raises(ConfigError, match="private in-memory SQLite"):
        board.use("local", read_only=True)
    assert board.active == "local" and not board.read_only
    assert board.history(1)[0]["outcome"] == "refused"
    with pytest.raises(ConfigError, match=r"DBSWAP_READONLY: .*private in-memory SQLite"):
        Switchboard(urls, runtime_dir=tmp_path / "rt2", read_only_targets=["local"])
