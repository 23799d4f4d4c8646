"""The Redis state store: a fleet follows every switch, survives lost messages and outages."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from dbhelpers import seed
from dbswap import Switchboard, SwitchLocked
from dbswap._redis_state import RedisStateStore, split_prefix
from dbswap._relay import RelayedStore

REDIS = "redis://127.0.0.1:6379/0"
pytestmark = pytest.mark.redis


@pytest.fixture
def urls(sqlite_url: Callable[[str], str]) -> dict[str, str]:
    result = {"local": sqlite_url("local"), "production": sqlite_url("production")}
    seed(result["local"], ["l"])
    seed(result["production"], ["p"])
    return result


def make_board(urls: dict[str, str], path: Path, url: str, **store: float) -> Switchboard:
    return Switchboard(urls, runtime_dir=path, store=RedisStateStore(url, **store))


def wait_for(predicate: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``predicate`` held; fails the test after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.001)
    return time.monotonic() - start


def test_prefix_is_taken_out_of_the_url() -> None:
    assert split_prefix("redis://h:1/2?prefix=app&ssl_cert_reqs=none") == (
        "redis://h:1/2?ssl_cert_reqs=none",
        "app",
    )
    assert split_prefix("redis://h")[1] == "dbswap"


def test_another_board_follows_through_pub_sub(
    urls: dict[str, str], tmp_path: Path, redis_url: str
) -> None:
    a = make_board(urls, tmp_path / "a", redis_url)
    b = make_board(urls, tmp_path / "b", redis_url, poll_interval=30)  # only pub/sub can help
    try:
        assert a.active == b.active == "local"
        a.use("production", user="alice")
        assert wait_for(lambda: b.active == "production", 2) < 1
        assert b.state.switched_by == "alice" and b.generation == 1
        with b.sessionmaker()() as s:
            assert s.execute(sa.text("SELECT label FROM items")).scalar() == "p"
    finally:
        a.close()
        b.close()


def test_from_env_uses_redis(urls: dict[str, str], tmp_path: Path, redis_url: str) -> None:
    env = {f"DATABASE_URL_{k.upper()}": v for k, v in urls.items()} | {"DBSWAP_STATE": redis_url}
    board = Switchboard.from_env(env, cwd=tmp_path)
    try:
        assert isinstance(board._store, RelayedStore)  # this host's relay, and its copy
        board.use("production")
        raw = redis.Redis.from_url(REDIS).get(f"{split_prefix(redis_url)[1]}:state")
        assert raw is not None and json.loads(raw)["target"] == "production"
        copy = json.loads((tmp_path / ".runtime" / "db-target.json").read_text())
        assert copy["target"] == "production"  # the host's copy, that its processes read
    finally:
        board.close()


OBSERVER = """
import json, sys, time
from dbswap import Switchboard
from dbswap._redis_state import RedisStateStore
board = Switchboard({urls!r}, runtime_dir={rt!r}, store=RedisStateStore({url!r}, poll_interval=0.5))
seen = {{}}
print("ready", flush=True)
last = board.generation
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    gen = board.generation
    if gen != last:
        seen.setdefault(gen, time.time())
        last = gen
    if gen >= {final}:
        break
    time.sleep(0.0002)
print(json.dumps(seen), flush=True)
board.close()
"""


def test_eight_processes_observe_each_of_100_switches_and_survive_client_kill(
    urls: dict[str, str], tmp_path: Path, redis_url: str
) -> None:
    switches = 100
    board = make_board(urls, tmp_path / "switcher", redis_url)
    code = OBSERVER.format(urls=urls, rt=str(tmp_path / "obs"), url=redis_url, final=switches)
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    admin = redis.Redis.from_url(REDIS)
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        started: dict[int, float] = {}
        for i in range(switches):
            if i == switches // 2:
                # lose the subscribers' connections: messages in the gap are only caught up
                # by the periodic check
                admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            started[i + 1] = time.time()
            board.use(("production", "local")[i % 2])
            time.sleep(0.03)
        results = []
        for proc in procs:
            out, _ = proc.communicate(timeout=30)
            results.append({int(k): v for k, v in json.loads(out).items()})
    finally:
        admin.close()
        board.close()
        for proc in procs:
            proc.kill() if proc.poll() is None else None
            if proc.stdout is not None:
                proc.stdout.close()
    latencies = []
    for seen in results:
        assert max(seen) == switches  # every process converged on the last switch
        for gen, at in seen.items():
            latencies.append((at - started[gen]) * 1000)
    observed = [len(seen) for seen in results]
    # messages sent while subscribers reconnect can be missed; everything else is seen
    assert min(observed) >= switches - 5, observed
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(f"\npropagation over {len(latencies)} observations: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    assert p50 < 100


class Proxy:
    """A loopback TCP forwarder to Redis that the test can cut and restore."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self.sockets: list[socket.socket] = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.server.settimeout(0.1)
        while not self.stopped:
            try:
                client, _ = self.server.accept()
            except OSError:
                continue
            if not self.open.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open.clear()
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self.sockets.clear()

    def restore(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.stopped = True
        self.cut()
        self.server.close()


def board_via(proxy: Proxy, urls: dict[str, str], path: Path, redis_url: str) -> Switchboard:
    """A board reaching Redis through ``proxy`` (to cut), quick to notice an outage."""
    prefix = split_prefix(redis_url)[1]
    via = f"redis://127.0.0.1:{proxy.port}/0?prefix={prefix}"
    return make_board(urls, path, via, poll_interval=0.2, socket_timeout=0.5)


def test_redis_outage_keeps_the_target_refuses_switches_and_recovers(
    urls: dict[str, str], tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = Proxy(6379)
    direct = make_board(urls, tmp_path / "direct", redis_url)
    board = board_via(proxy, urls, tmp_path / "b", redis_url)
    try:
        board.use("production")
        with caplog.at_level(logging.WARNING, logger="dbswap"):
            proxy.cut()
            with pytest.raises(SwitchLocked, match="unreachable"):
                board.use("local", timeout=1)
            assert board.active == "production"  # last known target kept
            with board.sessionmaker()() as s:  # and still served
                assert s.execute(sa.text("SELECT 1")).scalar() == 1
            direct.use("local")  # the fleet moves on meanwhile
            time.sleep(0.5)
            assert board.active == "production"
            unreachable = [
                r for r in caplog.records if r.name == "dbswap" and "unreachable" in r.getMessage()
            ]
            assert len(unreachable) == 1  # logged once, not per session
            proxy.restore()
            wait_for(lambda: board.active == "local", 5)  # caught up on its own
        assert any("reachable again" in r.getMessage() for r in caplog.records)
        assert board.use("production").changed
    finally:
        board.close()
        direct.close()
        proxy.close()


HOLDER = """
import time
from dbswap._redis_state import RedisStateStore
store = RedisStateStore({url!r}, lease=2.0)
with store.lock(5):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_switcher_killed_holding_the_lock_blocks_no_longer_than_the_lease(
    urls: dict[str, str], tmp_path: Path, redis_url: str
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(url=redis_url)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    board = make_board(urls, tmp_path, redis_url)
    try:
        start = time.monotonic()
        assert board.use("production").changed
        waited = time.monotonic() - start
        assert waited < 2.5  # at most one lease (2 s)
    finally:
        board.close()


def test_history_is_the_whole_fleets_newest_first(
    urls: dict[str, str], tmp_path: Path, redis_url: str
) -> None:
    """Two hosts (two runtime dirs) sharing one Redis: each sees both hosts' switches."""
    a = make_board(urls, tmp_path / "a", redis_url)
    b = make_board(urls, tmp_path / "b", redis_url)
    try:
        a.use("production", user="alice")
        wait_for(lambda: b.active == "production", 2)
        b.use("local", user="bob")
        for board in (a, b):
            assert [(e["user"], e["to"]) for e in board.history()] == [
                ("bob", "local"),
                ("alice", "production"),
            ]
            assert [e["user"] for e in board.history(1)] == ["bob"]
            assert board.history(0) == []
        # each host's own file still holds exactly its own lines
        for path, user in ((tmp_path / "a", "alice"), (tmp_path / "b", "bob")):
            lines = (path / "db-switch.log").read_text().splitlines()
            assert [json.loads(line)["user"] for line in lines] == [user]
    finally:
        a.close()
        b.close()


def test_history_falls_back_to_this_hosts_file_while_redis_is_down(
    urls: dict[str, str], tmp_path: Path, redis_url: str
) -> None:
    proxy = Proxy(6379)
    other = make_board(urls, tmp_path / "other", redis_url)
    board = board_via(proxy, urls, tmp_path / "b", redis_url)
    try:
        board.use("production", user="alice")
        other.use("local", user="carol")
        wait_for(lambda: board.active == "local", 2)
        assert [e["user"] for e in board.history()] == ["carol", "alice"]
        proxy.cut()
        started = time.monotonic()
        with pytest.raises(SwitchLocked, match="unreachable"):
            board.use("production", user="dave", timeout=1)
        assert time.monotonic() - started < 1.5  # no extra wait to share its audit line
        # this host's own file: alice's switch and dave's refusal, not carol's
        assert [(e["user"], e["outcome"]) for e in board.history()] == [
            ("dave", "refused"),
            ("alice", "ok"),
        ]
        proxy.restore()
        wait_for(lambda: [e["user"] for e in board.history()] == ["carol", "alice"], 5)
    finally:
        board.close()
        other.close()
        proxy.close()
