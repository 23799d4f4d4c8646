"""The dbswap command: every command, its JSON form, and its exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dbhelpers import seed
from dbswap.cli import cli

SECRET = "Cl1Secret-pw"


@pytest.fixture
def env(
    tmp_path: Path, sqlite_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    for key in ("DATABASE_URL_LOCAL", "DATABASE_URL_PRODUCTION", "DBSWAP_ENV"):
        monkeypatch.delenv(key, raising=False)
    local, prod = sqlite_url("local"), sqlite_url("production")
    seed(local, ["l"])
    seed(prod, ["p"])
    return {
        "DATABASE_URL_LOCAL": local,
        "DATABASE_URL_PRODUCTION": prod,
        "DATABASE_URL_BROKEN": f"postgresql://postgres:{SECRET}@127.0.0.1:1/x",
        "DBSWAP_RUNTIME_DIR": str(tmp_path / "rt"),
    }


def run(env: dict[str, str], *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


def test_status_shows_the_default_then_the_switch(env: dict[str, str]) -> None:
    result = run(env, "status")
    assert result.exit_code == 0
    assert "active:      local" in result.output
    run(env, "use", "production", "--yes", "--user", "alice")
    data = json.loads(run(env, "status", "--json").output)
    assert data["target"] == "production"
    assert data["generation"] == 1
    assert data["switched_by"] == "alice"
    assert data["url"].startswith("sqlite:///")


def test_targets_lists_masked_urls_and_checks_on_request(env: dict[str, str]) -> None:
    result = run(env, "targets")
    assert result.exit_code == 0
    assert "* local" in result.output and "broken" in result.output
    assert SECRET not in result.output and "***" in result.output
    checked = run(env, "targets", "--check", "--json")
    assert checked.exit_code == 1  # one target is unreachable
    rows = {row["name"]: row for row in json.loads(checked.output)}
    assert rows["local"]["ok"] and rows["local"]["active"]
    assert rows["broken"]["ok"] is False and "refused" in rows["broken"]["error"]
    assert SECRET not in checked.output


def test_check_exit_code_follows_health(env: dict[str, str]) -> None:
    result = run(env, "check")
    assert result.exit_code == 1
    assert "UNREACHABLE" in result.output and "ok (" in result.output
    healthy = {k: v for k, v in env.items() if k != "DATABASE_URL_BROKEN"}
    assert run(healthy, "check").exit_code == 0


def test_use_switches_and_is_idempotent(env: dict[str, str]) -> None:
    result = run(env, "use", "production", "--yes")
    assert result.exit_code == 0
    assert "switched local -> production (read-write, generation 1" in result.output
    again = run(env, "use", "PRODUCTION", "--json")  # already there: no confirmation needed
    assert again.exit_code == 0
    assert json.loads(again.output)["changed"] is False
    back = json.loads(run(env, "use", "local", "--json").output)
    assert (back["previous"], back["target"], back["generation"]) == ("production", "local", 2)


def test_use_production_asks_for_confirmation(env: dict[str, str]) -> None:
    for answer in (None, "n\n", "\n"):  # no input at all, a no, the default
        refused = run(env, "use", "production", input=answer)
        assert refused.exit_code == 1
        # The question says where production is (never with a password).
        assert "Switch the app to PRODUCTION (SQLite file " in refused.output
        assert "not confirmed, nothing changed; pass --yes" in refused.output
        assert json.loads(run(env, "status", "--json").output)["target"] == "local"
    history = json.loads(run(env, "history", "--json").output)
    assert [(e["outcome"], e["to"], e["reason"]) for e in history] == [
        ("refused", "production", "not confirmed (asked before production)")
    ] * 3  # every refusal has its line, as the runbook says
    confirmed = run(env, "use", "production", input="y\n")
    assert confirmed.exit_code == 0
    assert json.loads(run(env, "status", "--json").output)["target"] == "production"


def test_use_refusals_exit_1_with_one_line(env: dict[str, str]) -> None:
    unknown = run(env, "use", "staging")
    assert unknown.exit_code == 1
    assert unknown.output.strip() == (
        "error: unknown target 'staging'; known targets: broken, local, production"
    )
    broken = run(env, "use", "broken", "--timeout", "2")
    assert broken.exit_code == 1
    assert broken.output.startswith("error: target 'broken' is unavailable")
    assert SECRET not in broken.output and "Traceback" not in broken.output
    assert len(broken.output.strip().splitlines()) == 1


def test_history_shows_attempts_newest_first(env: dict[str, str]) -> None:
    assert "no switch recorded yet" in run(env, "history").output
    run(env, "use", "production", "--yes", "-u", "alice")
    run(env, "use", "nope")
    result = run(env, "history", "-n", "5")
    lines = result.output.splitlines()
    assert "refused" in lines[0] and "nope" in lines[0]
    assert "ok" in lines[1] and "by alice" in lines[1]
    entries = json.loads(run(env, "history", "--json", "-n", "1").output)
    assert len(entries) == 1 and entries[0]["to"] == "nope"


def test_usage_and_configuration_errors_exit_2(env: dict[str, str]) -> None:
    assert run(env, "use").exit_code == 2
    assert run(env, "history", "-n", "0").exit_code == 2
    assert run(env, "nonsense").exit_code == 2
    bad = run(env | {"DBSWAP_DEFAULT_TARGET": "zz"}, "status")
    assert bad.exit_code == 2
    assert bad.output.strip().startswith("error: default target 'zz' is not configured")
    remote = run(
        env | {"DATABASE_URL_LOCAL": f"postgresql://u:{SECRET}@db.example.com/x"}, "status"
    )
    assert remote.exit_code == 2 and SECRET not in remote.output


def test_locked_production_refuses_use(env: dict[str, str]) -> None:
    locked = env | {"DBSWAP_ENV": "production"}
    status = json.loads(run(locked, "status", "--json").output)
    assert status["target"] == "production" and status["locked"] is True
    result = run(locked, "use", "local")
    assert result.exit_code == 1 and "DBSWAP_ENV=production" in result.output


def test_help_explains_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("status", "targets", "use", "check", "history"):
        assert command in result.output
    assert "DATABASE_URL_<NAME>" in result.output


def test_installed_command_prints_no_traceback(env: dict[str, str], tmp_path: Path) -> None:
    """The real entry point, in a real process, with a broken configuration."""
    dbswap_bin = Path(sys.executable).with_name("dbswap")
    done = subprocess.run(
        [str(dbswap_bin), "status"],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL_LOCAL": "::bad::"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: DATABASE_URL_LOCAL: not a database URL: '::bad::' (it does not begin with a "
        "database type such as postgresql://); expected e.g. postgresql://user:password@host:5432/dbname"
    )
    ok = subprocess.run(
        [str(dbswap_bin), "use", "production", "--yes"], env=env, cwd=tmp_path, capture_output=True
    )
    assert ok.returncode == 0, ok.stderr


def test_use_read_only_and_writable_and_status_shows_the_mode(env: dict[str, str]) -> None:
    readonly_env = env | {"DBSWAP_READONLY": "production"}
    result = run(readonly_env, "use", "production", "--yes")
    assert result.exit_code == 0 and "(read-only," in result.output
    assert "mode:        READ-ONLY" in run(readonly_env, "status").output
    writable = json.loads(run(readonly_env, "use", "production", "--writable", "--json").output)
    assert writable["changed"] and writable["read_only"] is False and writable["generation"] == 2
    assert json.loads(run(readonly_env, "status", "--json").output)["read_only"] is False
    back = json.loads(run(env, "use", "local", "--read-only", "--json").output)
    assert back["read_only"] is True
    bad = run(env | {"DBSWAP_READONLY": "nowhere"}, "status")
    assert bad.exit_code == 2 and "'nowhere'" in bad.output
