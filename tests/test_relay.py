"""A host follows Redis once: two connections per host, whatever its number of processes.

Each "host" is a runtime dir shared by real worker processes that build their
board with ``Switchboard.from_env()`` (``DBSWAP_STATE=redis://...``), as an app
module does; Redis's own ``CLIENT LIST`` counts the connections. The relay is
killed with SIGKILL; a forked child never takes its parent's place while the
parent lives.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from dbhelpers import seed
from dbswap import Switchboard

pytestmark = pytest.mark.redis

PY = sys.executable
BASE = "redis://127.0.0.1:6379/0"

WORKER = """
import sys
import sqlalchemy as sa
from dbswap import Switchboard

board = Switchboard.from_env()  # DBSWAP_STATE=redis://...: this host's copy, one relay
with board.sessionmaker()() as s:
    s.execute(sa.text("SELECT 1"))
print("ready", flush=True)
for line in sys.stdin:  # "where": which target a new session uses now
    with board.sessionmaker()() as s:
        print(s.dbswap_target, flush=True)
board.close()
"""


@pytest.fixture
def prefix(redis_url: str) -> str:
    return redis_url.split("prefix=", 1)[1]


@pytest.fixture
def urls(sqlite_url: Callable[[str], str]) -> dict[str, str]:
    result = {name: sqlite_url(name) for name in ("local", "production")}
    for name, url in result.items():
        seed(url, [name])
    return result


def host_env(urls: dict[str, str], prefix: str, runtime: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DBSWAP_"))}
    return base | {
        "DATABASE_URL_LOCAL": urls["local"],
        "DATABASE_URL_PRODUCTION": urls["production"],
        "DBSWAP_STATE": f"{BASE}?prefix={prefix}",
        "DBSWAP_RUNTIME_DIR": str(runtime),
    }


class Workers:
    def __init__(self) -> None:
        self.all: list[subprocess.Popen[str]] = []

    def start(self, env: dict[str, str], count: int) -> list[subprocess.Popen[str]]:
        started = [
            subprocess.Popen(
                [PY, "-c", WORKER],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]
        self.all += started
        for worker in started:
            assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
        return started

    def stop(self) -> None:
        for worker in self.all:
            if worker.poll() is None:
                worker.communicate("", timeout=20)
            else:
                worker.communicate()


@pytest.fixture
def workers() -> Iterator[Workers]:
    started = Workers()
    yield started
    started.stop()


def where(worker: subprocess.Popen[str]) -> str:
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write("where\n")
    worker.stdin.flush()
    return worker.stdout.readline().strip()


def connections(prefix: str) -> dict[str, int]:
    """Our connections in Redis's CLIENT LIST, per host (the name says which)."""
    client = redis.Redis.from_url(BASE)
    try:
        names = [c.get("name", "") for c in client.client_list()]
    finally:
        client.close()
    counted: dict[str, int] = {}
    for name in names:
        if name.startswith(f"dbswap:{prefix}:"):
            host = name.split(":", 2)[2]
            counted[host] = counted.get(host, 0) + 1
    return counted


def switch(env: dict[str, str], target: str) -> dict[str, object]:
    done = subprocess.run(
        [PY, "-m", "dbswap", "use", target, "--yes", "--json", "--wait", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_two_connections_per_host_whatever_its_number_of_workers(
    urls: dict[str, str], prefix: str, tmp_path: Path, workers: Workers
) -> None:
    hosts = [host_env(urls, prefix, tmp_path / name) for name in ("web-1", "web-2")]
    first = workers.start(hosts[0], 6)
    second = workers.start(hosts[1], 4)
    time.sleep(1.5)  # past start-up (and the followers' first round)
    counted = connections(prefix)
    assert len(counted) == 2 and all(n <= 2 for n in counted.values()), counted
    result = switch(hosts[0], "production")  # from a shell on the first host
    assert result["acknowledged"] == 10, result
    assert {where(w) for w in first + second} == {"production"}
    time.sleep(0.5)
    counted = connections(prefix)  # the shell's connection is gone with it
    assert len(counted) == 2 and all(n <= 2 for n in counted.values()), counted


def test_another_process_takes_over_when_the_relay_dies(
    urls: dict[str, str], prefix: str, tmp_path: Path, workers: Workers
) -> None:
    env = host_env(urls, prefix, tmp_path / "web")
    started = workers.start(env, 3)
    status = json.loads((tmp_path / "web" / "db-relay.json").read_text())
    relay = next(w for w in started if w.pid == status["pid"])
    relay.send_signal(signal.SIGKILL)
    relay.wait(10)
    others = [w for w in started if w is not relay]
    deadline = time.monotonic() + 3  # the survivors' follower threads try every second
    while json.loads((tmp_path / "web" / "db-relay.json").read_text())["pid"] == relay.pid:
        assert time.monotonic() < deadline, "nobody took over"
        time.sleep(0.05)
    assert json.loads((tmp_path / "web" / "db-relay.json").read_text())["pid"] in {
        w.pid for w in others
    }
    switch(env, "production")
    assert {where(w) for w in others} == {"production"}
    time.sleep(0.5)
    assert connections(prefix) and all(n <= 2 for n in connections(prefix).values())


FORKING = """
import os, sys, time
import sqlalchemy as sa
from dbswap import Switchboard

board = Switchboard.from_env()  # built before the fork (gunicorn --preload): the relay
board.follow()
children = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        with board.sessionmaker()() as s:
            s.execute(sa.text("SELECT 1"))
        time.sleep(30)
        os._exit(0)
    children.append(pid)
print(" ".join(map(str, children)), flush=True)
time.sleep(30)
"""


def test_a_forked_child_follows_and_takes_over_only_when_its_parent_dies(
    urls: dict[str, str], prefix: str, tmp_path: Path
) -> None:
    env = host_env(urls, prefix, tmp_path / "web")
    parent = subprocess.Popen([PY, "-c", FORKING], env=env, stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    children = [int(pid) for pid in parent.stdout.readline().split()]
    try:
        time.sleep(1.5)
        status = tmp_path / "web" / "db-relay.json"
        assert json.loads(status.read_text())["pid"] == parent.pid  # still the parent's
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 3
        while not status.exists() or json.loads(status.read_text())["pid"] not in children:
            assert time.monotonic() < deadline, "no child took over"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdout.close()
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def test_the_hosts_list_lives_by_the_relays_polls_and_comes_back_when_redis_loses_it(
    urls: dict[str, str], prefix: str, tmp_path: Path, workers: Workers
) -> None:
    env = host_env(urls, prefix, tmp_path / "web")
    started = workers.start(env, 2)
    client = redis.Redis.from_url(BASE)
    try:

        def listed() -> list[int]:
            keys = list(client.scan_iter(f"{prefix}:host:*"))
            raw = [client.get(key) for key in keys]
            return sorted(json.loads(r)["pid"] for value in raw if value for r in json.loads(value))

        deadline = time.monotonic() + 3
        while listed() != sorted(w.pid for w in started):
            assert time.monotonic() < deadline, listed()
            time.sleep(0.05)
        until = time.monotonic() + 4  # past the list's lease (3 s), no record changed:
        while time.monotonic() < until:  # the relay's polls renew it, never a gap
            assert listed() == sorted(w.pid for w in started)
            time.sleep(0.05)
        for key in client.scan_iter(f"{prefix}:host:*"):
            client.delete(key)  # what a FLUSHALL or an eviction does
        deadline = time.monotonic() + 3  # the relay's next poll finds it gone and sets it again
        while listed() != sorted(w.pid for w in started):
            assert time.monotonic() < deadline, "the host's list did not come back"
            time.sleep(0.05)
    finally:
        client.close()


def test_a_file_planted_where_the_hosts_copy_is_staged_is_never_written(
    urls: dict[str, str], prefix: str, tmp_path: Path
) -> None:
    """The copy is staged under one name per process: a file found there, a hard link to a
    victim even, is replaced, never written through."""
    runtime, victim = tmp_path / "web", tmp_path / "victim"
    runtime.mkdir()
    victim.write_bytes(b"the victim's own bytes\n")
    os.link(victim, runtime / f".db-target.{os.getpid()}.tmp")
    board = Switchboard.from_env(host_env(urls, prefix, runtime))
    try:
        board.use("production")
        copy = json.loads((runtime / "db-target.json").read_text())
        assert (copy["target"], board.active) == ("production", "production")
    finally:
        board.close()
    assert victim.read_bytes() == b"the victim's own bytes\n"
