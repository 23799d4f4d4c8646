"""Several processes share one runtime dir: they follow, serialise, and survive SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dbhelpers import seed
from dbswap import Switchboard
from dbswap._state import State

PY = sys.executable


def board_code(urls: dict[str, str], runtime_dir: Path) -> str:
    return textwrap.dedent(
        f"""
        import sys, json, sqlalchemy as sa
        from dbswap import Switchboard
        board = Switchboard({urls!r}, runtime_dir={str(runtime_dir)!r})
        """
    )


@pytest.fixture
def urls(sqlite_url: Callable[[str], str]) -> dict[str, str]:
    result = {"local": sqlite_url("local"), "production": sqlite_url("production")}
    seed(result["local"], ["local-row"])
    seed(result["production"], ["prod-row"])
    return result


@pytest.fixture
def reader(urls: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A long-running process that answers each line on stdin with what a new session reads."""
    code = board_code(urls, tmp_path / "rt") + textwrap.dedent(
        """
        make = board.sessionmaker()
        for line in sys.stdin:
            with make() as s:
                label = s.execute(sa.text("SELECT label FROM items")).scalar()
            print(json.dumps([board.active, label]), flush=True)
        """
    )
    proc = subprocess.Popen(
        [PY, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    yield proc
    proc.stdin.close()  # type: ignore[union-attr]
    proc.wait(timeout=10)
    proc.stdout.close()  # type: ignore[union-attr]


def ask(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("?\n")
    proc.stdin.flush()
    answer: list[str] = json.loads(proc.stdout.readline())
    return answer


def test_other_processes_follow_right_after_use_returns(
    urls: dict[str, str], tmp_path: Path, reader: subprocess.Popen[str]
) -> None:
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")
    assert ask(reader) == ["local", "local-row"]
    for _ in range(5):
        board.use("production")
        assert ask(reader) == ["production", "prod-row"]  # no sleep: visible at once
        board.use("local")
        assert ask(reader) == ["local", "local-row"]


def test_a_running_app_follows_a_switch_made_from_the_cli(
    urls: dict[str, str], tmp_path: Path, reader: subprocess.Popen[str]
) -> None:
    env = os.environ | {
        "DATABASE_URL_LOCAL": urls["local"],
        "DATABASE_URL_PRODUCTION": urls["production"],
        "DBSWAP_RUNTIME_DIR": str(tmp_path / "rt"),
    }
    dbswap_cli = [PY, "-m", "dbswap"]
    assert ask(reader) == ["local", "local-row"]
    done = subprocess.run([*dbswap_cli, "use", "production", "--yes"], env=env, cwd=tmp_path)
    assert done.returncode == 0
    assert ask(reader) == ["production", "prod-row"]


WORKER = """
import sys
from dbswap import SwitchLocked
for i in range({switches}):
    name = ("production", "local")[i % 2]
    try:
        board.use(name, user="worker-{index}")
    except SwitchLocked:
        sys.exit(3)
"""


def test_eight_processes_switching_concurrently_lose_nothing(
    urls: dict[str, str], tmp_path: Path
) -> None:
    switches = 25
    procs = [
        subprocess.Popen(
            [
                PY,
                "-c",
                board_code(urls, tmp_path / "rt") + WORKER.format(switches=switches, index=i),
            ]
        )
        for i in range(8)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    state = State.from_json((tmp_path / "rt" / "db-target.json").read_text())
    lines = (tmp_path / "rt" / "db-switch.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is whole JSON
    assert len(entries) == 8 * switches
    committed = [e for e in entries if e["outcome"] == "ok"]
    generations = [e["generation"] for e in committed]
    # one audit line per committed switch, generations strictly increasing with no gap
    assert generations == list(range(1, len(committed) + 1))
    assert state.generation == len(committed)
    assert {e["outcome"] for e in entries} <= {"ok", "noop"}
    # each committed switch really changed the target
    previous = "local"
    for entry in committed:
        assert entry["from"] == previous and entry["to"] != previous
        previous = entry["to"]
    assert state.target == previous


CRASHER = """
import itertools
board.use("production", user="crasher")  # a state exists before the kill (a loaded machine
print("ready", flush=True)  # may take longer than the first instant to make the first one)
for i in itertools.count():
    board.use(("local", "production")[i % 2], user="crasher")
"""


def test_sigkill_while_switching_never_leaves_a_torn_state_file(
    urls: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "rt" / "db-target.json"
    generations = []
    for round_ in range(12):
        proc = subprocess.Popen(
            [PY, "-c", board_code(urls, tmp_path / "rt") + CRASHER],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(0.05 + 0.037 * round_)  # a different instant each round
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        state = State.from_json(path.read_text())  # raises if torn
        generations.append(state.generation)
        # the lock died with its holder: a new switch goes through at once
        board = Switchboard(urls, runtime_dir=tmp_path / "rt")
        other = "local" if state.target == "production" else "production"
        assert board.use(other).generation == state.generation + 1
        board.dispose()
    assert generations == sorted(generations) and generations[-1] > 12
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) <= 12  # at most one per kill; they are never read
