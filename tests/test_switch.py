"""Switching: data really changes, sessions stay pinned, refusals change nothing."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

import dbswap._engines
from dbhelpers import ITEMS, Item, labels, pg_connections, seed
from dbswap import (
    ConfigError,
    Switchboard,
    SwitchLocked,
    TargetUnavailable,
    UnknownTarget,
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def urls(
    request: pytest.FixtureRequest,
    sqlite_url: Callable[[str], str],
    pg_url: Callable[[str], str],
) -> dict[str, str]:
    make = sqlite_url if request.param == "sqlite" else pg_url
    result = {"local": make("local"), "production": make("production")}
    seed(result["local"], ["local-1", "local-2"])
    seed(result["production"], ["prod-1"])
    return result


@pytest.fixture
def board(urls: dict[str, str], tmp_path: Path) -> Switchboard:
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")
    yield board
    board.dispose()


def read_labels(session: Session) -> list[str]:
    return list(session.scalars(sa.select(Item.label).order_by(Item.id)))


def test_reads_and_writes_land_on_the_active_target_only(
    board: Switchboard, urls: dict[str, str]
) -> None:
    make = board.sessionmaker()
    with make() as s:
        assert read_labels(s) == ["local-1", "local-2"]
        s.add(Item(id=10, label="written-on-local"))
        s.commit()
    result = board.use("production", user="alice")
    assert (result.previous, result.target, result.generation) == ("local", "production", 1)
    with make() as s:
        assert read_labels(s) == ["prod-1"]
        s.add(Item(id=20, label="written-on-prod"))
        s.commit()
    assert labels(urls["local"]) == ["local-1", "local-2", "written-on-local"]
    assert labels(urls["production"]) == ["prod-1", "written-on-prod"]
    board.use("local")
    with make() as s:
        assert read_labels(s)[-1] == "written-on-local"


def test_async_sessions_follow_the_switch(board: Switchboard, urls: dict[str, str]) -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        make = board.async_sessionmaker()
        try:
            async with make() as s:
                before = list(await s.scalars(sa.select(Item.label).order_by(Item.id)))
            await asyncio.to_thread(board.use, "production")
            async with make() as s:
                s.add(Item(id=30, label="async-prod"))
                await s.commit()
                after = list(await s.scalars(sa.select(Item.label).order_by(Item.id)))
            return before, after
        finally:
            await board.adispose()

    before, after = asyncio.run(scenario())
    assert before == ["local-1", "local-2"]
    assert after == ["prod-1", "async-prod"]
    assert labels(urls["local"]) == ["local-1", "local-2"]


def test_a_session_open_across_a_switch_keeps_its_target_to_the_end(
    board: Switchboard, urls: dict[str, str]
) -> None:
    make = board.sessionmaker()
    old = make()
    assert read_labels(old) == ["local-1", "local-2"]  # transaction begun on local
    old.add(Item(id=40, label="pending-before-switch"))
    board.use("production")
    new = make()
    assert read_labels(new) == ["prod-1"]
    # flush, further reads and commit of the old session all go to local
    old.add(Item(id=41, label="added-after-switch"))
    old.flush()
    assert "added-after-switch" in read_labels(old)
    old.commit()
    assert old.dbswap_target == "local"
    old.close()
    new.close()
    assert labels(urls["local"])[-2:] == ["pending-before-switch", "added-after-switch"]
    assert labels(urls["production"]) == ["prod-1"]
    # once closed, the same Session object follows the board again
    assert read_labels(old) == ["prod-1"]
    old.close()


def test_a_session_created_before_a_switch_but_unused_stays_pinned(board: Switchboard) -> None:
    make = board.sessionmaker()
    early = make()
    board.use("production")
    assert read_labels(early) == ["local-1", "local-2"]
    early.close()


def test_routing_engine_follows_per_connection(board: Switchboard) -> None:
    engine = board.engine  # imported once, like the seed's default export
    with engine.connect() as conn:
        board.use("production")
        # an open connection stays where it began
        assert conn.execute(sa.select(ITEMS.c.label)).scalars().all() == ["local-1", "local-2"]
    with engine.begin() as conn:
        assert conn.execute(sa.select(ITEMS.c.label)).scalars().all() == ["prod-1"]
    assert engine.dialect.name == board.targets["production"].dialect


def test_routing_engine_attributes_are_the_active_engines(board: Switchboard) -> None:
    engine = board.engine
    board.use("production")
    production = board.engine_for("production")
    assert engine.current is production
    assert engine.url == production.url and engine.pool is production.pool
    assert (engine.name, engine.driver) == (production.name, production.driver)
    assert engine.engine is production
    # Core helpers that take a bind reach the active target through it
    sa.Table("made_here", sa.MetaData(), sa.Column("id", sa.Integer)).metadata.create_all(engine)
    assert sa.inspect(production).has_table("made_here")
    assert not sa.inspect(board.engine_for("local")).has_table("made_here")
    raw = engine.raw_connection()
    try:
        assert raw.cursor().execute("SELECT label FROM items").fetchall() == [("prod-1",)]
    finally:
        raw.close()
    # every public and internal Engine attribute is there, and nothing else is made up
    assert all(hasattr(engine, name) for name in dir(sa.Engine) if not name.startswith("__"))
    with pytest.raises(AttributeError, match="no_such_thing"):
        engine.no_such_thing  # noqa: B018


def test_routing_engine_as_a_plain_session_bind_fails_clearly(board: Switchboard) -> None:
    with pytest.raises(TypeError, match=r"board\.sessionmaker"), Session(bind=board.engine) as s:
        s.execute(sa.text("SELECT 1"))
    # a pinned session given board.engine simply follows the board
    with board.session_class(bind=board.engine) as s:
        assert read_labels(s) == ["local-1", "local-2"]


def test_explicit_bind_is_honoured(board: Switchboard) -> None:
    with board.session_class(bind=board.engine_for("production")) as s:
        assert read_labels(s) == ["prod-1"]
        assert s.dbswap_target is None


def test_every_way_of_calling_a_sessionmaker_pins_or_honours_its_bind(
    board: Switchboard,
) -> None:
    production = board.engine_for("production")
    make = board.sessionmaker(autoflush=False, info={"app": "shop"})
    # twice: the first session takes the slow pin, the next ones the fast path
    sessions = [make(), make(), make(info={"request": 1})]
    for s in sessions:
        assert s.dbswap_target == "local" and read_labels(s) == ["local-1", "local-2"]
        assert s.autoflush is False and s.info["app"] == "shop"
        assert s.bind is board.engine_for("local")
        s.close()
        assert s.bind is None  # the next transaction pins again
    assert sessions[2].info == {"app": "shop", "request": 1}

    with make(bind=production) as explicit:
        assert read_labels(explicit) == ["prod-1"] and explicit.dbswap_target is None
        explicit.close()
        assert explicit.bind is production  # an explicit bind is kept
    for maker in (board.sessionmaker(bind=production), board.sessionmaker()):
        maker.configure(bind=production)
        with maker() as s:
            assert read_labels(s) == ["prod-1"] and s.dbswap_target is None
    following = board.sessionmaker(bind=board.engine)  # "follow the board"
    board.use("production")
    for _ in range(2):
        with following() as s, make() as t:
            assert s.dbswap_target == t.dbswap_target == "production"
            assert read_labels(s) == read_labels(t) == ["prod-1"]


def test_events_on_a_sessionmaker_fire_for_its_pinned_sessions(board: Switchboard) -> None:
    make = board.sessionmaker()
    begun: list[str | None] = []
    sa.event.listen(make, "after_begin", lambda s, *_: begun.append(s.dbswap_target))
    for _ in range(3):
        with make() as s:
            read_labels(s)
    with board.sessionmaker()() as other:
        read_labels(other)
    assert begun == ["local"] * 3


def test_switching_to_the_active_target_is_a_no_op(board: Switchboard) -> None:
    board.use("production")
    result = board.use("production")
    assert not result.changed
    assert result.generation == 1
    assert board.history(1)[0]["outcome"] == "noop"


def test_on_switch_callbacks_run_after_commit_and_cannot_undo_it(board: Switchboard) -> None:
    seen: list[tuple[str, str, str]] = []

    @board.on_switch
    def remember(result: object) -> None:
        seen.append((result.previous, result.target, board.active))  # type: ignore[attr-defined]

    @board.on_switch
    def broken(result: object) -> None:
        raise RuntimeError("cache clear failed")

    board.use("production")
    assert seen == [("local", "production", "production")]
    assert board.active == "production"


def _unchanged(board: Switchboard) -> tuple[str, int, bytes | None, list[str]]:
    """Active target, generation, state file, and the temporary state files (none staged)."""
    path = board.runtime_dir / "db-target.json"
    files = sorted(p.name for p in board.runtime_dir.glob(".db-target.*.tmp"))
    return board.active, board.generation, path.read_bytes() if path.exists() else None, files


def test_unknown_target_is_refused_changes_nothing_and_is_audited(board: Switchboard) -> None:
    board.use("production")
    before = _unchanged(board)
    with pytest.raises(UnknownTarget) as info:
        board.use("staging", user="bob")
    assert isinstance(info.value, LookupError)
    assert "local, production" in str(info.value)
    assert _unchanged(board) == before
    entry = board.history(1)[0]
    assert (entry["outcome"], entry["to"], entry["user"]) == ("refused", "staging", "bob")


@pytest.mark.parametrize(
    "bad_url",
    [
        "postgresql://postgres:pw@127.0.0.1:1/nothing",  # closed port
        "postgresql://no_such_role_x:pw@127.0.0.1:5432/postgres",  # auth refused
        "mysql+pymysql://root:wrong-password@127.0.0.1:3306/mysql",  # wrong password
        "sqlite:///{tmp}/missing/nowhere.db",  # no such file
    ],
)
def test_unreachable_target_is_refused_and_changes_nothing(
    bad_url: str, sqlite_url: Callable[[str], str], tmp_path: Path
) -> None:
    urls = {"local": sqlite_url("local"), "production": bad_url.format(tmp=tmp_path)}
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")
    board.use("local")  # no-op, but leaves no state file: make one
    before = _unchanged(board)
    with pytest.raises(TargetUnavailable) as info:
        board.use("production", timeout=5)
    assert info.value.target == "production"
    assert "pw" not in str(info.value).replace("password", "")
    assert "wrong-password" not in str(info.value)
    assert _unchanged(board) == before
    entry = board.history(1)[0]
    assert entry["outcome"] == "failed" and entry["reason"]
    board.dispose()


def test_a_file_that_is_not_a_database_is_refused(
    sqlite_url: Callable[[str], str], tmp_path: Path
) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    board = Switchboard(
        {"local": sqlite_url("local"), "production": f"sqlite:///{junk}"}, runtime_dir=tmp_path
    )
    with pytest.raises(TargetUnavailable, match="not a database"):
        board.use("production")
    assert board.active == "local"
    board.dispose()


def test_health_check_times_out(sqlite_url: Callable[[str], str], tmp_path: Path) -> None:
    import socket
    import threading

    # a server that accepts connections and never answers
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    urls = {"local": sqlite_url("local"), "production": f"postgresql://u@127.0.0.1:{port}/x"}
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")
    try:
        with pytest.raises(TargetUnavailable, match=r"no answer within 0\.5 s"):
            board.use("production", timeout=0.5)
        assert board.active == "local"
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


def test_production_lock_refuses_every_switch(
    tmp_path: Path, sqlite_url: Callable[[str], str]
) -> None:
    env = {
        "DATABASE_URL_LOCAL": sqlite_url("local"),
        "DATABASE_URL_PRODUCTION": sqlite_url("production"),
        "DBSWAP_ENV": "production",
        "DBSWAP_RUNTIME_DIR": str(tmp_path / "rt"),
    }
    (tmp_path / "rt").mkdir()
    (tmp_path / "rt" / "db-target.json").write_text('{"target": "local", "generation": 9}')
    board = Switchboard.from_env(env, cwd=tmp_path)
    assert board.active == "production"  # the state file is ignored
    for name in ("local", "production"):
        with pytest.raises(SwitchLocked, match="DBSWAP_ENV=production"):
            board.use(name)
    assert board.active == "production"
    assert json.loads((tmp_path / "rt" / "db-target.json").read_text())["target"] == "local"
    assert [e["outcome"] for e in board.history()] == ["refused", "refused"]


def test_production_lock_without_production_target_is_a_config_error(
    tmp_path: Path, sqlite_url: Callable[[str], str]
) -> None:
    env = {"DATABASE_URL_LOCAL": sqlite_url("local"), "DBSWAP_ENV": "production"}
    with pytest.raises(ConfigError, match="DATABASE_URL_PRODUCTION"):
        Switchboard.from_env(env, cwd=tmp_path)


def test_bad_timeout_is_refused(board: Switchboard) -> None:
    with pytest.raises(ConfigError, match="timeout"):
        board.use("production", timeout=0)
    assert board.active == "local"


@pytest.mark.postgres
def test_working_on_production_never_connects_to_local(
    pg_url: Callable[[str], str], tmp_path: Path
) -> None:
    urls = {"local": pg_url("local"), "production": pg_url("production")}
    seed(urls["production"], ["prod-1"])
    local_db = sa.make_url(urls["local"]).database
    assert pg_connections(local_db) == 0
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")
    board.use("production")
    make = board.sessionmaker()
    for _ in range(5):
        with make() as s:
            assert read_labels(s) == ["prod-1"]
    with board.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    assert pg_connections(local_db) == 0
    assert not board._engines.created("local")
    board.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("grace", [0.0, 0.5], ids=["no-grace", "after-the-grace"])
def test_connections_to_the_inactive_target_drop_to_zero(
    pg_url: Callable[[str], str], tmp_path: Path, grace: float
) -> None:
    """Once its in-flight sessions end: at once without a retire grace, else when it ends
    (the default keeps a switched-away target's idle connections 5 s, for a switch back)."""
    urls = {"local": pg_url("local"), "production": pg_url("production")}
    seed(urls["local"], ["l"])
    seed(urls["production"], ["p"])
    dbs = {name: sa.make_url(url).database for name, url in urls.items()}
    board = Switchboard(urls, runtime_dir=tmp_path / "rt", retire_grace=grace)
    make = board.sessionmaker()
    in_flight = make()
    assert read_labels(in_flight) == ["l"]  # holds a local connection across the switches
    for i in range(40):
        board.use("production" if i % 2 == 0 else "local")
        with make() as s:
            read_labels(s)
    assert board.active == "local"
    board.use("production")
    with make() as s:
        assert read_labels(s) == ["p"]
    if grace:
        assert pg_connections(dbs["local"]) >= 1  # kept for a switch back...
        time.sleep(grace + 0.5)  # ...until the grace ends
    assert pg_connections(dbs["local"]) == 1  # only the in-flight session's
    in_flight.close()
    assert pg_connections(dbs["local"]) == 0
    assert pg_connections(dbs["production"]) >= 1
    board.dispose()


@pytest.mark.postgres
def test_a_short_grace_is_not_kept_waiting_by_a_longer_one(
    pg_url: Callable[[str], str], tmp_path: Path
) -> None:
    """Boards of one process share the retiring thread, each with its own grace."""
    long_urls = {"local": pg_url("long_local"), "production": pg_url("long_production")}
    urls = {"local": pg_url("local"), "production": pg_url("production")}
    local_db = sa.make_url(urls["local"]).database
    patient = Switchboard(long_urls, runtime_dir=tmp_path / "long", retire_grace=60)
    board = Switchboard(urls, runtime_dir=tmp_path / "rt", retire_grace=0.2)
    with patient.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    patient.use("production")  # waits 60 s to retire its local
    with board.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    board.use("production")
    deadline = time.monotonic() + 5
    while pg_connections(local_db) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pg_connections(local_db) == 0
    board.dispose()
    patient.dispose()


@pytest.mark.postgres
def test_asyncio_connections_close_after_their_event_loop_ended(
    pg_url: Callable[[str], str], tmp_path: Path
) -> None:
    """A test client's loop (or ``asyncio.run``'s) is gone when the grace ends: the idle
    connections it opened still close, with no "deleted while still open" at collection."""
    urls = {"local": pg_url("local"), "production": pg_url("production")}
    local_db = sa.make_url(urls["local"]).database
    board = Switchboard(urls, runtime_dir=tmp_path / "rt", retire_grace=0.2)
    make = board.async_sessionmaker()

    async def read() -> None:
        async with make() as s:
            await s.execute(sa.text("SELECT 1"))

    asyncio.run(read())
    assert pg_connections(local_db) == 1
    board.use("production")
    deadline = time.monotonic() + 5
    while pg_connections(local_db) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pg_connections(local_db) == 0
    gc.collect()  # a ResourceWarning here fails the test (filterwarnings = error)
    board.dispose()


@pytest.mark.postgres
def test_a_connection_from_before_a_switch_back_closes_when_given_back(
    pg_url: Callable[[str], str], tmp_path: Path
) -> None:
    """Switched away and back while a session was open: its connection belongs to a pool the
    switch discarded, so it must close on check-in, not linger until garbage collection."""
    urls = {"local": pg_url("local"), "production": pg_url("production")}
    seed(urls["local"], ["l"])
    local_db = sa.make_url(urls["local"]).database
    board = Switchboard(urls, runtime_dir=tmp_path / "rt", retire_grace=0)  # parked at once
    make = board.sessionmaker()
    gc.disable()  # the discarded pool would close it on collection: prove it needs none
    try:
        in_flight = make()
        assert read_labels(in_flight) == ["l"]
        board.use("production")
        board.use("local")
        assert pg_connections(local_db) == 2  # the in-flight one and the health check's
        in_flight.close()
        assert pg_connections(local_db) == 1
        with make() as s:
            assert read_labels(s) == ["l"]
        assert pg_connections(local_db) == 1  # the new pool's one connection, reused
    finally:
        gc.enable()
        board.dispose()


@pytest.mark.postgres
def test_a_connection_opened_by_a_pool_being_discarded_closes_when_given_back(
    pg_url: Callable[[str], str], tmp_path: Path
) -> None:
    """A session opening its connection while a switch away and back discards the pool:
    the connection belongs to the old pool even though the engine already has a new one."""
    urls = {"local": pg_url("local"), "production": pg_url("production")}
    seed(urls["local"], ["l"])
    local_db = sa.make_url(urls["local"]).database
    board = Switchboard(urls, runtime_dir=tmp_path / "rt", retire_grace=0)  # parked at once
    opening, release = threading.Event(), threading.Event()

    @sa.event.listens_for(board.engine_for("local"), "do_connect")
    def slow_to_open(*args: object) -> None:  # before the server answers, as on a slow network
        if threading.current_thread().name == "slow":
            opening.set()
            release.wait(10)

    labels_read: list[str] = []

    def request() -> None:
        with board.sessionmaker()() as s:
            labels_read.extend(read_labels(s))

    gc.disable()  # the discarded pool would close it on collection: prove it needs none
    try:
        slow = threading.Thread(target=request, name="slow")
        slow.start()
        assert opening.wait(10)
        board.use("production")
        board.use("local")  # back: local has a new pool, with the health check's connection
        release.set()
        slow.join(10)
        assert labels_read == ["l"]
        assert pg_connections(local_db) == 1  # the slow one closed when given back
    finally:
        gc.enable()
        release.set()
        board.dispose()


def test_only_pools_dbswap_no_longer_hands_out_listen_to_check_ins(board: Switchboard) -> None:
    """A check-in listener alone costs a SQLite query ~0.9 %: the pool of the active target and
    mode has none; a retired one closes what it gets back, until the target is active again."""
    board._engines.retire_grace = 0  # retired at once, not after a grace: what this is about
    make = board.sessionmaker()
    local = board.engine_for("local")
    with make() as s:
        assert read_labels(s) == ["local-1", "local-2"]
    assert not local.pool.dispatch.checkin
    held = local.connect()  # in use across the switches
    board.use("production")
    assert local.pool.dispatch.checkin  # retired
    board.use("local")
    assert not local.pool.dispatch.checkin
    assert board.engine_for("production").pool.dispatch.checkin
    held.close()
    board.use("local", read_only=True)  # the writable pool is released, the read-only one used
    read_only = board._engines.sync(board.target("local"), read_only=True)
    assert local.pool.dispatch.checkin and not read_only.pool.dispatch.checkin
    board.use("local", read_only=False)
    assert not local.pool.dispatch.checkin and read_only.pool.dispatch.checkin
    with make() as s:
        assert read_labels(s) == ["local-1", "local-2"]


def test_in_memory_sqlite_targets_survive_switching(tmp_path: Path) -> None:
    """Their data lives in their connections: a switch must neither close nor re-probe them."""
    urls = {
        name: f"sqlite:///file:dbswap-{name}-{tmp_path.name}?mode=memory&cache=shared&uri=true"
        for name in ("local", "production")
    }
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")
    for name in urls:
        with board.engine_for(name).begin() as conn:
            conn.execute(sa.text("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT)"))
            conn.execute(sa.text("INSERT INTO items VALUES (1, :label)"), {"label": name})
    make = board.sessionmaker()
    for target in ("production", "local", "production", "local"):
        board.use(target)
        with make() as s:
            assert read_labels(s) == [target]
    board.dispose()


T = TypeVar("T")


@pytest.fixture
def app_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An app's event loop, running in its own thread; use() is called from the test's."""
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    runner.join(10)
    loop.close()


def on(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(10)


async def open_a_session(board: Switchboard) -> None:
    """What an app's first request does: from then on, the app has a loop."""
    async with board.async_sessionmaker()() as s:
        await s.execute(sa.text("SELECT 1"))


def test_an_asyncio_app_is_checked_through_its_own_pool(
    urls: dict[str, str], tmp_path: Path, app_loop: asyncio.AbstractEventLoop
) -> None:
    """The health check's connection is the one the first async request after the switch
    uses, and no synchronous pool is opened for it (a SQLite file too: a first switch to it
    then costs what a switch back does)."""
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")
    server = board.target("production").dialect != "sqlite"

    async def read() -> list[str]:
        async with board.async_sessionmaker()() as s:
            return list(await s.scalars(sa.select(Item.label).order_by(Item.id)))

    try:
        assert on(app_loop, read()) == ["local-1", "local-2"]
        board.use("production")  # from another thread, as an admin endpoint's threadpool does
        pool = board.async_engine_for("production").sync_engine.pool
        assert pool.checkedin() == 1  # checked on the app's loop, and kept
        assert ("production", False) not in board._engines._sync
        if server:
            database = sa.make_url(urls["production"]).database
            assert database is not None and pg_connections(database) == 1
        assert on(app_loop, read()) == ["prod-1"]
        assert pool.checkedin() == 1  # the checked connection served the request, if any
    finally:
        on(app_loop, board.adispose())


@pytest.mark.postgres
def test_an_asyncio_app_is_not_switched_to_a_target_that_fails_its_check(
    pg_url: Callable[[str], str], tmp_path: Path, app_loop: asyncio.AbstractEventLoop
) -> None:
    local = pg_url("local")
    missing = sa.make_url(local).set(database="dbswap_no_such_database")
    urls = {"local": local, "production": missing.render_as_string(hide_password=False)}
    seed(urls["local"], ["l"])
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")

    try:
        on(app_loop, open_a_session(board))  # the app has a loop
        before = _unchanged(board)
        with pytest.raises(TargetUnavailable, match="does not exist"):
            board.use("production")
        assert _unchanged(board) == before
    finally:
        on(app_loop, board.adispose())


@pytest.mark.postgres
def test_a_silent_server_fails_the_check_on_time_without_blocking_the_apps_loop(
    pg_url: Callable[[str], str], tmp_path: Path, app_loop: asyncio.AbstractEventLoop
) -> None:
    """A server that accepts and never answers: the check gives up at its timeout, cancels
    the connection attempt on the app's loop, and the loop serves other work meanwhile."""
    silent = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(silent.accept()[0])

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    port = silent.getsockname()[1]
    urls = {"local": pg_url("local"), "production": f"postgresql://postgres@127.0.0.1:{port}/x"}
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")

    ticks: list[float] = []

    async def tick() -> None:
        for _ in range(20):
            ticks.append(time.monotonic())
            await asyncio.sleep(0.02)

    try:
        on(app_loop, open_a_session(board))
        before = _unchanged(board)
        ticking = asyncio.run_coroutine_threadsafe(tick(), app_loop)
        started = time.monotonic()
        with pytest.raises(TargetUnavailable, match=r"no answer within 0\.5 s"):
            board.use("production", timeout=0.5)
        assert 0.5 <= time.monotonic() - started < 3
        ticking.result(10)
        assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.3  # the loop never stalled
        assert _unchanged(board) == before
    finally:
        stop.set()
        acceptor.join(5)
        for conn in held:
            conn.close()
        silent.close()
        on(app_loop, board.adispose())


def test_a_switch_checks_the_sync_way_when_the_target_has_no_asyncio_driver(
    urls: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    app_loop: asyncio.AbstractEventLoop,
) -> None:
    """No asyncio driver for the new target: use() checks it the synchronous way."""
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")

    def no_driver(*args: object, **kwargs: object) -> None:
        raise ModuleNotFoundError("No module named 'aiosqlite'", name="aiosqlite")

    try:
        on(app_loop, open_a_session(board))  # the app has a loop
        monkeypatch.setattr("sqlalchemy.ext.asyncio.create_async_engine", no_driver)
        assert board.use("production").changed
        with board.sessionmaker()() as s:
            assert read_labels(s) == ["prod-1"]
    finally:
        on(app_loop, board.adispose())


def test_adispose_waits_for_the_asyncio_pools_a_switch_is_still_closing(
    urls: dict[str, str],
    tmp_path: Path,
    app_loop: asyncio.AbstractEventLoop,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A switch closes the old target's asyncio pool on the app's loop, in the background;
    closing the board must wait for that, or the loop ends with the task still pending."""
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")
    dispose_pool = dbswap._engines._dispose_pool

    async def slow_to_close(engine: Any) -> None:  # a server slow to say goodbye
        await asyncio.sleep(0.3)
        await dispose_pool(engine)

    monkeypatch.setattr("dbswap._engines._dispose_pool", slow_to_close)

    async def read() -> None:
        async with board.async_sessionmaker()() as s:
            await s.execute(sa.text("SELECT 1"))

    async def closing_tasks() -> list[str]:
        await board.adispose()
        return [
            task.get_coro().__qualname__  # type: ignore[union-attr]
            for task in asyncio.all_tasks()
            if task is not asyncio.current_task()
        ]

    on(app_loop, read())
    for target in ("production", "local", "production"):
        board.use(target)  # each retires a target whose asyncio pool is closed later
    assert on(app_loop, closing_tasks()) == []
    assert not board._engines._disposals


@pytest.mark.postgres
def test_retire_grace_keeps_a_pool_for_a_quick_switch_back_then_closes_it(
    pg_url: Callable[[str], str], tmp_path: Path
) -> None:
    urls = {"local": pg_url("local"), "production": pg_url("production")}
    seed(urls["local"], ["l"])
    seed(urls["production"], ["p"])
    local_db = sa.make_url(urls["local"]).database
    board = Switchboard(urls, runtime_dir=tmp_path / "rt", retire_grace=0.5)
    make = board.sessionmaker()
    with make() as s:
        assert read_labels(s) == ["l"]
        first_connection = s.connection().connection.dbapi_connection
    board.use("production")
    assert pg_connections(local_db) == 1  # kept during the grace
    board.use("local")  # back within the grace: the same pooled connection
    with make() as s:
        assert s.connection().connection.dbapi_connection is first_connection
    board.use("production")
    deadline = time.monotonic() + 5
    while pg_connections(local_db) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pg_connections(local_db) == 0  # closed once the grace is over
    board.dispose()


def test_retire_grace_from_the_environment_must_be_a_number(tmp_path: Path) -> None:
    env = {"DATABASE_URL_LOCAL": "sqlite:///l.db", "DBSWAP_RETIRE_GRACE": "soon"}
    with pytest.raises(ConfigError, match="DBSWAP_RETIRE_GRACE must be a number"):
        Switchboard.from_env(env, cwd=tmp_path)
    board = Switchboard.from_env(env | {"DBSWAP_RETIRE_GRACE": "2.5"}, cwd=tmp_path)
    assert board._engines.retire_grace == 2.5
    for unset in ({}, {"DBSWAP_RETIRE_GRACE": " "}):  # unset or blank: the default, 5 s
        default = Switchboard.from_env(
            {"DATABASE_URL_LOCAL": "sqlite:///l.db"} | unset, cwd=tmp_path
        )
        assert default._engines.retire_grace == 5.0


@pytest.mark.postgres
def test_a_switch_back_within_the_grace_finds_its_connections_warm(
    pg_url: Callable[[str], str], tmp_path: Path
) -> None:
    """The default retire grace: switching back and forth reconnects nothing (no storm)."""
    urls = {"local": pg_url("local"), "production": pg_url("production")}
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")  # the default: a 5 s grace
    make = board.sessionmaker()

    def backend() -> int:
        with make() as s:
            return int(s.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())

    first = {backend()}
    board.use("production")
    first.add(backend())
    for target in ("local", "production") * 5:
        board.use(target)
        assert backend() in first  # the same server connection: nothing opened again
    board.dispose()
