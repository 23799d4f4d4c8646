"""Target 2: ``board.use()`` between two warm targets, p50 and p99, in-process.

``use()`` = lock -> health check (the new state file is written and fsynced
meanwhile) -> atomic replace -> audit line -> retire the previous target. An
instrumented board times the health check
inside each ``use()``, so "switch cost minus health check" is measured per
switch, not guessed. The baseline is a bare health round trip: a new
connection and ``SELECT 1`` on a plain engine, interleaved with the switches.
The previous target's idle connections are closed by each switch (that is
guarantee 6), so the check of the next switch back opens a new connection:
the baseline does too.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from dbswap import Health, State, Switchboard
from dbswap._state import FileStateStore

from ._databases import SELECT_1, fs_type, seed, sqlite_file
from ._measure import median_interval, percentile
from ._report import Row
from ._workspace import Workspace

SUITE = "switch"
BUDGET = 0.005  # seconds a switch may add on top of its health check (p99)


class TimedBoard(Switchboard):
    """A Switchboard that records how long each health check inside ``use()`` took."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.check_times: list[float] = []

    def _check(self, *args: Any, **kw: Any) -> Health:
        started = time.perf_counter()
        try:
            return super()._check(*args, **kw)
        finally:
            self.check_times.append(time.perf_counter() - started)


class TimedStore(FileStateStore):
    """The file store, recording how long each staging (during the check) and commit took."""

    def __init__(self, runtime_dir: Path) -> None:
        super().__init__(runtime_dir)
        self.stage_times: list[float] = []
        self.write_times: list[float] = []

    def stage(self, state: State) -> None:
        _timed(self.stage_times, super().stage, state)

    def write(self, state: State) -> None:
        _timed(self.write_times, super().write, state)


def _timed(times: list[float], call: Callable[[State], None], state: State) -> None:
    started = time.perf_counter()
    try:
        call(state)
    finally:
        times.append(time.perf_counter() - started)


def run(ws: Workspace) -> list[Row]:
    urls = {
        "local": sqlite_file(ws.fast, "switch-a"),
        "production": sqlite_file(ws.fast, "switch-b"),
    }
    for url in urls.values():
        seed(url)
    kind = fs_type(ws.disk)
    rows = measure(ws, urls, "sqlite", f"SQLite, runtime dir on {kind}")
    rows += measure(ws, urls, "sqlite.tmpfs", "SQLite, runtime dir on tmpfs", on_tmpfs=True)
    if ws.postgres is None:
        for key, label in _labels("pg", "PostgreSQL"):
            rows.append(Row.skip(SUITE, key, label, ws.postgres_reason))
    else:
        rows += measure(ws, ws.pg_urls(), "pg", f"PostgreSQL, runtime dir on {kind}")
    return rows


def _labels(key: str, what: str) -> list[tuple[str, str]]:
    return [
        (f"2.use.{key}.p50", f"use() p50, {what}"),
        (f"2.use.{key}.p99", f"use() p99, {what}"),
        (f"2.use-minus-check.{key}.p99", f"use() minus its health check, p99, {what}"),
    ]


def measure(
    ws: Workspace, urls: dict[str, str], key: str, what: str, *, on_tmpfs: bool = False
) -> list[Row]:
    runtime_dir = ws.fast / f"rt-{key}" if on_tmpfs else ws.runtime_dir(f"switch-{key}")
    store = TimedStore(runtime_dir)
    board = TimedBoard(urls, runtime_dir=runtime_dir, store=store)
    bare = {name: sa.create_engine(url, poolclass=NullPool) for name, url in urls.items()}
    try:
        for name in ("production", "local", "production", "local"):  # warm both targets
            board.use(name, user="bench")
        board.check_times.clear()
        store.stage_times.clear()
        store.write_times.clear()
        totals, rest, round_trips = [], [], []
        for i in range(ws.sizes.switches):
            name = ("production", "local")[i % 2]
            started = time.perf_counter()
            board.use(name, user="bench")
            total = time.perf_counter() - started
            totals.append(total)
            rest.append(total - board.check_times[-1])
            started = time.perf_counter()
            with bare[name].connect() as conn:
                conn.execute(SELECT_1)
            round_trips.append(time.perf_counter() - started)
    finally:
        board.dispose()
        for engine in bare.values():
            engine.dispose()
    checks = board.check_times
    fsyncs = fsync_costs(runtime_dir, ws.sizes.switches)
    (k50, l50), (k99, l99), (krest, lrest) = _labels(key, what)
    note = (
        f"health check inside use(): p50 {checks_ms(checks, 50)}, p99 {checks_ms(checks, 99)}; "
        f"{len(totals)} switches"
    )
    ratio_50 = median_interval([t / r for t, r in zip(totals, round_trips, strict=True)])
    rest_99 = percentile(rest, 99)
    return [
        _row(k50, l50, percentile(totals, 50), percentile(round_trips, 50), ratio_50, note=note),
        _row(k99, l99, percentile(totals, 99), percentile(round_trips, 99), None),
        Row(
            suite=SUITE,
            key=krest,
            label=lrest,
            subject=rest_99,
            baseline=percentile(checks, 99),
            baseline_label="health check p99",
            ratio=rest_99 / percentile(checks, 99),
            target=f"< {BUDGET * 1000:g} ms",
            ok=rest_99 < BUDGET,
            note=(
                "lock + commit + audit + retire; the state file is written and fsynced "
                f"during the check (p50 {checks_ms(store.stage_times, 50)}), the commit "
                f"(replace, fsync of the dir) p50 {checks_ms(store.write_times, 50)}, "
                f"p99 {checks_ms(store.write_times, 99)}; {fsyncs}"
            ),
        ),
    ]


def fsync_costs(directory: Path, n: int) -> str:
    """The two fsyncs of a state write, timed apart, as the store does them."""
    files: list[float] = []
    dirs: list[float] = []
    final = directory / "bench-fsync.json"
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        for _ in range(n):
            fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write('{"target": "local"}\n')
                f.flush()
                started = time.perf_counter()
                os.fsync(f.fileno())
                files.append(time.perf_counter() - started)
            os.replace(tmp, final)
            started = time.perf_counter()
            os.fsync(dir_fd)
            dirs.append(time.perf_counter() - started)
    finally:
        os.close(dir_fd)
        final.unlink(missing_ok=True)
    return (
        f"fsync(file) p50 {checks_ms(files, 50)} p99 {checks_ms(files, 99)}, "
        f"fsync(dir) p50 {checks_ms(dirs, 50)} p99 {checks_ms(dirs, 99)}"
    )


def checks_ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:.2f} ms"


def _row(
    key: str,
    label: str,
    subject: float,
    baseline: float,
    paired_ratio: tuple[float, float, float] | None,
    *,
    note: str = "",
) -> Row:
    ratio, low, high = paired_ratio if paired_ratio else (subject / baseline, None, None)
    return Row(
        suite=SUITE,
        key=key,
        label=label,
        subject=subject,
        baseline=baseline,
        baseline_label="bare connect+SELECT 1",
        ratio=ratio,
        low=low,
        high=high,
        note=note,
    )
