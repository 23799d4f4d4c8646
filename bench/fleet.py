"""Every worker follows a switch: a gunicorn fleet under load, and propagation latency.

Load: gunicorn (``fleet_workers`` gthread workers x ``fleet_threads``
threads) serves ``tests/fleet_app.py`` on two real PostgreSQL databases that
share one runtime dir (the file store). ``fleet_clients`` keep-alive clients
read back to back; each round runs a phase without switching (A) then one
with a switch every 100 ms posted to a worker (B): A B A B ... The req/s
ratio B/A is the median of the per-round ratios. Every request of every
phase is checked: failed requests, wrong-target answers (label != pinned),
and afterwards the ``hits`` rows (none in the other database, no request id
in both).

Propagation: ``bench._propagation`` (observer processes polling
``board.generation``), for the file store and for Redis, interleaved.
"""

from __future__ import annotations

import dataclasses
import statistics

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from . import _propagation
from ._databases import REDIS, prepare_fleet, redis_missing, sqlite_file
from ._gunicorn import Gunicorn, gunicorn_missing
from ._load import Phase, run_phase
from ._measure import median_interval, percentile
from ._report import Row
from ._workspace import Workspace

SUITE = "fleet"
LOAD_KEYS = (
    ("f.rps", "req/s, a switch every 100 ms vs none"),
    ("f.latency.p99", "request latency p99, switching vs not"),
    ("f.failed", "failed requests (all phases)"),
    ("f.wrong-target", "wrong-target responses (label != pinned)"),
)
RETIRE_GRACE = 2.0
STORES = {"file": "file store (runtime dir)", "redis": "Redis store (pub/sub)"}


def run(ws: Workspace) -> list[Row]:
    urls, what = _databases(ws)
    if ws.postgres is None:
        missing: str | None = f"needs PostgreSQL ({ws.postgres_reason})"
    else:
        missing = gunicorn_missing()
    if missing is None:
        rows = _load(ws, urls)
        # The same load with a retire grace: the pools survive the quick switches back.
        with_grace = _load(ws, urls, RETIRE_GRACE)[0]
        rows.append(
            dataclasses.replace(
                with_grace,
                key="f.rps.grace",
                label=f"same, DBSWAP_RETIRE_GRACE={RETIRE_GRACE:g} (pools kept {RETIRE_GRACE:g} s)",
            )
        )
    else:
        skipped = [*LOAD_KEYS, ("f.rps.grace", "same, with a retire grace")]
        rows = [Row.skip(SUITE, key, label, missing) for key, label in skipped]
    return rows + _propagation_rows(ws, urls, what)


def _databases(ws: Workspace) -> tuple[dict[str, str], str]:
    """Two PostgreSQL databases with the fleet app's tables, or SQLite files without them."""
    if ws.postgres is None:
        names = ("local", "production")
        return {n: sqlite_file(ws.fast, f"fleet-{n}") for n in names}, "SQLite"
    urls = {name: ws.postgres.create(f"fleet_{name}") for name in ("local", "production")}
    for name, url in urls.items():
        prepare_fleet(url, name)
    return urls, "PostgreSQL"


def _load(ws: Workspace, urls: dict[str, str], retire_grace: float | None = None) -> list[Row]:
    """``retire_grace`` None: the library's default (``DBSWAP_RETIRE_GRACE`` unset)."""
    sizes = ws.sizes
    env = {f"DATABASE_URL_{name.upper()}": url for name, url in urls.items()}
    env["DBSWAP_RUNTIME_DIR"] = str(ws.runtime_dir(f"fleet-{retire_grace}"))
    if retire_grace is not None:
        env["DBSWAP_RETIRE_GRACE"] = str(retire_grace)
    server = Gunicorn(ws.disk / "fleet", env, sizes.fleet_workers, sizes.fleet_threads)
    rounds: list[tuple[Phase, Phase]] = []
    connections: dict[bool, list[float]] = {False: [], True: []}  # new connections per second
    try:
        server.start()
        warm = run_phase(
            server.port, min(1.0, sizes.fleet_seconds / 2), sizes.fleet_clients, True, "w"
        )
        for r in range(sizes.fleet_rounds):
            pair = []
            for switching in (False, True):  # A then B in every round: A B A B ...
                before = ws.postgres.sessions(urls.values()) if ws.postgres else None
                phase = run_phase(
                    server.port,
                    sizes.fleet_seconds,
                    sizes.fleet_clients,
                    switching,
                    f"{r}{switching:d}",
                )
                after = ws.postgres.sessions(urls.values()) if ws.postgres else None
                if before is not None and after is not None:
                    connections[switching].append((after - before) / phase.seconds)
                pair.append(phase)
            rounds.append((pair[0], pair[1]))
    finally:
        server.stop()
    hits, misplaced, in_both = _check_hits(urls)
    return _load_rows(ws, rounds, warm, connections, (hits, misplaced, in_both))


def _check_hits(urls: dict[str, str]) -> tuple[int, int, int]:
    """(hit rows, rows pinned to the other database, request ids found in both)."""
    rids: dict[str, set[str]] = {}
    rows = misplaced = 0
    for name, url in urls.items():
        engine = sa.create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                found = conn.execute(sa.text("SELECT rid, pinned FROM hits")).all()
        finally:
            engine.dispose()
        rows += len(found)
        misplaced += sum(1 for _, pinned in found if pinned != name)
        rids[name] = {rid for rid, _ in found if rid != "warmup"}  # the readiness probes
    return rows, misplaced, len(rids["local"] & rids["production"])


def _load_rows(
    ws: Workspace,
    rounds: list[tuple[Phase, Phase]],
    warm: Phase,
    connections: dict[bool, list[float]],
    hits: tuple[int, int, int],
) -> list[Row]:
    sizes = ws.sizes
    steady = [a for a, _ in rounds]
    switching = [b for _, b in rounds]
    every = [warm, *steady, *switching]
    ratio, low, high = median_interval([b.per_second / a.per_second for a, b in rounds])
    fleet = f"gunicorn {sizes.fleet_workers}x{sizes.fleet_threads} gthread"
    switches = sum(p.switches for p in every)
    switch_failed = sum(p.switch_failed for p in every)
    rate = statistics.median(b.switches / b.seconds for b in switching)  # switches per second
    note = (
        f"{fleet}, {sizes.fleet_clients} clients; {len(rounds)} rounds A B x "
        f"{sizes.fleet_seconds:g} s; ratio with/without (higher is better): each switch "
        f"costs ~{max(0.0, 1 - ratio) / rate * 1000:.0f} ms of the fleet's capacity; "
        f"{switches} switches, {switch_failed} failed"
    )
    if connections[False] and connections[True]:
        steady_rate, switching_rate = (statistics.median(connections[k]) for k in (False, True))
        note += (
            f"; new PostgreSQL connections ~{steady_rate:.0f}/s steady, "
            f"~{switching_rate:.0f}/s switching (~{(switching_rate - steady_rate) / rate:.1f} "
            "per switch)"
        )
    lat_a = [x for p in steady for x in p.latencies]
    lat_b = [x for p in switching for x in p.latencies]
    requests = sum(p.ok + p.failed for p in every)
    answered = sum(p.ok for p in every)
    failed = sum(p.failed for p in every)
    wrong = sum(p.wrong_target for p in every)
    rows_checked, misplaced, in_both = hits
    (k_rps, l_rps), (k_lat, l_lat), (k_fail, l_fail), (k_wrong, l_wrong) = LOAD_KEYS
    return [
        Row(
            suite=SUITE,
            key=k_rps,
            label=l_rps,
            unit="req/s",
            subject=statistics.median(b.per_second for b in switching),
            baseline=statistics.median(a.per_second for a in steady),
            baseline_label="no switching",
            ratio=ratio,
            low=low,
            high=high,
            note=note,
        ),
        Row(
            suite=SUITE,
            key=k_lat,
            label=l_lat,
            subject=percentile(lat_b, 99),
            baseline=percentile(lat_a, 99),
            baseline_label="p99 no switching",
            ratio=percentile(lat_b, 99) / percentile(lat_a, 99),
            note=(
                f"p50 {percentile(lat_a, 50) * 1000:.1f} ms no switching, "
                f"{percentile(lat_b, 50) * 1000:.1f} ms switching"
            ),
        ),
        _must_be_zero(
            k_fail,
            l_fail,
            failed,
            requests,
            "requests sent",
            ok=failed == 0 and switch_failed == 0,
            note=f"warm-up included; switches posted: {switches}, failed: {switch_failed}",
        ),
        _must_be_zero(
            k_wrong,
            l_wrong,
            wrong,
            answered,
            "answers",
            ok=wrong == 0 and misplaced == 0 and in_both == 0,
            note=(
                f"hits rows checked: {rows_checked}; pinned to the other database: "
                f"{misplaced}; request ids in both databases: {in_both}"
            ),
        ),
    ]


def _must_be_zero(
    key: str, label: str, count: int, out_of: int, of_what: str, *, ok: bool, note: str
) -> Row:
    """A count row (failed or wrong answers) whose target is none at all."""
    return Row(
        suite=SUITE,
        key=key,
        label=label,
        unit="count",
        subject=float(count),
        baseline=float(out_of),
        baseline_label=of_what,
        ratio=count / out_of,
        target="= 0",
        ok=ok,
        note=note,
    )


def _propagation_rows(ws: Workspace, urls: dict[str, str], what: str) -> list[Row]:
    sizes = ws.sizes
    stores: dict[str, str | None] = {"file": None}
    why_not = redis_missing(REDIS)
    if why_not is None:
        stores["redis"] = REDIS
    results = _propagation.measure(
        ws,
        urls,
        stores,
        observers=sizes.observers,
        switches=sizes.propagation_switches,
        spacing=sizes.propagation_spacing,
    )
    rows: list[Row] = []
    for kind, store_label in STORES.items():
        keys = (f"f.propagation.{kind}.p50", f"f.propagation.{kind}.p99")
        label = f"switch seen by another process, {store_label}"
        if kind not in results:
            rows += [
                Row.skip(SUITE, k, f"{label}, {q}", why_not or "")
                for k, q in zip(keys, ("p50", "p99"), strict=True)
            ]
            continue
        rows += _propagation_pair(results[kind], keys, label, what, sizes.propagation_spacing)
    return rows


def _propagation_pair(
    p: _propagation.Propagation, keys: tuple[str, str], label: str, what: str, spacing: float
) -> list[Row]:
    def ms(values: list[float], q: float) -> str:
        return f"{percentile(values, q) * 1000:.2f} ms"

    ratio, low, high = median_interval(p.ratios)
    return [
        Row(
            suite=SUITE,
            key=keys[0],
            label=f"{label}, p50",
            subject=percentile(p.latencies, 50),
            baseline=percentile(p.durations, 50),
            baseline_label="use() p50, same switches",
            ratio=ratio,
            low=low,
            high=high,
            note=(
                f"{p.observers} observers x {p.switches} switches {spacing * 1000:g} ms apart "
                f"({what}); health check in use() p50 {ms(p.checks, 50)}; "
                f"missed {p.missed}"
            ),
        ),
        Row(
            suite=SUITE,
            key=keys[1],
            label=f"{label}, p99",
            subject=percentile(p.latencies, 99),
            baseline=percentile(p.durations, 99),
            baseline_label="use() p99, same switches",
            ratio=percentile(p.latencies, 99) / percentile(p.durations, 99),
            note=(
                f"seen after use() returned: p50 {ms(p.after_return, 50)}, "
                f"p99 {ms(p.after_return, 99)} (< 0: before); health check p99 "
                f"{ms(p.checks, 99)}"
            ),
        ),
    ]
