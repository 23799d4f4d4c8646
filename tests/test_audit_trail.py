"""The audit trail has no holes: every committed generation has exactly one line.

Real SQLite targets, the real CLI in real processes; the file-size limit is a
real ``RLIMIT_FSIZE`` on the switching process, the killed wrapper a real SIGKILL.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dbhelpers import seed
from dbswap import ConfigError, Switchboard

PY = sys.executable


@pytest.fixture
def urls(sqlite_url: Callable[[str], str]) -> dict[str, str]:
    result = {name: sqlite_url(name) for name in ("local", "production")}
    for name, url in result.items():
        seed(url, [f"{name}-row"])
    return result


@pytest.fixture
def env(urls: dict[str, str], tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DBSWAP_"))}
    return base | {
        "DATABASE_URL_LOCAL": urls["local"],
        "DATABASE_URL_PRODUCTION": urls["production"],
        "DBSWAP_RUNTIME_DIR": str(tmp_path / "rt"),
    }


def dbswap(env: dict[str, str], *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "dbswap", *args], env=env, capture_output=True, text=True, timeout=60, **kw
    )


def lines(runtime: Path) -> list[dict[str, Any]]:
    path = runtime / "db-switch.log"
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def committed(runtime: Path) -> int:
    path = runtime / "db-target.json"
    return int(json.loads(path.read_text())["generation"]) if path.exists() else 0


def test_a_switch_whose_line_cannot_be_written_does_not_commit(
    urls: dict[str, str], tmp_path: Path
) -> None:
    runtime = tmp_path / "rt"
    runtime.mkdir()
    (runtime / "db-switch.log").mkdir()  # a directory in its place
    board = Switchboard(urls, runtime_dir=runtime)
    try:
        with pytest.raises(ConfigError, match=r"cannot write the audit log .*nothing was switched"):
            board.use("production")
        assert (board.active, board.generation) == ("local", 0)
        assert not (runtime / "db-target.json").exists()
    finally:
        board.close()


def test_a_file_size_limit_refuses_the_switch_and_every_commit_keeps_its_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    runtime = tmp_path / "rt"
    assert dbswap(env, "use", "production", "--yes").returncode == 0
    assert dbswap(env, "use", "local").returncode == 0
    size = (runtime / "db-switch.log").stat().st_size

    def limited() -> None:  # the switcher may write no byte past the log's current end
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    refused = dbswap(env, "use", "production", "--yes", preexec_fn=limited)
    assert refused.returncode != 0
    assert "cannot write the audit log" in refused.stderr and "Traceback" not in refused.stderr
    assert committed(runtime) == 2  # not committed
    assert dbswap(env, "use", "production", "--yes").returncode == 0  # the limit lifted
    trail = lines(runtime)
    by_generation = [(e["generation"], e["outcome"]) for e in trail if e["outcome"] == "ok"]
    assert by_generation == [(1, "ok"), (2, "ok"), (3, "ok")]
    assert committed(runtime) == 3


def test_a_garbled_state_continues_from_the_trails_last_generation(
    urls: dict[str, str], tmp_path: Path
) -> None:
    runtime = tmp_path / "rt"
    board = Switchboard(urls, runtime_dir=runtime)
    try:
        for target in ("production", "local", "production"):
            board.use(target)
        (runtime / "db-target.json").write_bytes(b"\x00garbage\xff")
        result = board.use("local", user="after")
        assert result.generation == 4  # never generation 1 again
        commits = [e["generation"] for e in board.history(None) if e["outcome"] == "ok"]
        assert commits == [4, 3, 2, 1]
    finally:
        board.close()


def test_thousands_of_refusals_never_make_a_false_recovered_line(
    urls: dict[str, str], tmp_path: Path
) -> None:
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")
    try:
        board.use("production")
        for _ in range(1200):
            with pytest.raises(LookupError):
                board.use("nope")
        board.use("local")
        outcomes = [e["outcome"] for e in board.history(None)]
        assert "recovered" not in outcomes
        assert [e["generation"] for e in board.history(None) if e["outcome"] == "ok"] == [2, 1]
    finally:
        board.close()


# -- dbswap run ------------------------------------------------------------------------

SLEEPER = "import time, sys; print('started', flush=True); time.sleep(60)"


def test_dbswap_run_writes_a_line_when_it_starts_and_one_when_it_ends(
    env: dict[str, str], tmp_path: Path
) -> None:
    done = dbswap(env, "run", "local", "--user", "ops", "--", PY, "-c", "raise SystemExit(3)")
    assert done.returncode == 3
    trail = lines(tmp_path / "rt")
    assert [(e["outcome"], e["exit_code"], e["user"]) for e in trail] == [
        ("run-started", None, "ops"),
        ("run", 3, "ops"),
    ]
    shown = dbswap(env, "history").stdout.splitlines()
    assert "$ python" in shown[0] and "(exit 3)" in shown[0]  # history shows the command
    assert "run-started" in shown[1] and "by ops" in shown[1]


def test_a_killed_dbswap_run_leaves_its_line_and_takes_its_command_with_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    wrapper = subprocess.Popen(
        [PY, "-m", "dbswap", "run", "production", "--yes", "--", PY, "-c", SLEEPER],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert wrapper.stdout is not None
    assert wrapper.stdout.readline().strip() == "started"
    child_pid = _child_of(wrapper.pid)
    wrapper.send_signal(signal.SIGKILL)
    wrapper.wait(timeout=10)
    wrapper.stdout.close()
    deadline = time.monotonic() + 10
    while _alive(child_pid):
        assert time.monotonic() < deadline, "the pinned command outlived its killed wrapper"
        time.sleep(0.05)
    trail = lines(tmp_path / "rt")
    assert [(e["outcome"], e["to"], e["command"]) for e in trail] == [
        ("run-started", "production", "python")
    ]


def test_a_refused_confirmation_of_a_run_against_production_is_audited(
    env: dict[str, str], tmp_path: Path
) -> None:
    done = dbswap(env, "run", "production", "--", PY, "-c", "pass", input="n\n")
    assert done.returncode == 1
    trail = lines(tmp_path / "rt")
    assert [(e["outcome"], e["to"], e["command"]) for e in trail] == [
        ("refused", "production", "python")
    ]


def _child_of(pid: int) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.02)
    raise AssertionError("dbswap run started no child")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended (its parent, init, reaps it)
