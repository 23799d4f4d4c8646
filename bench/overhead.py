"""Target 1: a pinned dbswap session costs what a plain SQLAlchemy session costs (<= 1 %).

Both sides use the SAME engine (``board.engine_for(name)``), so the ratio is
dbswap's own per-session work: pinning (one state check) and ``get_bind``.
Each operation creates a session, reads one row by primary key and closes
it: the per-request pattern of a web app.

Every row runs, in the same interleaved rounds, a second copy of its
baseline: that A/A ratio (in the row's note) is the row's own noise floor.
Boards have committed a state before measuring, as in any app that has
switched once; one row shows the cost before that, when there is no file.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from dbswap import RoutingEngine, State, Switchboard

from ._databases import SELECT_1, Item, seed, seed_engine, sqlite_file
from ._measure import Batch, Ratio, interleave, paired, timed_loop
from ._report import Row
from ._workspace import Workspace

SUITE = "overhead"
TARGET = 1.01
PLAIN = "plain sessionmaker, same engine"


def run(ws: Workspace) -> list[Row]:
    rows = _sqlite_memory(ws)
    rows += _sqlite_file(ws)
    rows += _postgres(ws)
    return rows


Factory = Callable[[], Session]


def per_class(make_factory: Callable[[], Factory], op: Callable[[Factory], object]) -> Batch:
    """A Batch running ``op(factory)`` n times, with a fresh factory (sessionmaker) each batch.

    Each sessionmaker makes a Session subclass of its own, and where CPython's attribute
    cache happens to place that class moves a SQLite query by up to ~1 % (plain against
    plain). A new one per batch, used once before the clock starts, averages that luck out
    over the rounds on both sides alike, while each batch runs one class, as an app does.
    """

    def batch(n: int) -> float:
        factory = make_factory()
        op(factory)
        started = time.perf_counter()
        for _ in range(n):
            op(factory)
        return time.perf_counter() - started

    return batch


def get_one(factory: Factory) -> None:
    """Create a session, read one row by primary key, close it: a web request's pattern."""
    with factory() as session:
        session.get(Item, 1)


def orm_get(make_factory: Callable[[], Factory]) -> Batch:
    return per_class(make_factory, get_one)


def plain_maker(engine: Engine) -> Callable[[], Factory]:
    """What makes the baseline's sessionmakers: plain SQLAlchemy on ``engine``."""
    return functools.partial(sessionmaker, bind=engine)


def core_select(engine: Engine | RoutingEngine) -> Batch:
    def op() -> None:
        with engine.connect() as conn:
            conn.execute(SELECT_1)

    return timed_loop(op)


def compare(ws: Workspace, subject: Batch, baseline: Batch) -> Ratio:
    times = interleave(
        {"subject": subject, "baseline": baseline},
        rounds=ws.sizes.rounds,
        batch_seconds=ws.sizes.batch_seconds,
    )
    return paired(times["subject"], times["baseline"])


@dataclass
class Case:
    """One row: dbswap against a baseline, with an A/A twin of the baseline."""

    key: str
    label: str
    baseline_label: str
    baseline: Batch
    twin: Batch  # the baseline again, through its own objects
    dbswap: Batch
    note: str = ""


def measure(ws: Workspace, case: Case) -> list[Row]:
    variants = {"baseline": case.baseline, "twin": case.twin, "dbswap": case.dbswap}
    times = interleave(variants, rounds=ws.sizes.rounds, batch_seconds=ws.sizes.batch_seconds)
    floor = paired(times["twin"], times["baseline"])
    note = f"A/A {floor.ratio:.3f} [{floor.low:.3f}-{floor.high:.3f}]"
    return [
        Row.of(
            SUITE,
            case.key,
            case.label,
            paired(times["dbswap"], times["baseline"]),
            case.baseline_label,
            at_most=TARGET,
            note=f"{note}; {case.note}" if case.note else note,
        )
    ]


def orm_case(
    key: str,
    label: str,
    baseline: Engine,
    board: Switchboard,
    baseline_label: str = PLAIN,
    note: str = "",
) -> Case:
    """ORM get through the board's pinned sessions against plain sessions on ``baseline``."""
    return Case(
        key,
        label,
        baseline_label,
        orm_get(plain_maker(baseline)),
        orm_get(plain_maker(baseline)),
        orm_get(board.sessionmaker),
        note=note,
    )


def core_case(key: str, label: str, engine: Engine, board: Switchboard) -> Case:
    """Core ``SELECT 1`` through ``board.engine`` against ``engine.connect()``."""
    return Case(
        key,
        label,
        "engine.connect()",
        core_select(engine),
        core_select(engine),
        core_select(board.engine),
    )


def switched_once(board: Switchboard, other: str) -> None:
    """Switch away and back: the state file then exists, as in any app that switched once."""
    active = board.active
    board.use(other, user="bench")
    board.use(active, user="bench")


def prime_state(board: Switchboard) -> None:
    """Commit the active target as ``use()`` would, without its health check.

    For ``sqlite://``: the check runs in a worker thread, where the
    SingletonThreadPool opens another, empty, database, whose connection
    cannot be closed later from the thread that disposes the engine.
    """
    board._store.write(State(target=board.active, generation=1, switched_by="bench"))


def _sqlite_memory(ws: Workspace) -> list[Row]:
    # sqlite:// uses a SingletonThreadPool (one connection, and one database, per
    # thread): the cheapest query there is, so the largest relative overhead. Seeded
    # from this thread, which is the one that runs the benchmark.
    def board(name: str) -> Switchboard:
        urls = {"local": "sqlite://", "production": sqlite_file(ws.fast, f"{name}-other")}
        made = ws.board(urls, name)
        seed_engine(made.engine_for("local"))
        return made

    current, fresh = board("mem"), board("mem-fresh")
    prime_state(current)
    engine = current.engine_for("local")
    rows = measure(
        ws,
        orm_case(
            "1a.get.sqlite-mem", "ORM get, SQLite :memory: (SingletonThreadPool)", engine, current
        ),
    )
    rows += measure(
        ws,
        orm_case(
            "1a.get.sqlite-mem.no-state",
            "same, before any switch (no state file yet)",
            fresh.engine_for("local"),
            fresh,
            note="no db-target.json yet: 'no state' is cached too; one failing stat() a second",
        ),
    )
    rows += measure(
        ws,
        core_case(
            "1c.core.sqlite-mem", "Core SELECT 1 via board.engine, SQLite :memory:", engine, current
        ),
    )
    return rows


def _sqlite_file(ws: Workspace) -> list[Row]:
    # A file on tmpfs: a QueuePool as in a real app.
    local = sqlite_file(ws.fast, "overhead-local")
    seed(local)
    urls = {"local": local, "production": sqlite_file(ws.fast, "overhead-prod")}
    board = ws.board(urls, "overhead-file")
    switched_once(board, "production")
    engine = board.engine_for("local")
    own = sa.create_engine(board.url_for("local"))  # an app without dbswap
    try:
        rows = measure(
            ws,
            orm_case(
                "1a.get.sqlite-file", "ORM get, SQLite file on tmpfs (QueuePool)", engine, board
            ),
        )
        rows += measure(
            ws,
            orm_case(
                "1e.get.sqlite-file.own-engine",
                "same, baseline on its own plain engine",
                own,
                board,
                "plain sessionmaker, own engine",
                note="end to end: also counts how dbswap creates and prepares engines",
            ),
        )
        return rows
    finally:
        own.dispose()


def _postgres(ws: Workspace) -> list[Row]:
    keys = (
        ("1b.get.pg", "ORM get, PostgreSQL (psycopg)"),
        ("1c.core.pg", "Core SELECT 1 via board.engine, PostgreSQL"),
        ("1f.get.pg.read-only", "ORM get, PostgreSQL, read-only switch"),
    )
    if ws.postgres is None:
        return [Row.skip(SUITE, key, label, ws.postgres_reason) for key, label in keys]
    urls = ws.pg_urls()
    board = ws.board(urls, "overhead-pg")
    switched_once(board, "production")
    engine = board.engine_for("local")
    rows = measure(ws, orm_case(*keys[0], engine, board))
    rows += measure(ws, core_case(*keys[1], engine, board))
    rows += _postgres_read_only(ws, urls)
    return rows


def _postgres_read_only(ws: Workspace, urls: dict[str, str]) -> list[Row]:
    """A read-only switch: pinned sessions against plain ones on the same read-only engine.

    Read-only sessions have a pool of their own, whose connections dbswap makes
    read-only when they open; both sides use it, as rows 1a-1c share an engine.
    """
    board = ws.board(urls, "overhead-pg-ro")
    board.use("production", user="bench")
    board.use("local", user="bench", read_only=True)
    engine = board._engines.sync(board.targets["local"], read_only=True)
    return measure(
        ws,
        orm_case(
            "1f.get.pg.read-only",
            "ORM get, PostgreSQL, read-only switch",
            engine,
            board,
            "plain sessionmaker, same read-only engine",
            note="the server enforces it; dbswap sets the mode once per new connection",
        ),
    )
