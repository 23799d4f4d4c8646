"""Seed-parity functions on the default board, and the pytest plugin."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

import dbswap
from dbhelpers import seed
from dbswap import Switchboard

pytest_plugins = ["pytester"]


@pytest.fixture
def env(
    tmp_path: Path, sqlite_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    urls = {"LOCAL": sqlite_url("local"), "PRODUCTION": sqlite_url("production")}
    seed(urls["LOCAL"], ["l"])
    seed(urls["PRODUCTION"], ["p"])
    monkeypatch.chdir(tmp_path)
    values = {f"DATABASE_URL_{k}": v for k, v in urls.items()} | {
        "BLOB_READ_WRITE_TOKEN_LOCAL": "tok-local",
        "BLOB_READ_WRITE_TOKEN_PRODUCTION": "tok-prod",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def test_seed_functions_work_on_a_board_built_from_the_environment(env: dict[str, str]) -> None:
    environ_before = dict(os.environ)
    board = dbswap.init()
    assert board is dbswap.default_board()
    assert board._engines.created("local")  # preloaded, not connected
    assert dbswap.get_active_target() == "local"
    assert dbswap.get_database_url_for_target() == env["DATABASE_URL_LOCAL"]
    assert dbswap.get_blob_token_for_target() == "tok-local"
    result = dbswap.set_active_target("production", user_id="user-42")
    assert result.target == "production" and board.history(1)[0]["user"] == "user-42"
    assert dbswap.get_active_target() == "production"
    assert dbswap.get_blob_token_for_target() == "tok-prod"
    assert dbswap.get_blob_token_for_target("local") == "tok-local"
    assert dbswap.get_database_url_for_target("local") == env["DATABASE_URL_LOCAL"]
    with dbswap.get_engine().connect() as conn:
        assert conn.execute(sa.text("SELECT label FROM items")).scalar() == "p"
    with dbswap.get_session() as session:
        assert session.execute(sa.text("SELECT label FROM items")).scalar() == "p"
    assert dict(os.environ) == environ_before  # nothing writes os.environ


def test_reset_default_board_rebuilds_from_the_environment(env: dict[str, str]) -> None:
    first = dbswap.default_board()
    dbswap.reset_default_board()
    assert dbswap.default_board() is not first


def test_the_plugin_gives_an_isolated_board(pytester: pytest.Pytester, tmp_path: Path) -> None:
    real_state = tmp_path / "real-runtime"
    pytester.makepyfile(
        f"""
        import pytest
        import dbswap
        from dbswap.testing import forced_target

        def test_isolated(dbswap_board):
            assert dbswap_board.active == "local"
            assert dbswap.default_board() is dbswap_board
            assert str(dbswap_board.runtime_dir) != {str(real_state)!r}
            with forced_target(dbswap_board, "production"):
                assert dbswap.get_active_target() == "production"
            assert dbswap_board.active == "local"

        @pytest.mark.dbswap_target("production")
        def test_marker(dbswap_board):
            assert dbswap.get_active_target() == "production"

        def test_each_test_starts_fresh(dbswap_board):
            assert dbswap_board.generation == 0
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    assert not real_state.exists()


def test_switchboard_accepts_plain_urls(sqlite_url: Callable[[str], str], tmp_path: Path) -> None:
    board = Switchboard(
        {"local": sqlite_url("a"), "production": sqlite_url("b")}, runtime_dir=tmp_path
    )
    assert board.targets["production"].url.endswith("b.db")
    assert "production" in repr(board)
