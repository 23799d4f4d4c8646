"""Shared fixtures: real SQLite files, real PostgreSQL and MariaDB databases.

Every server database is created with a unique name for the test and dropped
afterwards, whatever the outcome.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import dbswap
from dbhelpers import MARIADB_ADMIN, PG_ADMIN

REDIS = "redis://127.0.0.1:6379/0"


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
def redis_url() -> Iterator[str]:
    """A unique key prefix on the machine's Redis, its keys deleted afterwards."""
    import redis

    try:
        redis.Redis.from_url(REDIS).ping()
    except redis.RedisError:
        pytest.skip("needs Redis on 127.0.0.1:6379")
    prefix = f"dbswap-test-{uuid.uuid4().hex[:8]}"
    yield f"{REDIS}?prefix={prefix}"
    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


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


@pytest.fixture(scope="session")
def django_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Django configured once for the whole run (it cannot be set up twice in a process)."""
    from djangohelpers import configured_django

    with configured_django(tmp_path_factory.mktemp("django")) as urls:
        yield urls
