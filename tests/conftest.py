"""Shared fixtures: real SQLite files, real PostgreSQL and MariaDB databases.

Every server database is created with a unique name for the test and dropped
afterwards, whatever the outcome.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import dbswap

PG_ADMIN = os.environ.get("DBSWAP_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MARIADB_ADMIN = os.environ.get("DBSWAP_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/mysql")

ITEMS = sa.table("items", sa.column("id", sa.Integer), sa.column("label", sa.String))


def seed(url: str, labels: list[str]) -> None:
    """Create table ``items`` in the database at ``url`` with one row per label."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE items (id INTEGER PRIMARY KEY, label VARCHAR(100))"))
            for i, label in enumerate(labels, start=1):
                conn.execute(ITEMS.insert().values(id=i, label=label))
    finally:
        engine.dispose()


def labels(url: str) -> list[str]:
    """The labels stored at ``url``, read with a plain engine (not through dbswap)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [row[0] for row in conn.execute(sa.text("SELECT label FROM items ORDER BY id"))]
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def _isolated_default_board() -> Iterator[None]:
    dbswap.reset_default_board()
    yield
    dbswap.reset_default_board()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Callable[[str], str]:
    """Factory: a new, empty SQLite file named after ``name``; returns its URL."""

    def make(name: str) -> str:
        path = tmp_path / f"{name}.db"
        sqlite3.connect(path).close()
        return f"sqlite:///{path}"

    return make


@pytest.fixture
def pg_url() -> Iterator[Callable[[str], str]]:
    """Factory: a new PostgreSQL database; returns its URL; dropped after the test."""
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def make(name: str) -> str:
        db = f"dbswap_{name}_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
        created.append(db)
        return sa.make_url(PG_ADMIN).set(database=db).render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for db in created:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def mariadb_url() -> Iterator[Callable[[str], str]]:
    """Factory: a new MariaDB database; returns its URL; dropped after the test."""
    admin = sa.create_engine(MARIADB_ADMIN, isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def make(name: str) -> str:
        db = f"dbswap_{name}_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE `{db}`"))
        created.append(db)
        return sa.make_url(MARIADB_ADMIN).set(database=db).render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for db in created:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{db}`"))
    admin.dispose()


def pg_connections(database: str) -> int:
    """Connections open on the PostgreSQL server to ``database`` (from pg_stat_activity)."""
    engine = sa.create_engine(PG_ADMIN)
    try:
        with engine.connect() as conn:
            query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db")
            return int(conn.execute(query, {"db": database}).scalar_one())
    finally:
        engine.dispose()
