"""Targets 2 (HTTP) and 3: a switch through the demo app's API, against a restart.

The server is the demo app (``dbswap.demo.create_app``) under uvicorn, in a
subprocess on a free 127.0.0.1 port, on two SQLite targets. Both sides of the
restart comparison measure from "switch requested" to "first response served
from the other database" (``GET /api/tracks`` says which target served it):

- dbswap: ``POST /api/admin/database/switch``, then the first GET.
- the old way: SIGTERM the server, start it again with another
  ``DBSWAP_DEFAULT_TARGET`` (the env var), poll until the first GET answers.

Trials alternate (switch, restart, switch, ...), each on the server the
previous step left running.
"""

from __future__ import annotations

import statistics
import threading
import time

from ._databases import sqlite_file
from ._measure import median_interval, percentile
from ._report import Row
from ._server import DemoServer, demo_missing
from ._workspace import Timeline, Workspace, wait_until

MAX_TIMELINE_REQUESTS = 20_000
WARM_SWITCHES = 4  # per restart trial
KEYS = (
    ("switch", "2.http.p50", "HTTP POST switch p50 (demo app, uvicorn)"),
    ("switch", "2.http.p99", "HTTP POST switch p99 (demo app, uvicorn)"),
    ("restart", "3.switch-vs-restart", "switch -> first response from the other DB (warm)"),
    ("restart", "3.switch-vs-restart.cold", "same, first switch to a target since start"),
    ("timeline", "t.http.after", "HTTP GET /api/tracks p50 after the switch"),
    ("timeline", "t.http.worst", "HTTP GET slowest request during the switch"),
    ("timeline", "t.http.first", "HTTP GET: the first one served by the new target"),
)


def run(ws: Workspace) -> list[Row]:
    missing = demo_missing()
    if missing is not None:
        ws.notes.append(f"HTTP rows skipped: {missing}")
        return [Row.skip(suite, key, label, missing) for suite, key, label in KEYS]
    urls = {
        "local": sqlite_file(ws.fast, "web-local"),
        "production": sqlite_file(ws.fast, "web-prod"),
    }
    server = DemoServer(ws.disk, urls)
    try:
        server.start("local")
        with server.client() as client:  # ready: served from local
            server.wait_for(client, "local")
        rows = _versus_restart(ws, server)  # first: its first trial needs a fresh server
        rows += _switch_latency(ws, server)
        rows += _timeline(ws, server)
    finally:
        server.stop()
    return rows


def _switch_latency(ws: Workspace, server: DemoServer) -> list[Row]:
    switches, statuses = [], []
    with server.client() as client:
        for i in range(ws.sizes.http_switches + 2):
            started = time.perf_counter()
            server.switch(client, ("production", "local")[i % 2])
            switched = time.perf_counter() - started
            started = time.perf_counter()
            if client.get("/api/admin/database").status != 200:
                raise RuntimeError("GET /api/admin/database failed")
            status = time.perf_counter() - started
            if i >= 2:  # the first two warm both targets
                switches.append(switched)
                statuses.append(status)
    base = "HTTP GET /api/admin/database"
    mid, low, high = median_interval([s / b for s, b in zip(switches, statuses, strict=True)])
    p99 = percentile(switches, 99), percentile(statuses, 99)
    return [
        Row(
            suite="switch",
            key=KEYS[0][1],
            label=KEYS[0][2],
            subject=percentile(switches, 50),
            baseline=percentile(statuses, 50),
            baseline_label=base + " p50",
            ratio=mid,
            low=low,
            high=high,
            note=f"{len(switches)} switches, each with its health check",
        ),
        Row(
            suite="switch",
            key=KEYS[1][1],
            label=KEYS[1][2],
            subject=p99[0],
            baseline=p99[1],
            baseline_label=base + " p99",
            ratio=p99[0] / p99[1],
        ),
    ]


def _timeline(ws: Workspace, server: DemoServer) -> list[Row]:
    """GET /api/tracks in a loop from a thread; switch in the middle of it."""
    source = _active(server)
    destination = _other(source)
    seconds = ws.sizes.timeline_seconds
    samples: list[tuple[float, float, str]] = []
    stop = threading.Event()

    def load() -> None:
        with server.client() as client:
            deadline = time.perf_counter() + seconds * 4
            while not stop.is_set() and time.perf_counter() < deadline:
                if len(samples) >= MAX_TIMELINE_REQUESTS:
                    break
                started = time.perf_counter()
                response = client.get("/api/tracks")
                ok = response.status == 200
                target = response.json()["target"] if ok else f"HTTP {response.status}"
                samples.append((started, time.perf_counter() - started, target))

    worker = threading.Thread(target=load, name="bench-http-load")
    worker.start()
    try:
        wait_until(lambda: len(samples) >= 3, seconds / 2, seconds)
        with server.client() as client:
            requested = time.perf_counter()
            server.switch(client, destination)
            returned = time.perf_counter()
        wait_until(lambda: samples[-1][0] > returned, seconds / 2, seconds)
    finally:
        stop.set()
        worker.join()
    timeline = Timeline(
        "HTTP GET /api/tracks, demo app under uvicorn (SQLite)",
        [s - requested for s, _, _ in samples],
        [lat for _, lat, _ in samples],
        [t for _, _, t in samples],
        0.0,
        returned - requested,
        source,
        destination,
    )
    ws.timelines.append(timeline)
    return timeline_rows("t.http", "HTTP GET", timeline)


def _active(server: DemoServer) -> str:
    with server.client() as client:
        target: str = client.get("/api/tracks").json()["target"]
        return target


def timeline_rows(prefix: str, what: str, tl: Timeline) -> list[Row]:
    """p50 after vs before the switch, and the slowest operation overlapping the switch."""
    before = [lat for s, lat in zip(tl.starts, tl.latencies, strict=True) if s + lat < 0]
    after = [lat for s, lat in zip(tl.starts, tl.latencies, strict=True) if s > tl.returned]
    during = [
        lat
        for s, lat in zip(tl.starts, tl.latencies, strict=True)
        if s <= tl.returned and s + lat >= 0
    ]
    stale = sum(
        1
        for s, t in zip(tl.starts, tl.targets, strict=True)
        if s > tl.returned and t != tl.destination
    )
    if not before or not after:
        raise RuntimeError(f"{tl.title}: too few operations around the switch to compare")
    worst = max(during) if during else max(after[:1])
    p50_before, p99_before = percentile(before, 50), percentile(before, 99)
    first = next(
        lat
        for s, lat, t in zip(tl.starts, tl.latencies, tl.targets, strict=True)
        if t == tl.destination
    )
    return [
        Row(
            suite="timeline",
            key=f"{prefix}.after",
            label=f"{what} p50 after the switch ({tl.destination})",
            subject=statistics.median(after),
            baseline=p50_before,
            baseline_label=f"p50 before ({tl.source})",
            ratio=statistics.median(after) / p50_before,
            note=(
                f"{len(before)} before, {len(during)} during, {len(after)} after; "
                f"{stale} started after use() returned on the old target"
            ),
        ),
        Row(
            suite="timeline",
            key=f"{prefix}.worst",
            label=f"{what} slowest overlapping the switch",
            subject=worst,
            baseline=p99_before,
            baseline_label="p99 before",
            ratio=worst / p99_before,
            note=f"switch took {tl.returned * 1000:.2f} ms (request to return)",
        ),
        Row(
            suite="timeline",
            key=f"{prefix}.first",
            label=f"{what}: the first one served by {tl.destination}",
            subject=first,
            baseline=statistics.median(after),
            baseline_label="p50 after",
            ratio=first / statistics.median(after),
            note="well above 1 when it had to open a new connection",
        ),
    ]


def _versus_restart(ws: Workspace, server: DemoServer) -> list[Row]:
    """Per trial: a first switch to a target this process never used (cold), one back, four
    between targets it has switched to before (warm: the developer toggling a running
    server), then a restart onto the other target."""
    cold: list[float] = []
    warm: list[float] = []
    restart: list[float] = []
    shutdown: list[float] = []
    current = _active(server)
    for _ in range(ws.sizes.restarts):
        other = _other(current)
        with server.client() as client:
            back: list[float] = []  # first switch back to the start target: neither
            for bucket in (cold, back, *[warm] * WARM_SWITCHES):
                started = time.perf_counter()
                server.switch(client, other)
                server.wait_for(client, other)
                bucket.append(time.perf_counter() - started)
                current, other = other, current
        started = time.perf_counter()
        server.stop()
        shutdown.append(time.perf_counter() - started)
        server.start(other)
        with server.client() as client:
            server.wait_for(client, other)
        restart.append(time.perf_counter() - started)
        current = other
    per_trial_warm = [
        statistics.median(warm[i : i + WARM_SWITCHES]) for i in range(0, len(warm), WARM_SWITCHES)
    ]
    note = (
        f"{{speedup:.0f}}x faster; {len(restart)} trials, alternating; the restart's "
        f"shutdown alone: {statistics.median(shutdown):.2f} s"
    )
    rows = []
    for key, label, hot in (
        (KEYS[2][1], KEYS[2][2], per_trial_warm),
        (KEYS[3][1], KEYS[3][2], cold),
    ):
        mid, low, high = median_interval([h / c for h, c in zip(hot, restart, strict=True)])
        speedup = 1 / mid  # the figure the target is judged on, not a ratio of medians
        rows.append(
            Row(
                suite="restart",
                key=key,
                label=label,
                subject=statistics.median(hot),
                baseline=statistics.median(restart),
                baseline_label="env var + uvicorn restart",
                ratio=mid,
                low=low,
                high=high,
                target="<= 0.01",
                ok=mid <= 0.01,
                note=note.format(speedup=speedup),
            )
        )
    return rows


def _other(target: str) -> str:
    return "production" if target == "local" else "local"
