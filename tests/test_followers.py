"""Processes you can count: every process that follows a state says so, and a switch counts them.

Real processes (an app script that builds its board at import and opens a
session, as a web worker does), the real CLI, SIGKILL and SIGSTOP, the file
store and a real Redis.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhelpers import seed
from dbswap import Switchboard
from dbswap._redis_state import FOLLOWER_TTL, RedisStateStore

PY = sys.executable

APP = """
import sys
import sqlalchemy as sa
from dbswap import Switchboard

board = Switchboard.from_env()  # at import, as app modules do

@board.on_change
def changed(change):
    print(f"changed {change.previous} {change.target} {change.generation}", flush=True)

with board.sessionmaker()() as s:  # a first request: this process follows from now on
    s.execute(sa.text("SELECT 1"))
print("ready", flush=True)
sys.stdin.readline()  # then it serves nothing: it follows all the same
board.close()
"""


@pytest.fixture
def urls(sqlite_url: Callable[[str], str]) -> dict[str, str]:
    result = {name: sqlite_url(name) for name in ("local", "production")}
    for name, url in result.items():
        seed(url, [name])
    return result


@pytest.fixture
def env(urls: dict[str, str], tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DBSWAP_"))}
    return base | {
        "DATABASE_URL_LOCAL": urls["local"],
        "DATABASE_URL_PRODUCTION": urls["production"],
        "DBSWAP_RUNTIME_DIR": str(tmp_path / "rt"),
    }


class Apps:
    """App processes started for a test, stopped (or killed) at its end."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[str]] = []

    def start(self, env: dict[str, str], count: int = 1) -> list[subprocess.Popen[str]]:
        started = []
        for _ in range(count):
            process = subprocess.Popen(
                [PY, "-c", APP],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            self.processes.append(process)
            started.append(process)
        for process in started:
            assert process.stdout is not None and process.stdout.readline() == "ready\n"
        return started

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with_signal(process, signal.SIGCONT)
                try:
                    process.communicate("stop\n", timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.communicate()
            else:
                process.communicate()


def with_signal(process: subprocess.Popen[str], number: int) -> None:
    if process.poll() is None:
        process.send_signal(number)


@pytest.fixture
def apps() -> Iterator[Apps]:
    started = Apps()
    yield started
    started.stop()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "dbswap", *args], env=env, capture_output=True, text=True, timeout=60
    )


def pids(board: Switchboard) -> list[int]:
    return sorted(f.pid for f in board.followers() or ())


def test_followers_say_so_while_they_live_and_forget_themselves_even_when_killed(
    urls: dict[str, str], env: dict[str, str], tmp_path: Path, apps: Apps
) -> None:
    killed, closing, staying = apps.start(env, 3)
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")  # the shell's board: not a follower
    try:
        assert pids(board) == sorted([killed.pid, closing.pid, staying.pid])
        record = next(f for f in board.followers() or () if f.pid == staying.pid)
        assert (record.target, record.generation) == ("local", 0) and record.since.endswith("Z")
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        assert pids(board) == sorted([closing.pid, staying.pid])  # at once: no ghost
        assert closing.communicate("stop\n", timeout=10)[1] == ""
        assert pids(board) == [staying.pid]
        left = [path.name for path in (tmp_path / "rt" / "followers").iterdir()]
        assert len(left) == 1 and f".{staying.pid}." in left[0]  # the dead ones' are removed
    finally:
        board.close()


def test_a_switch_counts_who_took_it_and_followers_run_on_change_without_a_request(
    env: dict[str, str], apps: Apps
) -> None:
    followers = apps.start(env, 3)
    done = cli(env, "use", "production", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["acknowledged"] == 3
    assert sorted(f["pid"] for f in data["followers"]) == sorted(p.pid for p in followers)
    assert all(f["acknowledged"] and f["generation"] == 1 for f in data["followers"])
    text = cli(env, "use", "local")
    assert "3 of 3 processes on 1 host on generation 2 within" in text.stdout
    for process in followers:  # on_change ran in each, though none served a request
        assert process.stdout is not None
        assert process.stdout.readline() == "changed local production 1\n"
        assert process.stdout.readline() == "changed production local 2\n"


def test_wait_names_the_process_that_did_not_follow(env: dict[str, str], apps: Apps) -> None:
    follows, frozen = apps.start(env, 2)
    frozen.send_signal(signal.SIGSTOP)
    try:
        done = cli(env, "use", "production", "--yes", "--wait", "1")
    finally:
        frozen.send_signal(signal.SIGCONT)
    assert done.returncode == 3  # switched (generation 1), but not followed by all in time
    assert f"pid {frozen.pid} on " in done.stderr and "(generation 0)" in done.stderr
    assert "1 of 2 processes" in done.stderr
    status = json.loads(cli(env, "status", "--json").stdout)
    assert status["target"] == "production" and status["generation"] == 1
    deadline = time.monotonic() + 5  # resumed, it follows
    while {
        f["generation"] for f in json.loads(cli(env, "status", "--json").stdout)["followers"]
    } != {1}:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert follows.poll() is None


def test_status_shows_the_followers(env: dict[str, str], apps: Apps) -> None:
    apps.start(env, 2)
    text = cli(env, "status").stdout
    assert "followers:   2 processes on 1 host, all on generation 0" in text
    shown = json.loads(cli(env, "status", "--json").stdout)["followers"]
    assert [sorted(f) for f in shown] == [["generation", "host", "pid", "since", "target"]] * 2


def test_a_switch_nobody_follows_says_so(env: dict[str, str], tmp_path: Path) -> None:
    done = cli(env, "use", "production", "--yes")
    assert done.returncode == 0  # committed: a later app serves it
    assert "no running process follows" in done.stderr
    assert str(tmp_path / "rt") in done.stderr


# -- Redis: followers on several hosts -------------------------------------------------


@pytest.mark.redis
def test_followers_on_several_hosts_share_redis(
    urls: dict[str, str], env: dict[str, str], tmp_path: Path, apps: Apps, redis_url: str
) -> None:
    hosts = [
        env | {"DBSWAP_STATE": redis_url, "DBSWAP_RUNTIME_DIR": str(tmp_path / h)} for h in "ab"
    ]
    one, two = apps.start(hosts[0], 2)
    three = apps.start(hosts[1], 1)[0]
    board = Switchboard(urls, runtime_dir=tmp_path / "shell", store=RedisStateStore(redis_url))
    try:
        deadline = time.monotonic() + 3  # a host's relay publishes its list twice a second
        while pids(board) != sorted([one.pid, two.pid, three.pid]):
            assert time.monotonic() < deadline, pids(board)
            time.sleep(0.05)
        done = cli(
            hosts[1] | {"DBSWAP_RUNTIME_DIR": str(tmp_path / "shell")},
            "use",
            "production",
            "--yes",
            "--json",
        )
        assert json.loads(done.stdout)["acknowledged"] == 3, done.stderr
        three.send_signal(signal.SIGKILL)
        three.wait(10)
        deadline = time.monotonic() + FOLLOWER_TTL + 2  # its record lapses with its heartbeat
        while three.pid in pids(board):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert pids(board) == sorted([one.pid, two.pid])
    finally:
        board.close()


# -- the admin API ---------------------------------------------------------------------


def test_the_admin_api_shows_followers_and_waits_for_them(
    urls: dict[str, str], env: dict[str, str], tmp_path: Path, apps: Apps
) -> None:
    from webhelpers import ADMIN, STATUS, SWITCH, TestClient, admin_app

    others = apps.start(env, 2)
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")
    try:
        with TestClient(admin_app(board)) as client:
            status: dict[str, Any] = client.get(STATUS, headers=ADMIN).json()
            # The app itself follows too (admin_router): three processes.
            assert status["followers"]["total"] == 3 and status["followers"]["lagging"] == []
            switched = client.post(SWITCH, json={"target": "production", "wait": 5}, headers=ADMIN)
            body = switched.json()
            assert body["acknowledged"] == 3 and len(body["followers"]) == 3
            assert {o.pid for o in others} < {f["pid"] for f in body["followers"]}
    finally:
        board.close()
