"""A time limit ends on time whatever a peer does, and a return to production is capped.

The slow peer is real: another process whose switch is stuck in its health
check (a database server that accepts the connection and never answers) and
holds the switch lock all the while; on Redis, another host's switch holding
the fleet's lock key. Sessions begun more than a second after the end must
not use the old target, and must not stall.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from click.testing import CliRunner

from dbhelpers import seed
from dbswap import Switchboard
from dbswap._redis_state import RedisStateStore
from dbswap._state import parse_utc
from dbswap.cli import cli

GRACE = 1.0  # seconds after the end from which no session may use the old target


@pytest.fixture
def urls(sqlite_url: Callable[[str], str]) -> dict[str, str]:
    result = {name: sqlite_url(name) for name in ("local", "production", "staging")}
    for name, url in result.items():
        seed(url, [f"{name}-row"])
    return result


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback "database server" that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


def label_of(board: Switchboard) -> str:
    with board.sessionmaker()() as session:
        return str(session.execute(sa.text("SELECT label FROM items")).scalar_one())


def watch_sessions(board: Switchboard, end: float, until: float) -> list[tuple[float, float, str]]:
    """(began, took, label) of back-to-back sessions from now until ``until``."""
    seen = []
    while time.time() < until:
        began = time.time()
        label = label_of(board)
        seen.append((began - end, time.time() - began, label))
        time.sleep(0.01)
    return seen


def assert_on_time(seen: list[tuple[float, float, str]]) -> None:
    late = [(round(t, 2), label) for t, _, label in seen if t > GRACE and label != "local-row"]
    assert late == [], "sessions begun after the end used the old target"
    stalled = [(round(t, 2), round(took, 2)) for t, took, _ in seen if took > GRACE]
    assert stalled == [], "sessions waited for the lock"
    assert any(t > GRACE for t, _, _ in seen)  # the watch went past the end


def test_a_peer_stuck_in_a_slow_health_check_does_not_stall_the_end(
    urls: dict[str, str], tmp_path: Path, silent_server: int
) -> None:
    runtime = tmp_path / "rt"
    stuck = f"postgresql+psycopg://nobody@127.0.0.1:{silent_server}/nothing"
    board = Switchboard({**urls, "stuck": stuck}, runtime_dir=runtime)
    try:
        result = board.use("production", user="alice", for_=2)
        end = parse_utc(result.expires_at or "")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DBSWAP_"))}
        env |= {f"DATABASE_URL_{name.upper()}": url for name, url in urls.items()}
        env |= {"DATABASE_URL_STUCK": stuck, "DBSWAP_RUNTIME_DIR": str(runtime)}
        time.sleep(max(0.0, end - time.time() - 1.0))
        peer = subprocess.Popen(  # holds the switch lock through the end, for ~8 s
            [sys.executable, "-m", "dbswap", "use", "stuck", "--timeout", "8"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            seen = watch_sessions(board, end, end + 4)
        finally:
            _, err = peer.communicate(timeout=30)
        assert peer.returncode == 1 and "stuck" in err  # the peer's switch failed, late
        assert_on_time(seen)
        # Once the lock was free, the return was committed: once, audited.
        deadline = time.monotonic() + 10
        while board.state.generation != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        trail = board.history(None)
        assert [e["outcome"] for e in trail].count("expired") == 1
        assert (board.state.target, board.state.generation) == ("local", 2)
    finally:
        board.close()


@pytest.mark.redis
def test_another_hosts_switch_holding_the_fleets_lock_does_not_stall_the_end(
    urls: dict[str, str], tmp_path: Path, redis_url: str
) -> None:
    boards = [
        Switchboard(
            urls,
            runtime_dir=tmp_path / f"host{i}",
            store=RedisStateStore(redis_url, poll_interval=0.05),
        )
        for i in range(2)
    ]
    client = redis.Redis.from_url(redis_url.split("?")[0])
    prefix = redis_url.split("prefix=")[1]
    try:
        result = boards[0].use("production", user="alice", for_=2)
        end = parse_utc(result.expires_at or "")
        time.sleep(max(0.0, end - time.time() - 1.0))
        # Another host's switch takes the fleet's lock and keeps it for 6 s.
        assert client.set(f"{prefix}:lock", "another-host", nx=True, px=6000)
        seen = watch_sessions(boards[1], end, end + 3.5)
        assert_on_time(seen)
        client.delete(f"{prefix}:lock")
        deadline = time.monotonic() + 10
        while boards[0].state.generation != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [e["outcome"] for e in boards[0].history(None)].count("expired") == 1
    finally:
        client.close()
        for board in boards:
            board.close()


# -- a return to production ------------------------------------------------------------


def test_a_return_to_production_carries_the_cap(urls: dict[str, str], tmp_path: Path) -> None:
    board = Switchboard(urls, runtime_dir=tmp_path / "rt", max_production=60)
    try:
        board.use("staging", for_=1, then="production")
        time.sleep(1.2)
        assert board.active == "production"
        limit = board.time_limit
        assert limit is not None and 55 < limit.seconds_left <= 60
        assert limit.return_to == "staging"  # where it came from
        expired = board.history(1)[0]
        assert expired["outcome"] == "expired" and "DBSWAP_MAX_PRODUCTION" in expired["capped"]
    finally:
        board.close()


def test_the_cli_confirms_a_switch_that_returns_to_production(
    urls: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {f"DATABASE_URL_{name.upper()}": url for name, url in urls.items()}
    env |= {"DBSWAP_RUNTIME_DIR": str(tmp_path / "rt"), "DBSWAP_MAX_PRODUCTION": "1m"}

    def run(*args: str, answer: str | None = None) -> tuple[int, str]:
        done = CliRunner().invoke(cli, list(args), env=env, input=answer)
        return done.exit_code, done.output

    code, output = run("use", "staging", "--for", "1s", "--then", "production", answer="n\n")
    assert code == 1
    assert "then to PRODUCTION (SQLite file " in output and "at most 1m" in output
    code, output = run("history", "--json")
    assert [(e["outcome"], e["to"]) for e in json.loads(output)] == [("refused", "staging")]
    code, output = run("use", "staging", "--for", "1s", "--then", "production", "--yes")
    assert code == 0, output
    time.sleep(1.2)
    status = json.loads(run("status", "--json")[1])
    assert status["target"] == "production" and 50 < status["seconds_left"] <= 60
