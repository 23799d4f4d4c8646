"""Plain helpers for tests: seeding and reading databases without dbswap."""

from __future__ import annotations

import os

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

PG_ADMIN = os.environ.get("DBSWAP_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MARIADB_ADMIN = os.environ.get("DBSWAP_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/mysql")

ITEMS = sa.table("items", sa.column("id", sa.Integer), sa.column("label", sa.String))


class Base(DeclarativeBase):
    pass


class Item(Base):
    """A row of the ``items`` table that ``seed`` creates."""

    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(100))


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


def tables(url: str) -> set[str]:
    """The table names of the database at ``url`` (read with a plain engine)."""
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def pg_connections(database: str) -> int:
    """Connections open on the PostgreSQL server to ``database`` (from pg_stat_activity)."""
    engine = sa.create_engine(PG_ADMIN)
    try:
        with engine.connect() as conn:
            query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db")
            return int(conn.execute(query, {"db": database}).scalar_one())
    finally:
        engine.dispose()
