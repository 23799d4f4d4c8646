"""Junk values are a ConfigError with a one-line message (CLI: exit code 2), never a traceback.

Timeouts (inf, 1e300, nan, zero, negative, too long), DBSWAP_RETIRE_GRACE
(inf, nan), and target URLs SQLAlchemy cannot use (a port that is not a
number, an unclosed IPv6 bracket, an unknown database type) are refused where
they are given, with a message that says what is wrong. A driver's multi-line
error keeps its reason on its one line.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from dbhelpers import seed
from dbswap import ConfigError, Switchboard, TargetUnavailable
from dbswap._health import _describe
from dbswap.cli import cli

JUNK_TIMEOUTS = ["inf", "1e300", "nan", "-1", "0", "3601", "1e999", "soon"]


@pytest.fixture
def env(
    tmp_path: Path, sqlite_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    local, staging = sqlite_url("local"), sqlite_url("staging")
    seed(local, ["l"])
    seed(staging, ["s"])
    return {
        "DATABASE_URL_LOCAL": local,
        "DATABASE_URL_STAGING": staging,
        "DBSWAP_RUNTIME_DIR": str(tmp_path / "rt"),
    }


@pytest.fixture
def board(env: dict[str, str], tmp_path: Path) -> Iterator[Switchboard]:
    board = Switchboard(
        {"local": env["DATABASE_URL_LOCAL"], "staging": env["DATABASE_URL_STAGING"]},
        runtime_dir=tmp_path / "rt",
    )
    yield board
    board.dispose()


def _one_line_exit_2(result: object, *needles: str) -> str:
    output: str = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 2, output  # type: ignore[attr-defined]
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) == 1, output
    assert output.startswith("error: ")
    for needle in needles:
        assert needle in output
    return output


@pytest.mark.parametrize("value", JUNK_TIMEOUTS)
def test_a_junk_timeout_on_the_command_line_is_exit_2_and_changes_nothing(
    env: dict[str, str], value: str
) -> None:
    runner = CliRunner()
    for args in (
        ["use", "staging", "--timeout", value],
        ["check", "--timeout", value],
        ["targets", "--check", "--timeout", value],
    ):
        result = runner.invoke(cli, args, env=env)
        _one_line_exit_2(result, "--timeout must be a number of seconds more than 0 and at most")
    status = json.loads(runner.invoke(cli, ["status", "--json"], env=env).output)
    assert (status["target"], status["generation"]) == ("local", 0)


@pytest.mark.parametrize("value", [math.inf, 1e300, math.nan, -1.0, 0.0, 3601.0])
def test_a_junk_timeout_in_code_is_a_config_error_audited_and_changes_nothing(
    board: Switchboard, value: object
) -> None:
    with pytest.raises(ConfigError, match="timeout must be a number of seconds"):
        board.use("staging", timeout=value)  # type: ignore[arg-type]
    assert board.active == "local" and board.generation == 0
    last = board.history(1)[0]
    assert (last["outcome"], last["to"]) == ("refused", "staging")
    assert "timeout must be" in last["reason"]
    with pytest.raises(ConfigError, match="timeout must be a number of seconds"):
        board.check(timeout=value)  # type: ignore[arg-type]


def test_the_longest_timeout_allowed_still_switches(board: Switchboard) -> None:
    assert board.use("staging", timeout=3600).changed
    assert [h.ok for h in board.check(timeout=3600)] == [True, True]


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "1e999", "3601", "later"])
def test_a_junk_retire_grace_is_refused_at_load(
    env: dict[str, str], tmp_path: Path, value: str
) -> None:
    with pytest.raises(ConfigError, match="DBSWAP_RETIRE_GRACE must be a number of seconds"):
        Switchboard.from_env(env | {"DBSWAP_RETIRE_GRACE": value}, cwd=tmp_path)
    result = CliRunner().invoke(cli, ["status"], env=env | {"DBSWAP_RETIRE_GRACE": value})
    _one_line_exit_2(result, "DBSWAP_RETIRE_GRACE")


def test_an_infinite_grace_given_in_code_is_refused_before_any_thread_runs(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Today's crash was in the retire timer's thread, after a switch: now nothing starts."""
    crashes: list[threading.ExceptHookArgs] = []
    previous, threading.excepthook = threading.excepthook, crashes.append
    try:
        urls = {"local": env["DATABASE_URL_LOCAL"], "staging": env["DATABASE_URL_STAGING"]}
        with pytest.raises(ConfigError, match="retire_grace must be a number of seconds"):
            Switchboard(urls, runtime_dir=tmp_path / "rt", retire_grace=math.inf)
        board = Switchboard(urls, runtime_dir=tmp_path / "rt", retire_grace=3600)
        board.use("staging")  # the largest grace starts a timer that does not crash
        board.use("local")
        board.dispose()
    finally:
        threading.excepthook = previous
    assert crashes == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:pw@db.example.com:notaport/app", "its port is not a number"),
        ("postgresql://u:pw@[::1/app", "an IPv6 host needs its closing ']'"),
        ("postgresql://u:pw@[::1]:99999/app", "must be from 1 to 65535"),
        ("foo://u:pw@localhost/app", "unknown database type 'foo'"),
        ("host=db user=u password=pw dbname=app", "a key=value connection string"),
    ],
)
def test_a_target_url_sqlalchemy_cannot_use_is_refused_at_load_saying_why(
    env: dict[str, str], tmp_path: Path, url: str, expected: str
) -> None:
    bad = env | {"DATABASE_URL_OTHER": url}
    with pytest.raises(ConfigError, match="DATABASE_URL_OTHER") as info:
        Switchboard.from_env(bad, cwd=tmp_path)
    assert expected in str(info.value) and "pw" not in str(info.value)
    for args in (["status"], ["targets"], ["check"], ["use", "other"]):
        _one_line_exit_2(CliRunner().invoke(cli, args, env=bad), expected)


def test_an_unknown_database_type_for_local_is_not_called_a_remote_host(
    env: dict[str, str], tmp_path: Path
) -> None:
    bad = env | {"DATABASE_URL_LOCAL": "foo://u:pw@db.example.com/app"}
    output = _one_line_exit_2(CliRunner().invoke(cli, ["status"], env=bad))
    assert "unknown database type 'foo'" in output and "remote host" not in output


def test_the_installed_command_refuses_junk_in_one_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The real entry point, in a real process: no traceback from any thread either."""
    dbswap_bin = Path(sys.executable).with_name("dbswap")
    for args, extra in [
        (["use", "staging", "--timeout", "inf"], {}),
        (["status"], {"DBSWAP_RETIRE_GRACE": "inf"}),
        (["status"], {"DATABASE_URL_OTHER": "postgresql://u:pw@h:notaport/x"}),
    ]:
        done = subprocess.run(
            [str(dbswap_bin), *args],
            env={"PATH": "/usr/bin:/bin", **env, **extra},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


@pytest.mark.postgres
def test_a_refused_connection_says_why_on_one_line(env: dict[str, str], tmp_path: Path) -> None:
    board = Switchboard(
        {"local": env["DATABASE_URL_LOCAL"], "down": "postgresql://postgres@127.0.0.1:1/x"},
        runtime_dir=tmp_path / "rt",
    )
    try:
        with pytest.raises(TargetUnavailable) as info:
            board.use("down", timeout=5)
        assert "Connection refused" in info.value.reason and "\n" not in info.value.reason
    finally:
        board.dispose()


def test_a_reason_libpq_puts_on_the_next_line_is_kept() -> None:
    """libpq may end a line with "failed:" and give the reason on the next one."""
    target = Switchboard(
        {"local": "postgresql://postgres@127.0.0.1:1/x"}, runtime_dir="/nonexistent"
    ).target("local")
    error = psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 1 failed:\n'
        "Connection refused\n"
        "\tIs the server running on that host and accepting TCP/IP connections?"
    )
    reason = _describe(error, target)
    assert reason == (
        'OperationalError: connection failed: connection to server at "127.0.0.1", '
        "port 1 failed: Connection refused"
    )
