"""An app's own Session class, settings object and engine options: the README's recipes.

SQLModel (sync and async) is the real package, as FastAPI's full-stack template
uses it; the databases are real SQLite files and a real PostgreSQL server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool, QueuePool
from sqlmodel import Field, SQLModel, select
from sqlmodel import Session as SQLModelSession
from sqlmodel.ext.asyncio.session import AsyncSession as SQLModelAsyncSession

from dbswap import ConfigError, Switchboard


class Hero(SQLModel, table=True):
    __tablename__ = "heroes"
    id: int | None = Field(default=None, primary_key=True)
    name: str


def _seed_heroes(url: str, names: list[str]) -> None:
    engine = sa.create_engine(url)
    SQLModel.metadata.create_all(engine)
    with SQLModelSession(engine) as s:
        s.add_all([Hero(name=n) for n in names])
        s.commit()
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def hero_urls(
    request: pytest.FixtureRequest,
    sqlite_url: Callable[[str], str],
    pg_url: Callable[[str], str],
) -> dict[str, str]:
    make = sqlite_url if request.param == "sqlite" else pg_url
    urls = {"local": make("local"), "production": make("production")}
    _seed_heroes(urls["local"], ["Local Larry"])
    _seed_heroes(urls["production"], ["Prod Petra"])
    return urls


@pytest.fixture
def board(hero_urls: dict[str, str], tmp_path: Path) -> Iterator[Switchboard]:
    board = Switchboard(hero_urls, runtime_dir=tmp_path / "rt")
    yield board
    board.close()


def test_sessionmaker_takes_sqlmodels_session_class(board: Switchboard) -> None:
    make = board.sessionmaker(class_=SQLModelSession)
    with make() as s:
        assert isinstance(s, SQLModelSession)
        assert s.dbswap_target == "local"
        assert [h.name for h in s.exec(select(Hero))] == ["Local Larry"]
    board.use("production")
    with make() as s:
        assert [h.name for h in s.exec(select(Hero))] == ["Prod Petra"]
        s.add(Hero(name="written on production"))
        s.commit()
    board.use("local")
    with make() as s:  # the write went to production only
        assert [h.name for h in s.exec(select(Hero))] == ["Local Larry"]


def test_a_sqlmodel_session_open_across_a_switch_keeps_its_target(board: Switchboard) -> None:
    make = board.sessionmaker(class_=SQLModelSession)
    with make() as s:
        s.exec(select(Hero)).all()
        board.use("production")
        assert [h.name for h in s.exec(select(Hero))] == ["Local Larry"]
        assert s.dbswap_target == "local"


def test_async_sessionmaker_takes_sqlmodels_async_session(board: Switchboard) -> None:
    async def names() -> tuple[str, list[str]]:
        make = board.async_sessionmaker(class_=SQLModelAsyncSession, expire_on_commit=False)
        async with make() as s:
            assert isinstance(s, SQLModelAsyncSession)
            assert isinstance(s.sync_session, SQLModelSession)  # exec() needs SQLModel's
            rows = (await s.exec(select(Hero))).all()
            return s.sync_session.dbswap_target, [h.name for h in rows]

    async def scenario() -> list[tuple[str, list[str]]]:
        try:
            first = await names()
            await asyncio.to_thread(board.use, "production")
            return [first, await names()]
        finally:
            await board.adispose()

    assert asyncio.run(scenario()) == [("local", ["Local Larry"]), ("production", ["Prod Petra"])]


def test_an_apps_own_session_subclass_keeps_its_init_and_methods(board: Switchboard) -> None:
    class AppSession(Session):
        def __init__(self, *args: object, **kw: object) -> None:
            super().__init__(*args, **kw)  # type: ignore[arg-type]
            self.info["request_id"] = "r-1"

        def hero_names(self) -> list[str]:
            return list(self.scalars(sa.select(Hero.name)))  # type: ignore[arg-type]

    make = board.sessionmaker(class_=AppSession)
    board.use("production")
    with make() as s:
        assert isinstance(s, AppSession)
        assert s.info["request_id"] == "r-1"  # its __init__ ran
        assert s.hero_names() == ["Prod Petra"]
    again = board.sessionmaker(class_=AppSession)  # sessionmaker subclasses what it is given
    assert again.class_.__mro__[1] is make.class_.__mro__[1]  # the combined class, made once


def test_a_class_that_is_not_a_session_is_a_clear_type_error(board: Switchboard) -> None:
    with pytest.raises(TypeError, match=r"subclass of sqlalchemy\.orm\.Session"):
        board.sessionmaker(class_=dict)  # type: ignore[arg-type]


class AppSettings(BaseSettings):
    """How a pydantic-settings app names its databases (not DATABASE_URL_<NAME>)."""

    model_config = SettingsConfigDict(env_prefix="APP_")
    primary_db: str
    reporting_db: str


def test_a_board_from_a_pydantic_settings_object(
    sqlite_url: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_PRIMARY_DB", sqlite_url("primary"))
    monkeypatch.setenv("APP_REPORTING_DB", sqlite_url("reporting"))
    settings = AppSettings()  # type: ignore[call-arg]
    board = Switchboard(
        targets={"local": settings.primary_db, "reporting": settings.reporting_db},
        runtime_dir=tmp_path / "rt",
    )
    try:
        assert board.use("reporting").target == "reporting"
        with board.sessionmaker()() as s:
            assert s.dbswap_target == "reporting"
            assert s.get_bind().url.database == str(tmp_path / "reporting.db")
    finally:
        board.close()


def test_engine_options_and_per_target_options_reach_create_engine(
    hero_urls: dict[str, str], tmp_path: Path
) -> None:
    board = Switchboard(
        hero_urls,
        runtime_dir=tmp_path / "rt",
        engine_options={"pool_pre_ping": True, "echo": False},
        target_options={"production": {"poolclass": NullPool, "echo": True}},
    )
    try:
        local, production = board.engine_for("local"), board.engine_for("production")
        assert local.pool._pre_ping and not local.echo
        assert isinstance(production.pool, NullPool) and production.echo
        assert production.pool._pre_ping  # the shared options still apply
        if local.dialect.name == "postgresql":
            assert isinstance(local.pool, QueuePool)
    finally:
        board.close()


def test_options_for_an_unknown_target_are_refused(hero_urls: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="target_options names 'staging'"):
        Switchboard(hero_urls, target_options={"staging": {"echo": True}})
