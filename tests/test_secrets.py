"""Passwords and tokens never leave the process: logs, audit, reprs, errors, CLI."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from dbswap import Switchboard, TargetUnavailable
from dbswap._masking import mask_text, mask_url
from dbswap.cli import cli

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
