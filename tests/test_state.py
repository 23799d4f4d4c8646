"""The persisted state: atomic writes, and a corrupt or stale file never crashes the app."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

import dbswap._expiry
from dbswap import PinnedSession, Switchboard
from dbswap._state import FileStateStore, State


@pytest.fixture
def board(tmp_path: Path, sqlite_url: Callable[[str], str]) -> Switchboard:
    urls = {"local": sqlite_url("local"), "production": sqlite_url("production")}
    return Switchboard(urls, runtime_dir=tmp_path / "rt")


def state_file(board: Switchboard) -> Path:
    return board.runtime_dir / "db-target.json"


def test_missing_file_means_the_default_target(board: Switchboard) -> None:
    assert board.active == "local"
    assert board.state == State("local", 0, read_only=False)
    assert not state_file(board).exists()


def test_a_switch_writes_the_whole_state(board: Switchboard) -> None:
    board.use("production", user="alice")
    data = json.loads(state_file(board).read_text())
    assert data["target"] == "production"
    assert data["generation"] == 1
    assert data["switched_by"] == "alice"
    assert data["switched_at"].endswith("Z")
    board.use("local")
    assert json.loads(state_file(board).read_text())["generation"] == 2
    # no temporary file is left behind
    assert sorted(p.name for p in board.runtime_dir.iterdir()) == [
        "db-switch.log",
        "db-target.gen",
        "db-target.json",
        "db-target.json.lock",
    ]


@pytest.mark.parametrize(
    "content",
    [
        "",
        "{not json",
        '{"target": 3}',
        '["production"]',
        '{"target": "production", "generation": -1}',
        '{"target": "production", "generation": "7"}',
        "\x00\xff\xfe garbage",
    ],
)
def test_corrupt_file_means_default_plus_one_warning_and_next_switch_rewrites_it(
    board: Switchboard, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    board.runtime_dir.mkdir()
    state_file(board).write_bytes(content.encode("utf-8", "surrogateescape"))
    with caplog.at_level(logging.WARNING, logger="dbswap"):
        assert board.active == "local"
        assert board.active == "local"
    warnings = [r for r in caplog.records if "unusable" in r.getMessage()]
    assert len(warnings) == 1
    result = board.use("production")
    assert result.changed and result.generation == 1
    assert State.from_json(state_file(board).read_text()).target == "production"


def test_state_naming_a_removed_target_means_default_plus_warning(
    board: Switchboard, caplog: pytest.LogCaptureFixture
) -> None:
    board.runtime_dir.mkdir()
    state_file(board).write_text(json.dumps({"target": "staging", "generation": 4}))
    with caplog.at_level(logging.WARNING, logger="dbswap"):
        assert board.active == "local"
    assert any("staging" in r.getMessage() for r in caplog.records)
    assert board.use("production").generation == 5


def test_switching_to_the_default_rewrites_a_corrupt_file(board: Switchboard) -> None:
    board.runtime_dir.mkdir()
    state_file(board).write_text("{oops")
    result = board.use("local")
    assert result.changed
    assert State.from_json(state_file(board).read_text()) == board.state


def test_reader_sees_a_replaced_file_and_caches_an_unchanged_one(tmp_path: Path) -> None:
    writer, reader = FileStateStore(tmp_path), FileStateStore(tmp_path)
    assert reader.current() is None
    writer.write(State("production", 1, "t", "u"))
    first = reader.current()
    assert first == State("production", 1, "t", "u")
    assert reader.current() is first  # same identity: not parsed again
    writer.write(State("local", 2, "t", "u"))
    assert reader.current() == State("local", 2, "t", "u")


def test_a_staged_write_is_committed_only_by_a_write_of_the_same_state(tmp_path: Path) -> None:
    """use() writes and fsyncs the new state file during the health check: nothing is visible
    until write(); a failed switch drops it; a write of another state ignores it."""
    store = FileStateStore(tmp_path)
    store.write(State("local", 1, "t", "u"))

    def temporaries() -> list[Path]:
        return list(tmp_path.glob(".db-target.*.tmp"))

    store.stage(State("production", 2, "t", "u"))
    assert len(temporaries()) == 1
    assert FileStateStore(tmp_path).read() == State("local", 1, "t", "u")  # not committed
    store.unstage()
    assert temporaries() == []

    store.stage(State("production", 2, "t", "u"))
    store.write(State("production", 2, "t", "u"))
    assert FileStateStore(tmp_path).read() == State("production", 2, "t", "u")
    assert temporaries() == []

    store.stage(State("local", 3, "t", "u"))
    store.write(State("production", 3, "t", "other"))  # not what was staged
    assert FileStateStore(tmp_path).read() == State("production", 3, "t", "other")
    assert temporaries() == []


def test_a_lock_held_by_another_process_refuses_until_that_process_dies(
    board: Switchboard,
) -> None:
    """The switch lock is the kernel's (flock): a busy holder makes use() wait, then refuse
    with nothing changed; a holder killed by SIGKILL releases it at once."""
    from dbswap import SwitchLocked

    board.use("production")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
            str(board.runtime_dir / "db-target.json.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(SwitchLocked, match="another process holds the switch lock"):
            board.use("local", lock_timeout=0.3)
        assert 0.3 <= time.monotonic() - started < 3
        assert board.active == "production"
        assert board.history(1)[0]["outcome"] == "refused"
        holder.kill()
        holder.wait(10)
        assert board.use("local").changed
        assert board.active == "local"
    finally:
        holder.kill()
        holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()


def test_unwritable_runtime_dir_is_a_clear_error_and_changes_nothing(
    board: Switchboard, tmp_path: Path
) -> None:
    import os

    if os.geteuid() == 0:
        # root ignores permissions; a file where the directory should be still fails
        board.runtime_dir.parent.mkdir(exist_ok=True)
        board.runtime_dir.write_text("not a directory")
    else:  # pragma: no cover - CI runs as root
        board.runtime_dir.mkdir()
        board.runtime_dir.chmod(0o500)
    from dbswap import ConfigError

    with pytest.raises(ConfigError):
        board.use("production")
    assert board.active == "local"


def test_switching_to_the_default_from_a_fresh_dir_is_a_no_op(board: Switchboard) -> None:
    result = board.use("local")
    assert not result.changed and result.generation == 0
    assert not state_file(board).exists()


def edit_state_without_bump(board: Switchboard, target: str) -> None:
    """Replace the state file as a hand edit (or a writer killed before its bump) would."""
    edited = board.runtime_dir / "edited.json"
    edited.write_text(State(target, 7, switched_by="an editor").to_json())
    edited.replace(state_file(board))


def wait_for_sessions_on(
    make: Callable[[], PinnedSession], target: str, within: float = 2.0
) -> None:
    started = time.monotonic()
    while True:
        with make() as s:
            if s.dbswap_target == target:
                return
        assert time.monotonic() - started < within, f"sessions never followed to {target!r}"
        time.sleep(0.01)


def test_a_state_replaced_without_its_counter_bump_is_followed_within_revalidate(
    board: Switchboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hand-edited file, or a writer killed between replace and bump: no bump comes, so
    sessions rely on the periodic stat(), even on their inline fast path."""
    monkeypatch.setattr("dbswap._state.REVALIDATE", 0.2)
    make = board.sessionmaker()
    board.use("production")
    with make() as s:
        s.get_bind()
        assert s.dbswap_target == "production"
    counter = (board.runtime_dir / "db-target.gen").read_bytes()
    edit_state_without_bump(board, "local")
    assert (board.runtime_dir / "db-target.gen").read_bytes() == counter  # no bump
    wait_for_sessions_on(make, "local")
    assert board.active == "local"


def test_a_forked_child_follows_a_state_replaced_without_its_bump(
    board: Switchboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child has no expiry thread of its parent's: it must start its own."""
    monkeypatch.setattr("dbswap._state.REVALIDATE", 0.2)
    make = board.sessionmaker()
    board.use("production")
    with make() as s:
        s.get_bind()  # the parent's fast pin and expiry thread
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: pin, say so, then wait for the unbumped change
        code = 1
        try:
            for _ in range(2):
                with make() as s:
                    assert s.dbswap_target == "production"
            os.write(ready_w, b"x")
            started = time.monotonic()
            while time.monotonic() - started < 3.0:
                with make() as s:
                    if s.dbswap_target == "local":
                        code = 0
                        break
                time.sleep(0.01)
        finally:
            os._exit(code)
    os.close(ready_w)
    assert os.read(ready_r, 1) == b"x"
    os.close(ready_r)
    edit_state_without_bump(board, "local")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child never followed the edited state"


def test_the_expiry_thread_starts_with_a_fast_pin_and_ends_with_the_last_board(
    tmp_path: Path, sqlite_url: Callable[[str], str]
) -> None:
    urls = {"local": sqlite_url("local"), "production": sqlite_url("production")}
    code = f"""
import threading, time
import dbswap._expiry
from dbswap import PinnedSession, Switchboard
def running():
    return any(t.name == "dbswap-pin-expiry" for t in threading.enumerate())
board = Switchboard({urls!r}, runtime_dir={str(tmp_path / "rt")!r})
assert not running()
board.use("production")
board.sessionmaker()().close()
assert running()
board.close()
started = time.monotonic()
while running():
    assert time.monotonic() - started < 2, "the thread outlived the last board"
    time.sleep(0.02)
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_without_an_expiry_thread_sessions_still_follow_an_unbumped_change(
    board: Switchboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that cannot start a thread (interpreter shutdown, a thread limit) gets no
    fast pin: its sessions work, and check the state file themselves."""

    class NoThreads(threading.Thread):
        def start(self) -> None:
            raise RuntimeError("can't start new thread")

    monkeypatch.setattr("dbswap._state.REVALIDATE", 0.2)
    monkeypatch.setattr(dbswap._expiry.expiry, "_thread", None)
    monkeypatch.setattr(dbswap._expiry, "threading", SimpleNamespace(Thread=NoThreads))
    make = board.sessionmaker()
    board.use("production")
    for _ in range(3):
        with make() as s:
            assert s.dbswap_target == "production"
    edit_state_without_bump(board, "local")
    wait_for_sessions_on(make, "local")


def test_a_board_that_fails_to_expire_its_pins_does_not_stop_the_others(
    board: Switchboard,
    tmp_path: Path,
    sqlite_url: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("dbswap._state.REVALIDATE", 0.2)
    broken = Switchboard(
        {"local": sqlite_url("b-local"), "production": sqlite_url("b-production")},
        runtime_dir=tmp_path / "broken",
    )

    def fail(now: float) -> None:
        raise RuntimeError("torn down")

    monkeypatch.setattr(broken, "_expire_fast", fail)
    broken.sessionmaker()().close()  # now watched by the same expiry thread
    make = board.sessionmaker()
    board.use("production")
    with make() as s:
        assert s.dbswap_target == "production"
    edit_state_without_bump(board, "local")
    wait_for_sessions_on(make, "local")
    broken.close()
