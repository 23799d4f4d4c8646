"""No file of the runtime dir is opened through a symbolic link planted there.

Each test plants a link in a fresh runtime dir, pointing at a victim file, then
does what an app and an operator do (switch, status, history, the production
lock, the admin page's key): the victim is never written, truncated or read as
dbswap's own, and the refusal says why.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from dbhelpers import seed
from dbswap import ConfigError, Switchboard, SwitchLocked
from dbswap._csrf import shared_key

VICTIM = b"the victim's own bytes: never dbswap's to write or trust\n" * 2


@pytest.fixture
def urls(sqlite_url: Callable[[str], str]) -> dict[str, str]:
    result = {name: sqlite_url(name) for name in ("local", "production")}
    for name, url in result.items():
        seed(url, [name])
    return result


def plant(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A runtime dir whose ``name`` is a link to a victim file; (runtime dir, victim)."""
    runtime, victim = tmp_path / "rt", tmp_path / "victim"
    runtime.mkdir()
    victim.write_bytes(VICTIM)
    (runtime / name).symlink_to(victim)
    return runtime, victim


def test_the_audit_log(urls: dict[str, str], tmp_path: Path) -> None:
    runtime, victim = plant(tmp_path, "db-switch.log")
    board = Switchboard(urls, runtime_dir=runtime)
    try:
        with pytest.raises(ConfigError, match="symbolic link"):
            board.use("production")  # its line cannot be written: not committed
        assert board.active == "local"
        with pytest.raises(ConfigError, match="symbolic link"):
            board.history()
    finally:
        board.close()
    assert victim.read_bytes() == VICTIM


def test_the_generation_counter(
    urls: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime, victim = plant(tmp_path, "db-target.gen")
    board = Switchboard(urls, runtime_dir=runtime)
    try:
        board.use("production")  # works without the counter (every session stat()s)
        board.use("local")
        assert board.active == "local"
    finally:
        board.close()
    assert victim.read_bytes() == VICTIM  # its first 8 bytes are not a counter
    assert any("symbolic link" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


def test_the_switch_lock(urls: dict[str, str], tmp_path: Path) -> None:
    runtime, victim = plant(tmp_path, "db-target.json.lock")
    board = Switchboard(urls, runtime_dir=runtime)
    try:
        with pytest.raises(ConfigError, match="symbolic link"):
            board.use("production")
        assert board.active == "local"
    finally:
        board.close()
    assert victim.read_bytes() == VICTIM


def test_the_production_lock_notice(
    urls: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime, victim = plant(tmp_path, "db-target.production-lock")
    caplog.set_level(logging.ERROR, logger="dbswap")
    locked = Switchboard(urls, runtime_dir=runtime, production_lock=True)
    other = Switchboard(urls, runtime_dir=runtime)
    try:
        assert any("symbolic link" in r.getMessage() for r in caplog.records)
        # Nobody can tell whether a locked process serves production: nobody switches.
        assert "symbolic link" in (other.lock_reason or "")
        with pytest.raises(SwitchLocked, match="symbolic link"):
            other.use("production")
    finally:
        locked.close()
        other.close()
    assert victim.read_bytes() == VICTIM  # not truncated, not overwritten


def test_the_admin_pages_key(tmp_path: Path) -> None:
    runtime, victim = plant(tmp_path, "csrf.key")
    assert shared_key(runtime) is None  # a known file's bytes are never the key
    assert victim.read_bytes() == VICTIM


def test_the_state_file_itself(urls: dict[str, str], tmp_path: Path) -> None:
    runtime, victim = plant(tmp_path, "db-target.json")
    board = Switchboard(urls, runtime_dir=runtime)
    try:
        assert board.active == "local"
        assert "symbolic link" in (board.state_problem or "")
        with pytest.raises(ConfigError, match="symbolic link"):
            board.use("production")
    finally:
        board.close()
    assert victim.read_bytes() == VICTIM


def test_a_file_planted_where_the_state_is_staged_is_never_written(
    urls: dict[str, str], tmp_path: Path
) -> None:
    """The staged state's name is known (one per process): a file there, a hard link to a
    victim even, is replaced, never written through."""
    runtime, victim = tmp_path / "rt", tmp_path / "victim"
    runtime.mkdir()
    victim.write_bytes(VICTIM)
    staged = runtime / f".db-target.{os.getpid()}.tmp"
    os.link(victim, staged)
    board = Switchboard(urls, runtime_dir=runtime)
    try:
        board.use("production")
        assert board.active == "production"
    finally:
        board.close()
    assert victim.read_bytes() == VICTIM
    assert not staged.exists()


def test_a_runtime_dir_removed_between_switches_is_made_again(
    urls: dict[str, str], tmp_path: Path
) -> None:
    runtime = tmp_path / "rt"
    board = Switchboard(urls, runtime_dir=runtime)
    try:
        board.use("production")
        shutil.rmtree(runtime)
        assert board.active == "local"  # no state: the default target
        result = board.use("production")
        assert result.changed and board.active == "production"
        assert [e["outcome"] for e in board.history()] == ["ok"]  # a new trail
        assert (runtime / "db-target.json").exists()
    finally:
        board.close()
