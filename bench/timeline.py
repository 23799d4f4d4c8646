"""Latency of each session around one switch, in-process, for the table and the plot.

A thread opens sessions back to back (bounded in count and time) and records
when each began, how long it took and which target it was pinned to; the main
thread calls ``use()`` half-way. A session begun after ``use()`` returned must
be on the new target: the note counts those that were not (it should say 0).
"""

from __future__ import annotations

import threading
import time

from ._databases import Item, seed, sqlite_file
from ._report import Row
from ._workspace import Timeline, Workspace, wait_until
from .web import timeline_rows

MAX_SESSIONS = 200_000


def run(ws: Workspace) -> list[Row]:
    if ws.postgres is not None:
        urls, what = ws.pg_urls(), "PostgreSQL"
    else:
        urls = {
            "local": sqlite_file(ws.fast, "tl-local"),
            "production": sqlite_file(ws.fast, "tl-prod"),
        }
        for url in urls.values():
            seed(url)
        what = "SQLite (PostgreSQL unavailable)"
    board = ws.board(urls, "timeline")
    board.use("production", user="bench")
    board.use("local", user="bench")
    factory = board.sessionmaker()
    seconds = ws.sizes.timeline_seconds
    samples: list[tuple[float, float, str]] = []
    stop = threading.Event()

    def load() -> None:
        deadline = time.perf_counter() + seconds * 4
        while not stop.is_set() and time.perf_counter() < deadline and len(samples) < MAX_SESSIONS:
            started = time.perf_counter()
            with factory() as session:
                session.get(Item, 1)
                target = session.dbswap_target or "?"
            samples.append((started, time.perf_counter() - started, target))

    worker = threading.Thread(target=load, name="bench-session-load")
    worker.start()
    try:
        wait_until(lambda: len(samples) >= 3, seconds / 2, seconds)
        requested = time.perf_counter()
        board.use("production", user="bench")
        returned = time.perf_counter()
        wait_until(lambda: samples[-1][0] > returned, seconds / 2, seconds)
    finally:
        stop.set()
        worker.join()
    timeline = Timeline(
        f"in-process sessions, session.get() on {what}",
        [s - requested for s, _, _ in samples],
        [lat for _, lat, _ in samples],
        [t for _, _, t in samples],
        0.0,
        returned - requested,
        "local",
        "production",
    )
    ws.timelines.append(timeline)
    return timeline_rows("t.session", "session", timeline)
