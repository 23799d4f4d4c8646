"""The schema-drift guard: a target whose Alembic revision is not the code's head is refused."""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from click.testing import CliRunner

from dbswap import ConfigError, SchemaMismatch, Switchboard
from dbswap.cli import cli

REV1, REV2 = "aaaa00000001", "bbbb00000002"

ENV_PY = """
from alembic import context
from sqlalchemy import create_engine

engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
"""

REVISION = """
from alembic import op
import sqlalchemy as sa

revision = {rev!r}
down_revision = {down!r}


def upgrade():
    {body}


def downgrade():
    pass
"""


@pytest.fixture
def alembic_ini(tmp_path: Path) -> Path:
    """A temporary Alembic project with two revisions."""
    root = tmp_path / "migrations"
    (root / "versions").mkdir(parents=True)
    (root / "env.py").write_text(ENV_PY)
    (root / "script.py.mako").write_text("")
    bodies = {
        REV1: (None, "op.create_table('tracks', sa.Column('id', sa.Integer, primary_key=True))"),
        REV2: (REV1, "op.add_column('tracks', sa.Column('title', sa.String(100)))"),
    }
    for rev, (down, body) in bodies.items():
        text = REVISION.format(rev=rev, down=down, body=body)
        (root / "versions" / f"{rev}.py").write_text(textwrap.dedent(text))
    ini = tmp_path / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {root}\n")
    return ini


def upgrade(ini: Path, url: str, revision: str) -> None:
    config = Config(str(ini))
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, revision)


@pytest.fixture
def urls(sqlite_url: Callable[[str], str], alembic_ini: Path) -> dict[str, str]:
    result = {"local": sqlite_url("local"), "production": sqlite_url("production")}
    upgrade(alembic_ini, result["local"], "head")
    return result


def test_a_target_one_revision_behind_is_refused_until_upgraded(
    urls: dict[str, str], alembic_ini: Path, tmp_path: Path
) -> None:
    upgrade(alembic_ini, urls["production"], REV1)
    board = Switchboard(urls, runtime_dir=tmp_path / "rt", alembic_config=alembic_ini)
    with pytest.raises(SchemaMismatch) as info:
        board.use("production", user="alice")
    message = str(info.value)
    assert REV1 in message and REV2 in message
    assert "upgrade" in message and "ignore_schema=True" in message
    assert board.active == "local" and board.generation == 0
    entry = board.history(1)[0]
    assert entry["outcome"] == "refused" and REV1 in entry["reason"]
    upgrade(alembic_ini, urls["production"], "head")
    assert board.use("production").generation == 1
    board.dispose()


@pytest.mark.postgres
def test_an_asyncio_app_reads_the_revision_through_its_own_pool(
    pg_url: Callable[[str], str], alembic_ini: Path, tmp_path: Path
) -> None:
    """With an app loop and a server, use() checks on the loop (asyncio driver): the guard
    reads the same revisions there, refuses a target behind, and accepts it once upgraded."""
    urls = {"local": pg_url("local"), "production": pg_url("production")}
    upgrade(alembic_ini, urls["local"], "head")
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    upgrade(alembic_ini, urls["production"], REV1)
    board = Switchboard(urls, runtime_dir=tmp_path / "rt", alembic_config=alembic_ini)

    async def touch() -> None:
        async with board.async_sessionmaker()() as s:
            await s.execute(sa.text("SELECT 1"))

    def on_loop(coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, loop).result(10)

    try:
        on_loop(touch())
        with pytest.raises(SchemaMismatch) as info:
            board.use("production")
        assert REV1 in str(info.value) and REV2 in str(info.value)
        assert board.active == "local"
        assert ("production", False) not in board._engines._sync  # checked on the loop
        upgrade(alembic_ini, urls["production"], "head")
        assert board.use("production").changed
    finally:
        on_loop(board.adispose())
        board.dispose()
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        loop.close()


def test_a_target_without_alembic_version_is_refused(
    urls: dict[str, str], alembic_ini: Path, tmp_path: Path
) -> None:
    board = Switchboard(urls, runtime_dir=tmp_path / "rt", alembic_config=alembic_ini)
    with pytest.raises(SchemaMismatch, match="no alembic_version table"):
        board.use("production")
    assert board.active == "local"
    board.dispose()


def test_the_override_switches_and_is_audited(
    urls: dict[str, str], alembic_ini: Path, tmp_path: Path
) -> None:
    board = Switchboard(urls, runtime_dir=tmp_path / "rt", alembic_config=alembic_ini)
    result = board.use("production", ignore_schema=True, user="alice")
    assert result.changed and board.active == "production"
    assert board.history(1)[0]["schema_check"] == "overridden"
    board.dispose()


def test_check_shows_each_target_revision(
    urls: dict[str, str], alembic_ini: Path, tmp_path: Path
) -> None:
    upgrade(alembic_ini, urls["production"], REV1)
    board = Switchboard(urls, runtime_dir=tmp_path / "rt", alembic_config=alembic_ini)
    health = {h.target: h for h in board.check()}
    assert health["local"].revisions == (REV2,) and health["local"].schema_ok is True
    assert health["production"].revisions == (REV1,) and health["production"].schema_ok is False
    assert health["production"].expected_revisions == (REV2,)
    board.dispose()


def test_cli_check_and_ignore_schema(
    urls: dict[str, str], alembic_ini: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    upgrade(alembic_ini, urls["production"], REV1)
    env = {
        "DATABASE_URL_LOCAL": urls["local"],
        "DATABASE_URL_PRODUCTION": urls["production"],
        "DBSWAP_RUNTIME_DIR": str(tmp_path / "rt"),
        "DBSWAP_ALEMBIC_CONFIG": "alembic.ini",  # relative to the working directory
    }
    runner = CliRunner()
    checked = runner.invoke(cli, ["check"], env=env)
    assert checked.exit_code == 1
    assert f"schema {REV1} != code {REV2}" in checked.output
    rows = json.loads(runner.invoke(cli, ["targets", "--check", "--json"], env=env).output)
    assert {r["name"]: r["schema_ok"] for r in rows} == {"local": True, "production": False}
    refused = runner.invoke(cli, ["use", "production", "--yes"], env=env)
    assert refused.exit_code == 1 and REV1 in refused.output
    forced = runner.invoke(cli, ["use", "production", "--yes", "--ignore-schema"], env=env)
    assert forced.exit_code == 0, forced.output


def test_missing_or_broken_alembic_config_is_a_config_error(tmp_path: Path) -> None:
    env = {"DATABASE_URL_LOCAL": "sqlite:///l.db", "DBSWAP_ALEMBIC_CONFIG": "nope/alembic.ini"}
    with pytest.raises(ConfigError, match="does not exist"):
        Switchboard.from_env(env, cwd=tmp_path)
    broken = tmp_path / "broken.ini"
    broken.write_text("[alembic]\nscript_location = /nonexistent/migrations\n")
    with pytest.raises(ConfigError, match="cannot read the Alembic migrations"):
        Switchboard({"local": "sqlite:///l.db"}, runtime_dir=tmp_path, alembic_config=broken)


def test_no_config_means_no_check(urls: dict[str, str], tmp_path: Path) -> None:
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")
    assert board.use("production").changed  # production has no alembic_version: not checked
    assert board.check("production")[0].schema_ok is None
    board.dispose()
