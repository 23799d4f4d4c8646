"""Targets come from the environment and .env files; dangerous configurations are refused."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dbswap import ConfigError, Switchboard, Target


def test_every_database_url_name_is_a_target_with_its_settings(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL_LOCAL": "sqlite:///local.db",
        "DATABASE_URL_PRODUCTION": "postgresql://u:pw@db.example.com/app",
        "DATABASE_URL_READ_REPLICA": "postgresql://u:pw@replica.example.com/app",
        "BLOB_READ_WRITE_TOKEN_PRODUCTION": "prod-token",
        "BLOB_READ_WRITE_TOKEN_LOCAL": "local-token",
        "CACHE_SIZE_READ_REPLICA": "5",
        "UNRELATED": "x",
    }
    board = Switchboard.from_env(env, cwd=tmp_path)
    assert list(board.targets) == ["local", "production", "read_replica"]
    assert board.setting("BLOB_READ_WRITE_TOKEN", "production") == "prod-token"
    assert board.setting("blob_read_write_token", "local") == "local-token"
    assert board.targets["read_replica"].settings == {"CACHE_SIZE": "5"}
    assert board.targets["production"].dialect == "postgresql"
    # a bare postgresql:// gets the psycopg driver that dbswap[postgres] installs
    assert board.url_for("production").startswith("postgresql+psycopg://")


def test_relative_sqlite_paths_are_resolved_against_the_working_directory(tmp_path: Path) -> None:
    board = Switchboard.from_env({"DATABASE_URL_LOCAL": "sqlite:///data/local.db"}, cwd=tmp_path)
    assert board.url_for("local") == f"sqlite:///{tmp_path / 'data' / 'local.db'}"


def test_dotenv_then_dotenv_local_then_environment(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "DATABASE_URL_LOCAL=sqlite:///from-env.db\n"
        "DATABASE_URL_PRODUCTION=sqlite:///prod-env.db\n"
        "DATABASE_URL_STAGING=sqlite:///staging-env.db\n"
    )
    (tmp_path / ".env.local").write_text(
        "DATABASE_URL_LOCAL=sqlite:///from-env-local.db\n"
        "DATABASE_URL_PRODUCTION=sqlite:///prod-env-local.db\n"
    )
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}
    board = Switchboard.from_env({"DATABASE_URL_PRODUCTION": "sqlite:///real.db"}, cwd=tmp_path)
    assert board.url_for("staging").endswith("staging-env.db")
    assert board.url_for("local").endswith("from-env-local.db")
    assert board.url_for("production").endswith("real.db")
    # the files are read, never written
    assert {p.name: p.read_text() for p in tmp_path.iterdir() if p.is_file()} == before


def test_plain_database_url_is_ignored_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = {"DATABASE_URL": "sqlite:///x.db", "DATABASE_URL_LOCAL": "sqlite:///local.db"}
    with caplog.at_level(logging.WARNING, logger="dbswap"):
        board = Switchboard.from_env(env, cwd=tmp_path)
    assert list(board.targets) == ["local"]
    warnings = [r for r in caplog.records if "DATABASE_URL" in r.getMessage()]
    assert len(warnings) == 1
    assert "DATABASE_URL_LOCAL" in warnings[0].getMessage()


def test_no_targets_is_a_config_error_that_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL_LOCAL"):
        Switchboard.from_env({}, cwd=tmp_path)


def test_default_target_must_exist(tmp_path: Path) -> None:
    env = {"DATABASE_URL_DEV": "sqlite:///dev.db", "DATABASE_URL_PRODUCTION": "sqlite:///p.db"}
    with pytest.raises(ConfigError, match=r"DBSWAP_DEFAULT_TARGET.*dev, production"):
        Switchboard.from_env(env, cwd=tmp_path)
    board = Switchboard.from_env(env | {"DBSWAP_DEFAULT_TARGET": "DEV"}, cwd=tmp_path)
    assert board.active == "dev"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:pw@db.example.com/app",
        "mysql://u:pw@10.1.2.3/app",
        "postgresql://u:pw@[2001:db8::1]/app",
    ],
)
def test_remote_local_is_refused_unless_allowed(tmp_path: Path, url: str) -> None:
    env = {"DATABASE_URL_LOCAL": url}
    with pytest.raises(ConfigError, match="DBSWAP_ALLOW_REMOTE_LOCAL") as info:
        Switchboard.from_env(env, cwd=tmp_path)
    assert "pw" not in str(info.value).replace("DBSWAP", "")
    board = Switchboard.from_env(env | {"DBSWAP_ALLOW_REMOTE_LOCAL": "1"}, cwd=tmp_path)
    assert board.active == "local"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///local.db",
        "postgresql://u@localhost/app",
        "postgresql://u@127.0.0.2:5432/app",
        "postgresql://u@[::1]/app",
        "postgresql:///app?host=/var/run/postgresql",
    ],
)
def test_loopback_local_is_accepted(tmp_path: Path, url: str) -> None:
    assert Switchboard.from_env({"DATABASE_URL_LOCAL": url}, cwd=tmp_path).active == "local"


def test_two_targets_with_the_same_url_are_refused(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL_LOCAL": "postgresql://u:a@127.0.0.1/app",
        "DATABASE_URL_PRODUCTION": "postgresql://u:b@127.0.0.1/app",
    }
    with pytest.raises(ConfigError, match="same URL"):
        Switchboard.from_env(env, cwd=tmp_path)


def test_bad_url_and_bad_name_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a database URL"):
        Switchboard.from_env({"DATABASE_URL_LOCAL": "::nonsense::"}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="invalid target name"):
        Target("Bad Name", "sqlite://")


def test_unknown_state_backend_is_a_config_error(tmp_path: Path) -> None:
    env = {"DATABASE_URL_LOCAL": "sqlite:///l.db", "DBSWAP_STATE": "etcd://x"}
    with pytest.raises(ConfigError, match="DBSWAP_STATE"):
        Switchboard.from_env(env, cwd=tmp_path)


def test_runtime_dir_comes_from_the_environment(tmp_path: Path) -> None:
    env = {"DATABASE_URL_LOCAL": "sqlite:///l.db", "DBSWAP_RUNTIME_DIR": "state"}
    assert Switchboard.from_env(env, cwd=tmp_path).runtime_dir == tmp_path / "state"
    board = Switchboard.from_env({"DATABASE_URL_LOCAL": "sqlite:///l.db"}, cwd=tmp_path)
    assert board.runtime_dir == tmp_path / ".runtime"
    assert not board.runtime_dir.exists()  # created on demand, not at load
