"""The hot path, piece by piece: what one pinned session costs, in ns, and where it goes.

Micro-benchmarks (interleaved like everything else) of each step a pinned
session takes in the current code: the read of the memory-mapped generation
counter (``db-target.gen``), which is all the inline fast-pin check of a new
session does, then create+close through ``board.sessionmaker()`` and through
``board.session_class``, and ``get_bind``. Beside them, for reference,
the slow path taken once a second or after a switch: ``Switchboard._pin()``
and the ``os.stat`` of the state file in ``FileStateStore.current()``
(which every session paid before the counter). ``session.plain`` runs
twice (A/A): the difference between its twins is the resolution of the ns
figures. A cProfile run of real sessions is kept for the report too.
``h.timebox`` compares create+close on a board whose active switch is
time-boxed (it ends in a day) with a board whose switch is not: a time limit
only shortens the fast pin's deadline, so sessions should not notice it.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import statistics
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from sqlalchemy.orm import Session, sessionmaker

from dbswap import Switchboard
from dbswap._state import FileStateStore, State, utc_text

from ._databases import Item, seed_engine, sqlite_file
from ._measure import Batch, interleave, paired, timed_loop
from ._report import Row
from ._workspace import Workspace
from .overhead import TARGET, Factory, per_class, prime_state

SUITE = "hotpath"
TOTAL_NS = "per session from board.sessionmaker(), dbswap - plain sessionmaker"

# key, label, subject variant, baseline variant, baseline label
ROWS = (
    ("h.counter", "mmap counter read (64-bit item)", "counter", "stat", "os.stat(state file)"),
    ("h.current", "FileStateStore.current(), counter unchanged", "current", "stat", "os.stat"),
    (
        "h.current.stat",
        "current(), stat path (once a second, or after a switch)",
        "current.stat",
        "current",
        "current() fast path",
    ),
    ("h.current.nofile", "current(), no state file yet", "current.nofile", "current", "current()"),
    ("h.active", "Switchboard.active", "active", "current", "current()"),
    ("h.fast", "inline fast-pin check (every session)", "fast", "current", "current()"),
    ("h.pin", "Switchboard._pin() (slow path, cached tuple)", "pin", "current", "current()"),
    ("h.get_bind", "PinnedSession.get_bind()", "get_bind.pinned", "get_bind.plain", "plain"),
    ("h.session", "PinnedSession() create+close", "session.pinned", "session.plain", "plain"),
    (
        "h.maker",
        "board.sessionmaker()() create+close",
        "maker.pinned",
        "maker.plain",
        "sessionmaker(bind=engine)()",
    ),
)


def run(ws: Workspace) -> list[Row]:
    board = ws.board({"local": "sqlite://", "production": sqlite_file(ws.fast, "hot-b")}, "hot")
    fresh = ws.board({"local": "sqlite://", "production": sqlite_file(ws.fast, "hot-c")}, "hot0")
    seed_engine(board.engine_for("local"))
    prime_state(board)
    engine = board.engine_for("local")
    store, fresh_store = _file_store(board), _file_store(fresh)
    store.current()  # maps the counter
    counter = store._counter
    if counter is None:
        raise RuntimeError(f"the generation counter could not be mapped in {board.runtime_dir}")
    path = os.fspath(store.path)
    session_class = board.session_class  # made on first use, without a fast pin
    board._pin(False)
    board._pin(False)  # the second one installs a fast pin with a live deadline

    def fast_check() -> object:  # what a new session does inline
        fast = session_class._dbswap_fast
        if fast is not None and fast[0][0] == fast[1]:
            return fast[3]
        return None

    if fast_check() is None:
        raise RuntimeError("the board installed no fast pin")
    plain_open, pinned_open = Session(bind=engine), board.session_class()
    plain_maker, pinned_maker = sessionmaker(bind=engine), board.sessionmaker()
    try:
        ops: dict[str, Callable[[], object]] = {
            "empty": lambda: None,
            "stat": lambda: os.stat(path),
            "counter": counter.read,
            "current": store.current,
            "current.stat": store._stat_current,
            "current.nofile": fresh_store.current,
            "active": lambda: board.active,
            "fast": fast_check,
            "pin": lambda: board._pin(False),
            "get_bind.plain": plain_open.get_bind,
            "get_bind.pinned": pinned_open.get_bind,
            "session.plain": lambda: Session(bind=engine).close(),
            "session.plain.twin": lambda: Session(bind=engine).close(),
            "session.pinned": lambda: board.session_class().close(),
            "maker.plain": lambda: plain_maker().close(),
            "maker.pinned": lambda: pinned_maker().close(),
        }
        variants: dict[str, Batch] = {name: timed_loop(op) for name, op in ops.items()}
        times = interleave(
            variants,
            rounds=ws.sizes.micro_rounds,
            batch_seconds=ws.sizes.micro_batch_seconds,
        )
    finally:
        plain_open.close()
        pinned_open.close()
    floor = paired(times["session.plain.twin"], times["session.plain"])
    aa = f"A/A {floor.ratio:.3f} [{floor.low:.3f}-{floor.high:.3f}]"
    rows = [
        Row.of(
            SUITE,
            key,
            label,
            paired(times[subject], times[base]),
            base_label,
            note=aa if key == "h.session" else "",
        )
        for key, label, subject, base, base_label in ROWS
    ]
    ws.extra["breakdown_ns"] = breakdown(times)
    ws.extra["profile"], ws.extra["profile_text"] = profile(board, ws.sizes.profile_sessions)
    return rows + timeboxed(ws)


def timeboxed(ws: Workspace) -> list[Row]:
    """Session create+close with a time-boxed switch active, against one without a limit."""

    def board(name: str, boxed: bool) -> Switchboard:
        made = ws.board({"local": "sqlite://", "production": sqlite_file(ws.fast, name)}, name)
        ends = utc_text(datetime.now(timezone.utc) + timedelta(days=1))
        limit = {"expires_at": ends, "return_to": "production"} if boxed else {}
        made._store.write(State("local", 1, switched_by="bench", **limit))  # as use() would
        _ = made.session_class  # made on first use, without a fast pin
        made._pin(False)
        made._pin(False)  # the second one installs a fast pin with a live deadline
        if made.session_class._dbswap_fast is None:
            raise RuntimeError(f"the board {name} installed no fast pin")
        return made

    def create_close(factory: Factory) -> None:
        factory().close()

    boxed, plain, twin = board("box-on", True), board("box-off", False), board("box-off2", False)
    if boxed.time_limit is None or plain.time_limit is not None:
        raise RuntimeError("the time-boxed board has no time limit, or the other one has")
    variants = {
        name: per_class(made.sessionmaker, create_close)
        for name, made in (("boxed", boxed), ("plain", plain), ("twin", twin))
    }
    times = interleave(
        variants, rounds=ws.sizes.micro_rounds, batch_seconds=ws.sizes.micro_batch_seconds
    )
    floor = paired(times["twin"], times["plain"])
    return [
        Row.of(
            SUITE,
            "h.timebox",
            "board.sessionmaker()() create+close, a time-boxed switch active",
            paired(times["boxed"], times["plain"]),
            "same, a switch without a time limit",
            at_most=TARGET,
            note=f"A/A {floor.ratio:.3f} [{floor.low:.3f}-{floor.high:.3f}]",
        )
    ]


def _file_store(board: Switchboard) -> FileStateStore:
    store = board._store
    if not isinstance(store, FileStateStore):
        raise TypeError(f"expected the file store, got {type(store).__name__}")
    return store


def breakdown(times: dict[str, list[float]]) -> dict[str, float]:
    """Where one pinned session's extra cost goes, in ns (medians; differences of medians)."""
    m = {name: statistics.median(values) * 1e9 for name, values in times.items()}
    direct = m["session.pinned"] - m["session.plain"]
    fast = m["fast"] - m["empty"]
    current = m["current"] - m["empty"]
    counter = m["counter"] - m["empty"]
    return {
        "harness loop + call (subtracted below)": m["empty"],
        TOTAL_NS: m["maker.pinned"] - m["maker.plain"],
        "  of which the inline fast-pin check": fast,
        "    mmap counter read": counter,
        "    the rest (attribute loads, compare)": fast - counter,
        "board.session_class() called directly, dbswap - plain Session": direct,
        "  PinnedSession __init__/close beyond the check": direct - fast,
        "slow path (once a second, after a switch): Switchboard._pin()": m["pin"] - m["empty"],
        "  of which FileStateStore.current()": current,
        "A/A: plain twin - plain (resolution of these figures)": m["session.plain.twin"]
        - m["session.plain"],
        "get_bind per statement, dbswap - plain": m["get_bind.pinned"] - m["get_bind.plain"],
        "once a second (or after a switch): current() stat path": m["current.stat"] - m["empty"],
        "  of which os.stat (what every session paid before the counter)": m["stat"] - m["empty"],
        "no state file yet: current() extra": m["current.nofile"] - m["current"],
    }


def profile(board: Switchboard, sessions: int) -> tuple[list[dict[str, object]], str]:
    """cProfile of pinned create+get+close; dbswap's own functions, ns per session."""
    factory = board.sessionmaker()

    def loop() -> None:
        for _ in range(sessions):
            with factory() as session:
                session.get(Item, 1)

    profiler = cProfile.Profile()
    profiler.runcall(loop)
    stats = pstats.Stats(profiler)
    rows: list[dict[str, object]] = []
    for (filename, line, function), entry in stats.stats.items():  # type: ignore[attr-defined]
        calls, _, tottime, cumtime = entry[0], entry[1], entry[2], entry[3]
        if "dbswap" in filename:
            rows.append(
                {
                    "function": f"{os.path.basename(filename)}:{line}({function})",
                    "calls_per_session": calls / sessions,
                    "own_ns_per_session": tottime / sessions * 1e9,
                    "cumulative_ns_per_session": cumtime / sessions * 1e9,
                }
            )
    rows.sort(key=lambda r: float(r["cumulative_ns_per_session"]), reverse=True)  # type: ignore[arg-type]
    text = io.StringIO()
    total = pstats.Stats(profiler, stream=text)
    total.sort_stats("cumulative").print_stats(40)
    return rows, text.getvalue()
