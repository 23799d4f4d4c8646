"""Target 1: a pinned dbswap session costs what a plain SQLAlchemy session costs (<= 1 %).

Both sides use the SAME engine (``board.engine_for(name)``), so the ratio is
dbswap's own per-session work: pinning (one state check) and ``get_bind``.
Each operation creates a session, reads one row by primary key and closes
it: the per-request pattern of a web app.

Every row runs, in the same interleaved rounds, a second copy of its
baseline: that A/A ratio (in the row's note) is the row's own noise floor.
Rows marked ``.proposed`` run the prototype of the hot-path patch
(``_proposal.py``) against its own plain baseline, in the same rounds too.
Boards have committed a state before measuring, as in any app that has
switched once; one row shows the cost before that, when there is no file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from dbswap import RoutingEngine, State, Switchboard

from ._databases import SELECT_1, Item, seed, seed_engine, sqlite_file
from ._measure import Batch, Ratio, interleave, paired, timed_loop
from ._proposal import FastPinBoard, MmapStateStore
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


def orm_get(factory: Callable[[], Session]) -> Batch:
    def op() -> None:
        with factory() as session:
            session.get(Item, 1)

    return timed_loop(op)


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
    """One row: dbswap against a baseline, with an A/A twin, maybe with the proposal."""

    key: str
    label: str
    baseline_label: str
    baseline: Batch
    twin: Batch  # the baseline again, through its own objects
    dbswap: Batch
    proposed: tuple[Batch, Batch] | None = None  # (its plain baseline, proposed dbswap)
    note: str = ""


def measure(ws: Workspace, case: Case) -> list[Row]:
    variants = {"baseline": case.baseline, "twin": case.twin, "dbswap": case.dbswap}
    if case.proposed is not None:
        variants["p-baseline"], variants["proposed"] = case.proposed
    times = interleave(variants, rounds=ws.sizes.rounds, batch_seconds=ws.sizes.batch_seconds)
    floor = paired(times["twin"], times["baseline"])
    note = f"A/A {floor.ratio:.3f} [{floor.low:.3f}-{floor.high:.3f}]"
    rows = [
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
    if case.proposed is not None:
        rows.append(
            Row.of(
                SUITE,
                f"{case.key}.proposed",
                "  same, with the proposed hot-path patch",
                paired(times["proposed"], times["p-baseline"]),
                case.baseline_label,
                at_most=TARGET,
            )
        )
    return rows


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


def proposal_board(ws: Workspace, urls: dict[str, str], name: str) -> FastPinBoard:
    """A board running the prototype of the proposed patch (see ``_proposal.py``)."""
    runtime_dir = ws.runtime_dir(name)
    store = MmapStateStore(runtime_dir)
    return ws.board_of(FastPinBoard, urls, name, runtime_dir=runtime_dir, store=store)


def _sqlite_memory(ws: Workspace) -> list[Row]:
    # sqlite:// uses a SingletonThreadPool (one connection, and one database, per
    # thread): the cheapest query there is, so the largest relative overhead. Seeded
    # from this thread, which is the one that runs the benchmark.
    def board(name: str, cls: type[Switchboard] = Switchboard) -> Switchboard:
        urls = {"local": "sqlite://", "production": sqlite_file(ws.fast, f"{name}-other")}
        if cls is FastPinBoard:
            made: Switchboard = proposal_board(ws, urls, name)
        else:
            made = ws.board(urls, name)
        seed_engine(made.engine_for("local"))
        return made

    current, proposed, fresh = board("mem"), board("mem-p", FastPinBoard), board("mem-fresh")
    prime_state(current)
    prime_state(proposed)
    engine, p_engine = current.engine_for("local"), proposed.engine_for("local")
    plain = sessionmaker(bind=engine)
    p_plain = orm_get(sessionmaker(bind=p_engine))
    rows = measure(
        ws,
        Case(
            "1a.get.sqlite-mem",
            "ORM get, SQLite :memory: (SingletonThreadPool)",
            PLAIN,
            orm_get(plain),
            orm_get(sessionmaker(bind=engine)),
            orm_get(current.sessionmaker()),
            (p_plain, orm_get(proposed.sessionmaker())),
        ),
    )
    fresh_engine = fresh.engine_for("local")
    rows += measure(
        ws,
        Case(
            "1a.get.sqlite-mem.no-state",
            "same, before any switch (no state file yet)",
            PLAIN,
            orm_get(sessionmaker(bind=fresh_engine)),
            orm_get(sessionmaker(bind=fresh_engine)),
            orm_get(fresh.sessionmaker()),
            note="each pin's stat() raises FileNotFoundError",
        ),
    )
    rows += measure(
        ws,
        Case(
            "1c.core.sqlite-mem",
            "Core SELECT 1 via board.engine, SQLite :memory:",
            "engine.connect()",
            core_select(engine),
            core_select(engine),
            core_select(current.engine),
            (core_select(p_engine), core_select(proposed.engine)),
        ),
    )
    return rows


def _sqlite_file(ws: Workspace) -> list[Row]:
    # A file on tmpfs: a QueuePool as in a real app, and dbswap's check-in listener is on.
    local = sqlite_file(ws.fast, "overhead-local")
    seed(local)
    urls = {"local": local, "production": sqlite_file(ws.fast, "overhead-prod")}
    board = ws.board(urls, "overhead-file")
    proposed = proposal_board(ws, urls, "overhead-file-p")
    switched_once(board, "production")
    switched_once(proposed, "production")
    engine = board.engine_for("local")
    own = sa.create_engine(board.url_for("local"))  # an app without dbswap: no listener
    try:
        rows = measure(
            ws,
            Case(
                "1a.get.sqlite-file",
                "ORM get, SQLite file on tmpfs (QueuePool)",
                PLAIN,
                orm_get(sessionmaker(bind=engine)),
                orm_get(sessionmaker(bind=engine)),
                orm_get(board.sessionmaker()),
                (
                    orm_get(sessionmaker(bind=proposed.engine_for("local"))),
                    orm_get(proposed.sessionmaker()),
                ),
            ),
        )
        rows += measure(
            ws,
            Case(
                "1e.get.sqlite-file.own-engine",
                "same, baseline on its own plain engine",
                "plain sessionmaker, own engine",
                orm_get(sessionmaker(bind=own)),
                orm_get(sessionmaker(bind=own)),
                orm_get(board.sessionmaker()),
                note="end to end: also counts dbswap's pool check-in listener",
            ),
        )
        return rows
    finally:
        own.dispose()


def _postgres(ws: Workspace) -> list[Row]:
    keys = (
        ("1b.get.pg", "ORM get, PostgreSQL (psycopg)"),
        ("1b.get.pg.proposed", "  same, with the proposed hot-path patch"),
        ("1c.core.pg", "Core SELECT 1 via board.engine, PostgreSQL"),
    )
    if ws.postgres is None:
        return [Row.skip(SUITE, key, label, ws.postgres_reason) for key, label in keys]
    urls = ws.pg_urls()
    board = ws.board(urls, "overhead-pg")
    proposed = proposal_board(ws, urls, "overhead-pg-p")
    switched_once(board, "production")
    switched_once(proposed, "production")
    engine = board.engine_for("local")
    rows = measure(
        ws,
        Case(
            keys[0][0],
            keys[0][1],
            PLAIN,
            orm_get(sessionmaker(bind=engine)),
            orm_get(sessionmaker(bind=engine)),
            orm_get(board.sessionmaker()),
            (
                orm_get(sessionmaker(bind=proposed.engine_for("local"))),
                orm_get(proposed.sessionmaker()),
            ),
        ),
    )
    rows += measure(
        ws,
        Case(
            keys[2][0],
            keys[2][1],
            "engine.connect()",
            core_select(engine),
            core_select(engine),
            core_select(board.engine),
        ),
    )
    return rows
