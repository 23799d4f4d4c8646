"""``python -m bench``: run the benchmarks, print the table, write JSON, Markdown and a PNG."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy

import dbswap

from . import (
    django_app,
    fleet,
    hosts,
    hotpath,
    overhead,
    overhead_async,
    scaling,
    startup,
    switching,
    timeline,
    web,
)
from ._databases import Postgres, fast_dir, fs_type
from ._report import Report, Row, fmt_time, table, write
from ._workspace import FULL, QUICK, Workspace
from .hotpath import TOTAL_NS
from .plot import plot

RESULTS = Path(__file__).resolve().parent / "results"

# name -> (what it measures, runner); run in this order
SUITES: dict[str, tuple[str, Callable[[Workspace], list[Row]]]] = {
    "overhead": ("1 (a)-(c): sync session and Core overhead", overhead.run),
    "async": ("1 (d): async session overhead", overhead_async.run),
    "switch": ("2: use() latency, in-process", switching.run),
    "http": ("2 + 3: HTTP switch latency, switch vs restart, HTTP timeline", web.run),
    "scaling": ("4: targets and threads", scaling.run),
    "hotpath": ("hot path: each step of a pinned session, in ns; profile", hotpath.run),
    "timeline": ("in-process latency around a switch (the plot)", timeline.run),
    "fleet": ("gunicorn fleet under switching; propagation, file vs Redis", fleet.run),
    "django": ("a Django app under gunicorn: dbswap vs plain Django", django_app.run),
    "hosts": ("many hosts on one Redis (relays): propagation; a follower's CPU", hosts.run),
    "cli": ("the dbswap command's start-up, against importing SQLAlchemy", startup.run),
}


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="dbswap benchmarks: every figure is a ratio against a same-run baseline.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument(
        "--only", action="append", default=[], metavar="SUITE[,SUITE]", help="run only these"
    )
    parser.add_argument("--skip", action="append", default=[], metavar="SUITE[,SUITE]")
    parser.add_argument("--list", action="store_true", help="list the suites and exit")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, metavar="DIR")
    parser.add_argument(
        "--png", type=Path, default=None, help="plot path [default: DIR/switch-latency.png]"
    )
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL rows")
    parser.add_argument(
        "--runtime-on-tmpfs",
        action="store_true",
        help="runtime dirs (state, audit log) on tmpfs, not on the disk: shows what a switch's "
        "fsyncs cost a database that shares that disk (the fleet suite)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a target is not met (default: 0)"
    )
    return parser.parse_args(argv)


def _names(values: list[str]) -> list[str]:
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SUITES))
    if unknown:
        raise SystemExit(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.list:
        for name, (what, _) in SUITES.items():
            print(f"{name:<10} {what}")
        return 0
    only, skip = _names(args.only), _names(args.skip)
    selected = [n for n in SUITES if (not only or n in only) and n not in skip]
    report = run(selected, args)
    print(table(report.rows))
    for note in report.notes:
        print(f"- {note}")
    failed = [r.key for r in report.rows if r.ok is False]
    return 1 if args.strict and failed else 0


def run(selected: list[str], args: argparse.Namespace) -> Report:
    sizes = QUICK if args.quick else FULL
    postgres, reason = (None, "--no-postgres") if args.no_postgres else Postgres.open()
    disk = fast_dir() if args.runtime_on_tmpfs else Path(tempfile.mkdtemp(prefix="dbswap-bench-"))
    ws = Workspace(sizes, disk, fast_dir(), postgres, reason)
    report = Report(meta=_meta(args, selected))
    started = time.perf_counter()
    try:
        for name in selected:
            _progress(f"running {name}: {SUITES[name][0]}")
            suite_started = time.perf_counter()
            report.rows += SUITES[name][1](ws)
            _progress(f"  {name} took {time.perf_counter() - suite_started:.1f} s")
        report.notes += _notes(ws)
        report.notes += _implied(report.rows, ws)
    finally:
        ws.close()
    order = [
        "overhead",
        "switch",
        "restart",
        "scaling",
        "hotpath",
        "timeline",
        "fleet",
        "django",
        "hosts",
        "cli",
    ]
    report.rows.sort(key=lambda row: order.index(row.suite) if row.suite in order else 99)
    report.meta["seconds"] = round(time.perf_counter() - started, 1)
    report.meta["loadavg_end"] = _loadavg()
    report.extra = {k: v for k, v in ws.extra.items() if k != "profile_text"}
    png = args.png or args.results_dir / "switch-latency.png"
    why_not = plot(ws.timelines, png)
    report.notes.append(f"plot: {png}" if why_not is None else f"plot skipped: {why_not}")
    report.meta["png"] = None if why_not else str(png)
    json_path, md_path = write(report, args.results_dir)
    if "profile_text" in ws.extra:
        (args.results_dir / "profile.txt").write_text(str(ws.extra["profile_text"]))
    report.notes.append(f"results: {json_path}, {md_path}")
    return report


def _notes(ws: Workspace) -> list[str]:
    notes = list(ws.notes)
    notes.append(
        f"SQLite files on {fs_type(ws.fast)} ({ws.fast.parent}); runtime dirs (state file, "
        f"audit log) on {fs_type(ws.disk)} ({ws.disk.parent})"
    )
    if ws.postgres is None:
        notes.append(f"PostgreSQL rows skipped: {ws.postgres_reason}")
    breakdown = ws.extra.get("breakdown_ns")
    if isinstance(breakdown, dict):
        notes.append("per-session hot path, ns (medians of micro-benchmarks):")
        notes += [f"    {name}: {value:,.0f}" for name, value in breakdown.items()]
    profile = ws.extra.get("profile")
    if isinstance(profile, list) and profile:
        notes.append("cProfile, dbswap functions per session (inflated by the profiler):")
        for entry in profile[:8]:
            notes.append(
                f"    {entry['function']}: {entry['calls_per_session']:.0f} call(s), own "
                f"{fmt_time(float(entry['own_ns_per_session']) / 1e9)}, cumulative "
                f"{fmt_time(float(entry['cumulative_ns_per_session']) / 1e9)}"
            )
    return notes


def _implied(rows: list[Row], ws: Workspace) -> list[str]:
    """Cross-check: the overhead ratios implied by the hot path's ns per session."""
    breakdown = ws.extra.get("breakdown_ns")
    extra = breakdown.get(TOTAL_NS) if isinstance(breakdown, dict) else None
    # ORM rows only: Core rows go through board.engine, not a session.
    overhead = [r for r in rows if r.suite == "overhead" and ".get." in r.key and r.baseline]
    if not isinstance(extra, float) or not overhead:
        return []
    implied = ", ".join(
        f"{r.key} {1 + extra / 1e9 / r.baseline:.4f} (measured {r.ratio:.3f})"
        for r in overhead
        if r.baseline is not None and r.ratio is not None
    )
    return [f"ratios implied by the hot path's {extra:,.0f} ns per session: {implied}"]


def _meta(args: argparse.Namespace, selected: list[str]) -> dict[str, object]:
    return {
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "quick": args.quick,
        "suites": selected,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "sqlalchemy": sqlalchemy.__version__,
        "dbswap": dbswap.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_start": _loadavg(),
    }


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
