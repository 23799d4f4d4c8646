"""The hot path, piece by piece: what one pinned session costs, in ns, and where it goes.

Micro-benchmarks (interleaved like everything else) of each step a pinned
session takes: ``os.stat`` of the state file, ``FileStateStore.current()``,
``Switchboard.active``, ``Switchboard._pin``, a session's creation and
``get_bind``; beside them, the prototypes of ``_proposal.py`` (a memory-mapped
generation counter instead of the per-session ``stat()``, and a cached
``_pin``). A cProfile run of real sessions is kept for the report too.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import statistics
from collections.abc import Callable

from sqlalchemy.orm import Session

from dbswap import Switchboard

from ._databases import Item, seed_engine, sqlite_file
from ._measure import Batch, interleave, paired, timed_loop
from ._proposal import MmapStateStore
from ._report import Row
from ._workspace import Workspace
from .overhead import prime_state, proposal_board

SUITE = "hotpath"

# key, label, subject variant, baseline variant, baseline label
ROWS = (
    ("h.stat", "os.stat(state file)", "stat", "session.plain", "plain Session() create+close"),
    ("h.current", "FileStateStore.current()", "current", "stat", "os.stat"),
    ("h.current.nofile", "current(), no state file yet", "current.nofile", "current", "current()"),
    ("h.active", "Switchboard.active", "active", "current", "current()"),
    ("h.pin", "Switchboard._pin()", "pin", "current", "current()"),
    ("h.get_bind", "PinnedSession.get_bind()", "get_bind.pinned", "get_bind.plain", "plain"),
    ("h.session", "PinnedSession() create+close", "session.pinned", "session.plain", "plain"),
    ("h.mmap.read", "mmap counter read+compare", "mmap.read", "stat", "os.stat"),
    ("h.mmap.current", "proposed MmapStateStore.current()", "mmap.current", "current", "current()"),
    ("h.pin.proposed", "proposed _pin (mmap + cached)", "pin.proposed", "pin", "_pin()"),
    (
        "h.session.mmap-only",
        "PinnedSession() create+close, mmap store only",
        "session.mmap-only",
        "session.plain",
        "plain",
    ),
    (
        "h.session.proposed",
        "proposed PinnedSession() create+close",
        "session.proposed",
        "session.plain",
        "plain",
    ),
)


def run(ws: Workspace) -> list[Row]:
    other = sqlite_file(ws.fast, "hot-other")
    board = ws.board({"local": "sqlite://", "production": other}, "hot")
    fresh = ws.board({"local": "sqlite://", "production": sqlite_file(ws.fast, "hot-b")}, "hot0")
    fast = proposal_board(
        ws, {"local": "sqlite://", "production": sqlite_file(ws.fast, "hot-c")}, "hot-proposed"
    )
    mmap_dir = ws.runtime_dir("hot-mmap")
    mmap_only = ws.board_of(
        Switchboard,
        {"local": "sqlite://", "production": sqlite_file(ws.fast, "hot-d")},
        "hot-mmap",
        runtime_dir=mmap_dir,
        store=MmapStateStore(mmap_dir),
    )
    for b in (board, fast, mmap_only):
        seed_engine(b.engine_for("local"))
        prime_state(b)
    engine = board.engine_for("local")
    path = os.fspath(board.runtime_dir / "db-target.json")
    store, fresh_store, mmap_store = board._store, fresh._store, fast._store
    assert isinstance(mmap_store, MmapStateStore)  # for the type checker
    stamp = mmap_store.counter.read()
    counter = mmap_store.counter
    plain_open, pinned_open = Session(bind=engine), board.session_class()
    try:
        ops: dict[str, Callable[[], object]] = {
            "empty": lambda: None,
            "stat": lambda: os.stat(path),
            "current": store.current,
            "current.nofile": fresh_store.current,
            "active": lambda: board.active,
            "pin": lambda: board._pin(False),
            "get_bind.plain": plain_open.get_bind,
            "get_bind.pinned": pinned_open.get_bind,
            "session.plain": lambda: Session(bind=engine).close(),
            "session.pinned": lambda: board.session_class().close(),
            "mmap.read": lambda: counter.read() == stamp,
            "mmap.current": mmap_store.current,
            "pin.proposed": lambda: fast._pin(False),
            "session.proposed": lambda: fast.session_class().close(),
            "session.mmap-only": lambda: mmap_only.session_class().close(),
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
        counter.close()
        assert isinstance(mmap_only._store, MmapStateStore)
        mmap_only._store.counter.close()
    rows = [
        Row.of(SUITE, key, label, paired(times[subject], times[base]), base_label)
        for key, label, subject, base, base_label in ROWS
    ]
    ws.extra["breakdown_ns"] = breakdown(times)
    ws.extra["profile"], ws.extra["profile_text"] = profile(board, ws.sizes.profile_sessions)
    return rows


def breakdown(times: dict[str, list[float]]) -> dict[str, float]:
    """Where one pinned session's extra cost goes, in ns (medians; differences of medians)."""
    m = {name: statistics.median(values) * 1e9 for name, values in times.items()}
    return {
        "harness loop + call (subtracted below)": m["empty"],
        "per-session total, dbswap - plain": m["session.pinned"] - m["session.plain"],
        "  os.stat syscall": m["stat"] - m["empty"],
        "  FileStateStore.current() Python around stat": m["current"] - m["stat"],
        "  _pin() beyond current() (_current, target, bind lookup)": m["pin"] - m["current"],
        "  PinnedSession __init__/close beyond _pin()": (
            m["session.pinned"] - m["session.plain"] - (m["pin"] - m["empty"])
        ),
        "no state file yet: current() extra (FileNotFoundError)": m["current.nofile"]
        - m["current"],
        "get_bind per statement, dbswap - plain": m["get_bind.pinned"] - m["get_bind.plain"],
        "proposed per-session total, dbswap - plain": m["session.proposed"] - m["session.plain"],
        "mmap store only (no stat), per-session total": m["session.mmap-only"] - m["session.plain"],
        "proposed: mmap counter read (replaces the stat)": m["mmap.read"] - m["empty"],
        "proposed: _pin() total": m["pin.proposed"] - m["empty"],
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
        if "dbswap" in filename or "_proposal" in filename:
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
