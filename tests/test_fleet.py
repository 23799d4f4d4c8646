"""A fleet of worker processes under load follows every switch with zero failed requests."""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dbhelpers import pg_connections
from dbswap import Switchboard

pytestmark = [pytest.mark.fleet, pytest.mark.postgres]
TESTS = Path(__file__).parent

SCHEMA = [
    "CREATE TABLE items (id INTEGER PRIMARY KEY, label VARCHAR(100))",
    "CREATE TABLE hits (rid VARCHAR(40), pinned VARCHAR(40), pid INTEGER)",
]


def prepare(url: str, label: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in SCHEMA:
            conn.execute(sa.text(statement))
        conn.execute(sa.text("INSERT INTO items VALUES (1, :label)"), {"label": label})
    engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def fleet(pg_url: Callable[[str], str], tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """gunicorn, 4 worker processes with 8 threads each, on a free loopback port."""
    urls = {"local": pg_url("local"), "production": pg_url("production")}
    for name, url in urls.items():
        prepare(url, name)
    port = free_port()
    env = os.environ | {
        "DATABASE_URL_LOCAL": urls["local"],
        "DATABASE_URL_PRODUCTION": urls["production"],
        "DBSWAP_RUNTIME_DIR": str(tmp_path / "rt"),
        "PYTHONPATH": str(TESTS),
    }
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [
            str(gunicorn),
            "fleet_app:app",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "4",
            "-k",
            "gthread",
            "--threads",
            "8",
            "--backlog",
            "256",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                get(port, "/read?rid=warmup")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        yield port, urls
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def get(port: int, path: str, method: str = "GET") -> dict[str, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        body: dict[str, object] = json.loads(response.read())
        assert response.status == 200, body
        return body
    finally:
        conn.close()


def test_every_worker_serves_the_new_target_after_one_switch(
    fleet: tuple[int, dict[str, str]],
) -> None:
    port, _ = fleet
    for target in ("production", "local"):
        get(port, f"/switch?target={target}", "POST")
        seen: dict[object, object] = {}
        deadline = time.monotonic() + 30
        while len(seen) < 4 and time.monotonic() < deadline:
            body = get(port, f"/read?rid=poll-{target}")
            assert body["label"] == target, body  # on its next request, whichever worker
            seen[body["pid"]] = body["label"]
        assert len(seen) == 4, f"only saw workers {sorted(seen)}"


def run_load(port: int, seconds: float, clients: int, switch_path: str) -> dict[str, int]:
    """``clients`` keep-alive clients read while a switcher flips every 100 ms."""
    stop = threading.Event()
    counts = {"ok": 0, "failed": 0, "wrong_target": 0, "switches": 0, "switch_failed": 0}
    lock = threading.Lock()

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        n = 0
        while not stop.is_set():
            n += 1
            try:
                conn.request("GET", f"/read?rid={index}-{n}")
                response = conn.getresponse()
                body = json.loads(response.read())
                good = response.status == 200
                wrong = good and body["label"] != body["pinned"]
            except (OSError, http.client.HTTPException, ValueError):
                good, wrong = False, False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            with lock:
                counts["ok" if good else "failed"] += 1
                counts["wrong_target"] += int(wrong)
        conn.close()

    def switch(target: str) -> None:
        try:
            get(port, switch_path.format(target=target), "POST")
            key = "switches"
        except (OSError, AssertionError, http.client.HTTPException):
            key = "switch_failed"
        with lock:
            counts[key] = counts.get(key, 0) + 1

    def switcher() -> None:
        # One switch every 100 ms, on a fixed cadence: a slow one does not delay the next.
        started: list[threading.Thread] = []
        deadline = time.monotonic() + seconds
        tick, next_tick = 0, time.monotonic() + 0.1
        while next_tick < deadline:
            time.sleep(max(0.0, next_tick - time.monotonic()))
            thread = threading.Thread(target=switch, args=(("production", "local")[tick % 2],))
            thread.start()
            started.append(thread)
            tick, next_tick = tick + 1, next_tick + 0.1
        for thread in started:
            thread.join(60)
        stop.set()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    switching = threading.Thread(target=switcher)
    switching.start()
    switching.join(seconds + 60)
    stop.set()
    for t in threads:
        t.join(60)
    return counts


def assert_no_mixed_transactions(urls: dict[str, str]) -> int:
    """Each hit row sits in the database it was pinned to, and no request id is in both."""
    rids = {}
    for name, url in urls.items():
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT rid, pinned FROM hits")).all()
        engine.dispose()
        assert {pinned for _, pinned in rows} <= {name}, f"a hit pinned elsewhere landed in {name}"
        rids[name] = {rid for rid, _ in rows if not rid.startswith(("warmup", "poll"))}
    assert not rids["local"] & rids["production"], "a request wrote to both databases"
    return len(rids["local"]) + len(rids["production"])


@pytest.mark.parametrize("drain", [False, True], ids=["plain", "drain"])
def test_switching_every_100ms_under_load_fails_no_request(
    fleet: tuple[int, dict[str, str]], drain: bool
) -> None:
    port, urls = fleet
    seconds = float(os.environ.get("DBSWAP_LOAD_SECONDS", "20"))
    path = "/switch?target={target}" + ("&drain=1" if drain else "")
    counts = run_load(port, seconds, clients=50, switch_path=path)
    print(f"\nload ({'drain' if drain else 'plain'}): {counts}")
    assert counts["failed"] == 0
    assert counts["wrong_target"] == 0
    assert counts["switch_failed"] == 0
    assert counts["switches"] >= seconds * 10 - 2  # one every 100 ms, none lost
    assert counts["ok"] > seconds * 40  # the load really ran alongside the switches
    assert assert_no_mixed_transactions(urls) == counts["ok"]


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def test_2000_switches_leak_neither_connections_nor_memory(
    pg_url: Callable[[str], str], tmp_path: Path
) -> None:
    urls = {"local": pg_url("local"), "production": pg_url("production")}
    for name, url in urls.items():
        prepare(url, name)
    dbs = {name: sa.make_url(url).database for name, url in urls.items()}
    # Retired at once: every switch parks a pool and makes a new one, the most churn.
    board = Switchboard(urls, runtime_dir=tmp_path / "rt", retire_grace=0)
    make = board.sessionmaker()
    rss = []
    random.seed(7)
    for i in range(2000):
        target = ("production", "local")[i % 2]
        board.use(target)
        with make() as s:
            assert s.execute(sa.text("SELECT label FROM items")).scalar() == target
        if i % 500 == 499:
            inactive = "local" if target == "production" else "production"
            assert pg_connections(dbs[inactive]) == 0
            rss.append(rss_kib())
    print(f"\nRSS after 500/1000/1500/2000 switches (KiB): {rss}")
    assert rss[-1] - rss[0] < 8 * 1024  # no steady growth (allocator noise only)
    assert pg_connections(dbs["production"]) == 0  # the last switch went to local
    board.dispose()
    assert pg_connections(dbs["local"]) == 0
