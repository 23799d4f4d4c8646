"""Passwords and tokens never leave the process: logs, audit, reprs, errors, CLI."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from dbswap import ConfigError, Switchboard, Target, TargetUnavailable
from dbswap._masking import mask_text, mask_url
from dbswap.cli import cli
from webhelpers import ADMIN, HISTORY, PAGE, STATUS, SWITCH, TestClient, admin_app

PASSWORD = "Sup3r-S3cret-pw"
TOKEN = "vercel_blob_rw_T0ken_abcdef"


@pytest.mark.postgres
def test_no_secret_in_any_output(
    tmp_path: Path,
    pg_url: Callable[[str], str],
    sqlite_url: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prod = sa.make_url(pg_url("production")).set(password=PASSWORD)  # trust auth accepts it
    env = {
        "DATABASE_URL_LOCAL": sqlite_url("local"),
        "DATABASE_URL_PRODUCTION": prod.render_as_string(hide_password=False),
        "DATABASE_URL_DOWN": f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/x?sslpassword={PASSWORD}",
        "BLOB_READ_WRITE_TOKEN_PRODUCTION": TOKEN,
        "API_SECRET_DOWN": TOKEN + "2",
        "DATABASE_URL": f"postgresql://postgres:{PASSWORD}@127.0.0.1/x",
        "DBSWAP_RUNTIME_DIR": str(tmp_path / "rt"),
    }
    outputs: list[str] = []
    with caplog.at_level(logging.DEBUG):
        board = Switchboard.from_env(env, cwd=tmp_path)
        outputs += [repr(board), repr(board.targets), str(board.targets)]
        outputs += [repr(t.masked_settings()) for t in board.targets.values()]
        board.use("production", user="alice")
        with pytest.raises(TargetUnavailable) as info:
            board.use("down")
        outputs += [str(info.value), repr(info.value), info.value.reason]
        outputs += [repr(board.check())]
        outputs += [repr(board.history())]
        outputs += [(tmp_path / "rt" / "db-switch.log").read_text()]

        @board.on_switch
        def leaky(result: object) -> None:
            raise RuntimeError(f"failed with {board.url_for('production')} and {TOKEN}")

        board.use("local")
    outputs += [record.getMessage() for record in caplog.records]
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for args in (["status"], ["targets", "--check"], ["check"], ["history"], ["use", "down"]):
        outputs.append(runner.invoke(cli, [*args, "--json"], env=env).output)
        outputs.append(runner.invoke(cli, args, env=env).output)
    everything = "\n".join(outputs)
    assert "***" in everything
    assert "failed with" in everything  # the hook's message was logged, masked
    assert PASSWORD not in everything
    assert TOKEN not in everything
    assert board.setting("BLOB_READ_WRITE_TOKEN", "production") == TOKEN  # still usable
    board.dispose()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:p%40ss@h/db", "postgresql://u:***@h/db"),
        ("mysql+pymysql://root:pw@127.0.0.1:3306/x", "mysql+pymysql://root:***@127.0.0.1:3306/x"),
        ("postgresql://u@h/db?password=abc&x=1", "postgresql://u@h/db?password=***&x=1"),
        ("sqlite:////tmp/a.db", "sqlite:////tmp/a.db"),
        (
            "see postgres://a:b@c/d and redis://:tok@r:6379/0",
            "see postgres://a:***@c/d and redis://:***@r:6379/0",
        ),
    ],
)
def test_mask_url(text: str, expected: str) -> None:
    assert mask_url(text) == expected


def test_mask_text_masks_known_values_longest_first() -> None:
    assert mask_text("token abcdef and abcdefgh", ["abcdef", "abcdefgh"]) == "token *** and ***"


# -- every form a URL password takes ------------------------------------------------------

ENCODED = "MARK%40pass%20word"  # percent-encoded '@' and space: "MARK@pass word"
SPACED = "MARKspace pass"  # a raw space, as people paste it


@pytest.mark.postgres
def test_percent_encoded_and_spaced_passwords_are_masked_in_every_output(
    tmp_path: Path,
    pg_url: Callable[[str], str],
    sqlite_url: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every output, for a password that is percent-encoded and one with a raw space.

    ``MARK`` starts every password and appears nowhere else, so any leak of any
    form (decoded, as written, as SQLAlchemy re-writes it, re-encoded) shows.
    """
    remote = pg_url("remote").replace("postgres@", f"postgres:{ENCODED}@", 1)
    env = {
        "DATABASE_URL_LOCAL": sqlite_url("local"),
        "DATABASE_URL_REMOTE": remote,  # the real server, trust auth: any password works
        "DATABASE_URL_SPACED": f"postgresql://postgres:{SPACED}@127.0.0.1:1/x",  # unreachable
        "DBSWAP_RUNTIME_DIR": str(tmp_path / "rt"),
    }
    outputs: list[str] = []
    with caplog.at_level(logging.DEBUG):
        board = Switchboard.from_env(env, cwd=tmp_path)
        outputs += [repr(board), repr(board.targets), str(board.targets)]
        outputs += [t.masked_url for t in board.targets.values()]
        board.use("remote", user="alice")
        with pytest.raises(TargetUnavailable) as info:
            board.use("spaced", timeout=2)
        outputs += [str(info.value), info.value.reason, repr(board.check(timeout=2))]
        with TestClient(admin_app(board)) as client:
            outputs.append(client.get(STATUS, headers=ADMIN).text)
            refused = client.post(SWITCH, json={"target": "spaced"}, headers=ADMIN)
            assert refused.status_code == 503
            outputs.append(refused.text)
            outputs.append(client.get(HISTORY, headers=ADMIN).text)
            outputs.append(client.get(PAGE, headers=ADMIN).text)
        monkeypatch.chdir(tmp_path)
        runner = CliRunner()
        for json_flag in ([], ["--json"]):  # remote is active: its URL is shown
            outputs.append(runner.invoke(cli, ["status", *json_flag], env=env).output)
        board.use("local")  # the CLI's own checks then leave no connection open
        outputs.append((tmp_path / "rt" / "db-switch.log").read_text())
        board.dispose()
    outputs += [record.getMessage() for record in caplog.records]
    spaced_active = env | {"DBSWAP_DEFAULT_TARGET": "spaced", "DBSWAP_RUNTIME_DIR": "rt2"}
    for args, environment in [
        (["status"], spaced_active),
        (["targets"], env),
        (["targets", "--check", "--timeout", "2"], env),
        (["check", "--timeout", "2"], env),
        (["use", "spaced", "--timeout", "2"], env),
        (["history"], env),
    ]:
        for json_flag in ([], ["--json"]):
            result = runner.invoke(cli, [*args, *json_flag], env=environment)
            assert "Traceback" not in result.output
            outputs.append(result.output)
    everything = "\n".join(outputs)
    assert "MARK" not in everything
    assert "postgres:***@127.0.0.1:5432" in everything and "postgres:***@127.0.0.1:1" in everything


def test_a_libpq_key_value_string_given_as_a_url_is_refused_without_its_password(
    tmp_path: Path, sqlite_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "DATABASE_URL_LOCAL": sqlite_url("local"),
        "DATABASE_URL_X": "host=h user=u password=MARKdsn dbname=d",
        "DBSWAP_RUNTIME_DIR": str(tmp_path / "rt"),
    }
    with pytest.raises(ConfigError) as info:
        Switchboard.from_env(env, cwd=tmp_path)
    message = str(info.value)
    assert "MARK" not in message and "password=***" in message
    assert message.startswith("DATABASE_URL_X: not a database URL")
    assert "key=value connection string: write it as a URL" in message
    monkeypatch.chdir(tmp_path)
    for args in (["status"], ["targets"], ["check"], ["use", "x"]):
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 2
        assert "MARK" not in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:MARK%40pass%20word@host/db",  # percent-encoded
        "postgresql://u:MARK pass@host/db",  # a raw space
        "postgresql://u:MARK/pa?ss@host/db",  # '/' and '?' in a raw password
        "postgresql://u:MARKx@h:notaport/db",  # parses nowhere: port
        "postgresql://u:MARK x@[::1/db",  # parses nowhere: bracket
        "u:MARK pass@host/db",  # no scheme at all
        "host=h user=u password=MARK dbname=d",  # libpq key=value
        "host=h user=u password='MARK x' dbname=d",
        "redis://:MARKtok@r:6379/0?prefix=app",
    ],
)
def test_mask_url_hides_the_password_of_every_url_form(url: str) -> None:
    masked = mask_url(url)
    assert "MARK" not in masked and "***" in masked


@pytest.mark.parametrize(
    "url",
    ["postgresql://u:MARK%40pass%20word@h/db", "postgresql://u:MARK pass@h/db"],
)
def test_a_targets_secrets_hold_its_password_in_every_form(url: str) -> None:
    target = Target("x", url)
    assert "MARK" not in repr(target) and "MARK" not in target.masked_url
    sqlalchemy_form = target.sa_url.render_as_string(hide_password=False)
    text = f"{url} {sqlalchemy_form} {target.sa_url.password} {target.sa_url.password!r}"
    assert "MARK" not in mask_text(text, target.secrets)
