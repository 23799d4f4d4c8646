"""Faults around the state file: any bytes, killed switchers, other users, symlinks, the lock.

Real files, real processes: switchers are SIGKILLed at the exact instant a
test names (the kill is the only thing patched), readers drop to another
user, a locked process holds its lock until it is killed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dbswap import ConfigError, Switchboard, SwitchLocked

STATE = "db-target.json"


@pytest.fixture
def urls(sqlite_url: Callable[[str], str]) -> dict[str, str]:
    return {"local": sqlite_url("local"), "production": sqlite_url("production")}


def child(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


GARBAGE = {
    "deeply nested": b"[" * 100_000,
    "huge": b'{"target": "production", "pad": "' + b"x" * 200_000 + b'"}',
    "binary": bytes(range(256)) * 4,
    "wrong types": b'{"target": ["production"], "generation": "7"}',
    "negative generation": b'{"target": "production", "generation": -1}',
    "a bare string": b'"production"',
    "empty": b"",
    "NUL bytes": b"\x00" * 64,
}


@pytest.mark.parametrize("content", GARBAGE.values(), ids=GARBAGE.keys())
def test_any_bytes_in_the_state_file_fall_back_with_one_error_and_are_repaired(
    content: bytes, urls: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = tmp_path / "rt"
    runtime.mkdir()
    (runtime / STATE).write_bytes(content)
    board = Switchboard(urls, runtime_dir=runtime)
    try:
        with caplog.at_level(logging.WARNING, logger="dbswap"):
            for _ in range(3):
                assert board.active == "local"
                with board.sessionmaker()() as s:
                    assert s.dbswap_target == "local"
        assert len([r for r in caplog.records if "unusable" in r.getMessage()]) == 1
        assert board.state_problem is not None
        result = board.use("production")  # the next switch rewrites it
        assert result.changed and result.generation == 1
        assert json.loads((runtime / STATE).read_text())["target"] == "production"
        assert board.state_problem is None
    finally:
        board.close()


KILLED_AFTER_ITS_LINE = """
import os, signal, sys
from dbswap import Switchboard
from dbswap._state import FileStateStore

def die(self, state):  # its audit line is written and synced: die before the commit
    os.kill(os.getpid(), signal.SIGKILL)
board = Switchboard({"local": sys.argv[1], "production": sys.argv[2]}, runtime_dir=sys.argv[3])
board.use("production", user="first")
FileStateStore.write = die
board.use("local", user="killed-switcher")
"""


def test_a_switcher_killed_between_its_line_and_its_commit_gets_its_line_voided(
    urls: dict[str, str], tmp_path: Path
) -> None:
    runtime = tmp_path / "rt"
    killed = child(KILLED_AFTER_ITS_LINE, urls["local"], urls["production"], str(runtime))
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    board = Switchboard(urls, runtime_dir=runtime)
    try:
        assert board.active == "production" and board.generation == 1  # not committed
        assert [(e["outcome"], e["generation"]) for e in board.history()] == [("ok", 2), ("ok", 1)]
        board.use("local", user="next")
        lines = [(e["outcome"], e["generation"], e["user"]) for e in board.history()]
        assert lines == [
            ("ok", 2, "next"),  # the generation that was committed, with its own line
            ("uncommitted", 2, None),  # the killed switcher's line is voided
            ("ok", 2, "killed-switcher"),
            ("ok", 1, "first"),
        ]
        board.use("production")  # nothing more to void or recover
        assert [e["outcome"] for e in board.history()] == ["ok", "ok", "uncommitted", "ok", "ok"]
    finally:
        board.close()


def test_a_state_committed_without_its_line_gets_it_recovered(
    urls: dict[str, str], tmp_path: Path
) -> None:
    """An older dbswap committed first and wrote its line after: killed in between."""
    runtime = tmp_path / "rt"
    runtime.mkdir()
    (runtime / "db-target.json").write_text(
        '{"generation": 1, "read_only": null, "switched_at": null, '
        '"switched_by": "killed-switcher", "target": "production"}\n'
    )
    board = Switchboard(urls, runtime_dir=runtime)
    try:
        assert board.active == "production" and board.generation == 1
        board.use("local", user="next")
        lines = board.history()
        commits = [(e["generation"], e["outcome"]) for e in lines if e["generation"]]
        assert sorted(commits) == [(1, "recovered"), (2, "ok")]  # one line per generation
        recovered = next(e for e in lines if e["outcome"] == "recovered")
        assert (recovered["to"], recovered["user"]) == ("production", "killed-switcher")
        board.use("production")  # nothing more to recover
        assert [e["outcome"] for e in board.history()].count("recovered") == 1
    finally:
        board.close()


KILLED_WHILE_STAGED = """
import os, signal, sys
from dbswap import Switchboard
from dbswap._state import FileStateStore

def die(self, state):  # the temporary file is written and fsynced: die before replacing it
    os.kill(os.getpid(), signal.SIGKILL)
FileStateStore.write = die
board = Switchboard({"local": sys.argv[1], "production": sys.argv[2]}, runtime_dir=sys.argv[3])
board.use("production")
"""


def test_temporary_files_of_killed_switchers_are_removed_by_the_next_switch(
    urls: dict[str, str], tmp_path: Path
) -> None:
    runtime = tmp_path / "rt"
    for _ in range(3):
        killed = child(KILLED_WHILE_STAGED, urls["local"], urls["production"], str(runtime))
        killed.communicate(timeout=60)
        assert killed.returncode == -signal.SIGKILL
    orphans = list(runtime.glob(".db-target.*.tmp"))
    assert len(orphans) == 1  # each switcher removed the one before it left
    board = Switchboard(urls, runtime_dir=runtime)
    try:
        assert board.active == "local"  # nothing was committed
        board.use("production")
        assert list(runtime.glob(".db-target.*.tmp")) == []
    finally:
        board.close()


def test_a_symlinked_state_file_is_refused_and_left_alone(
    urls: dict[str, str], tmp_path: Path
) -> None:
    runtime, elsewhere = tmp_path / "rt", tmp_path / "real-state.json"
    runtime.mkdir()
    elsewhere.write_text(json.dumps({"target": "local", "generation": 4}))
    (runtime / STATE).symlink_to(elsewhere)
    board = Switchboard(urls, runtime_dir=runtime)
    try:
        # Not read through the link either: the default target, loudly.
        assert (board.active, board.generation) == ("local", 0)
        assert "symbolic link" in (board.state_problem or "")
        with pytest.raises(ConfigError, match="symbolic link"):
            board.use("production")
        assert (runtime / STATE).is_symlink()
        assert json.loads(elsewhere.read_text())["generation"] == 4
        assert board.history(1)[0]["outcome"] == "failed"
    finally:
        board.close()


# -- another user --------------------------------------------------------------

AS_ANOTHER_USER = """
import json, os, sys
from dbswap.cli import main  # everything imported first: after setuid, only the state is read

os.setgid(65534)
os.setuid(65534)  # nobody: the app's user, not the switcher's
sys.argv = ["dbswap", "status", "--json"]
main()
"""


@pytest.fixture
def shared_runtime() -> Iterator[Path]:
    """A runtime dir another user can reach (pytest's own temp dirs are private)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    top = Path(tempfile.mkdtemp(prefix="dbswap-shared-"))
    top.chmod(0o755)
    try:
        yield top / "rt"
    finally:
        shutil.rmtree(top)


def status_as_nobody(urls: dict[str, str], runtime: Path) -> tuple[int, dict[str, object], str]:
    env = {
        **os.environ,
        "DATABASE_URL_LOCAL": urls["local"],
        "DATABASE_URL_PRODUCTION": urls["production"],
        "DBSWAP_RUNTIME_DIR": str(runtime),
    }
    process = child(AS_ANOTHER_USER, env=env)
    out, err = process.communicate(timeout=60)
    return process.returncode, json.loads(out), err


@pytest.mark.dbswap_shared_state  # a runtime dir outside pytest's (private) temp dirs
def test_an_app_running_as_another_user_reads_the_state(
    urls: dict[str, str], shared_runtime: Path
) -> None:
    board = Switchboard(urls, runtime_dir=shared_runtime)
    try:
        board.use("production", user="ops")
    finally:
        board.close()
    code, status, _ = status_as_nobody(urls, shared_runtime)
    assert (code, status["target"], status["confirmed"]) == (0, "production", True)


@pytest.mark.dbswap_shared_state  # a runtime dir outside pytest's (private) temp dirs
def test_a_process_that_cannot_read_the_state_says_so_and_status_exits_1(
    urls: dict[str, str], shared_runtime: Path
) -> None:
    board = Switchboard(urls, runtime_dir=shared_runtime)
    try:
        board.use("production", user="ops")
    finally:
        board.close()
    (shared_runtime / STATE).chmod(0o600)  # as a stricter umask or a copy would leave it
    code, status, err = status_as_nobody(urls, shared_runtime)
    assert code == 1
    assert status["confirmed"] is False and "Permission denied" in str(status["problem"])
    assert "not confirmed" in err and "state file" in err  # the error log names the file


# -- the production lock is everybody's ---------------------------------------

LOCKED_APP = """
import sys, time
from dbswap import Switchboard
board = Switchboard({"local": sys.argv[1], "production": sys.argv[2]}, runtime_dir=sys.argv[3],
                    production_lock=True)
print("locked", flush=True)
time.sleep(120)
"""


def test_a_locked_process_refuses_every_switch_from_anywhere_until_it_dies(
    urls: dict[str, str], tmp_path: Path
) -> None:
    from dbswap.cli import cli
    from webhelpers import ADMIN, SWITCH, TestClient, admin_app

    runtime = tmp_path / "rt"
    locked = child(LOCKED_APP, urls["local"], urls["production"], str(runtime))
    try:
        assert locked.stdout is not None and locked.stdout.readline().strip() == "locked"
        board = Switchboard(urls, runtime_dir=runtime)  # a shell without DBSWAP_ENV
        try:
            with pytest.raises(SwitchLocked, match="DBSWAP_ENV=production") as refused:
                board.use("production")
            assert refused.value.locked
            assert board.generation == 0 and board.history(1)[0]["outcome"] == "refused"
            env = {
                "DATABASE_URL_LOCAL": urls["local"],
                "DATABASE_URL_PRODUCTION": urls["production"],
                "DBSWAP_RUNTIME_DIR": str(runtime),
            }
            from click.testing import CliRunner

            used = CliRunner().invoke(cli, ["use", "production", "--yes"], env=env)
            assert used.exit_code == 1 and "DBSWAP_ENV=production" in used.output
            status = json.loads(CliRunner().invoke(cli, ["status", "--json"], env=env).output)
            assert (status["target"], status["locked"]) == ("production", True)
            assert f"pid {locked.pid}" in status["lock_reason"]
            with TestClient(admin_app(board)) as client:
                api = client.post(SWITCH, json={"target": "production"}, headers=ADMIN)
                assert api.status_code == 403 and api.json()["error"] == "locked"
                shown = client.get("/api/admin/database", headers=ADMIN).json()
                assert (shown["target"], shown["locked"]) == ("production", True)
            locked.send_signal(signal.SIGKILL)
            locked.wait(10)
            time.sleep(0.05)
            assert board.lock_reason is None  # the kernel released the dead holder's lock
            assert board.use("production").changed
        finally:
            board.close()
    finally:
        locked.kill()
        locked.communicate(timeout=10)
