"""The databases the benchmarks run on: SQLite files on tmpfs, unique PostgreSQL databases.

Only loopback servers are ever used. Every PostgreSQL database is created
with a unique name and dropped when the run ends, whatever happens.
"""

from __future__ import annotations

import ipaddress
import os
import sqlite3
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import NullPool

PG_ADMIN = os.environ.get(
    "DBSWAP_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SELECT_1 = sa.text("SELECT 1")
REDIS = os.environ.get("DBSWAP_BENCH_REDIS", "redis://127.0.0.1:6379/0")


class Base(DeclarativeBase):
    pass


class Item(Base):
    """The row every ``session.get(Item, 1)`` reads."""

    __tablename__ = "bench_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(50))


def seed(url: str) -> None:
    """Create the table and its one row with a throwaway engine (not dbswap's)."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        seed_engine(engine)
    finally:
        engine.dispose()


def seed_engine(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        if conn.scalar(sa.select(sa.func.count()).select_from(Item)) == 0:
            conn.execute(sa.insert(Item), [{"id": 1, "label": "one"}])


def fast_dir() -> Path:
    """A new directory on tmpfs (/dev/shm) when there is one, else in the temp dir."""
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="dbswap-bench-", dir=parent))


def sqlite_file(directory: Path, name: str) -> str:
    """A new SQLite file (the health check wants it to exist); returns its URL."""
    path = directory / f"{name}.db"
    sqlite3.connect(path).close()
    return f"sqlite:///{path}"


def fs_type(path: Path) -> str:
    """The filesystem type holding ``path`` (from /proc/mounts), for the notes."""
    best, kind = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return kind
    resolved = str(path.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3 and resolved.startswith(parts[1]) and len(parts[1]) > len(best):
            best, kind = parts[1], parts[2]
    return kind


class Postgres:
    """The local server: unique databases, dropped (WITH FORCE) by ``close()``."""

    def __init__(self, admin_url: str) -> None:
        self._admin = sa.create_engine(
            admin_url,
            isolation_level="AUTOCOMMIT",
            poolclass=NullPool,
            connect_args={"connect_timeout": 3},
        )
        self._created: list[str] = []

    @classmethod
    def open(cls, admin_url: str = PG_ADMIN) -> tuple[Postgres | None, str]:
        """The server, or None and why not (unreachable, or not on this machine)."""
        host = sa.make_url(admin_url).host or "localhost"
        if not _is_loopback(host):
            return None, f"DBSWAP_BENCH_PG points at {host}; benchmarks only talk to loopback"
        server = cls(admin_url)
        try:
            with server._admin.connect() as conn:
                conn.execute(SELECT_1)
        except Exception as exc:  # any driver or network error means "no PostgreSQL here"
            server.close()
            return None, f"PostgreSQL unreachable ({type(exc).__name__})"
        return server, ""

    def create(self, name: str) -> str:
        """A new empty database; returns its URL."""
        database = f"dbswap_bench_{name}_{uuid.uuid4().hex[:8]}"
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
        self._created.append(database)
        url = self._admin.url.set(database=database)
        return url.render_as_string(hide_password=False)

    def sessions(self, urls: Iterable[str]) -> int | None:
        """Connections opened so far to these databases (PostgreSQL 14+), or None.

        The server flushes these counters lazily (at a backend's exit, else
        about once a second while it works), so a difference is approximate.
        """
        names = [sa.make_url(url).database for url in urls]
        query = sa.text("SELECT sum(sessions) FROM pg_stat_database WHERE datname = ANY(:n)")
        try:
            with self._admin.connect() as conn:
                value = conn.scalar(query, {"n": names})
        except sa.exc.DBAPIError:
            return None
        return None if value is None else int(value)

    def close(self) -> None:
        try:
            if self._created:
                with self._admin.connect() as conn:
                    for database in self._created:
                        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            self._created.clear()
        finally:
            self._admin.dispose()


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


FLEET_SCHEMA = (
    "CREATE TABLE items (id INTEGER PRIMARY KEY, label VARCHAR(100))",
    "CREATE TABLE hits (rid VARCHAR(60), pinned VARCHAR(40), pid INTEGER)",
)


def prepare_fleet(url: str, label: str) -> None:
    """The tables ``tests/fleet_app.py`` uses; row 1 of ``items`` names the database."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for statement in FLEET_SCHEMA:
                conn.execute(sa.text(statement))
            conn.execute(sa.text("INSERT INTO items VALUES (1, :label)"), {"label": label})
    finally:
        engine.dispose()


def redis_missing(url: str = REDIS) -> str | None:
    """Why the Redis rows cannot run (not loopback, no client, no answer), or None."""
    host = urlsplit(url).hostname or "localhost"
    if not url.startswith("redis://") or not _is_loopback(host):
        return "DBSWAP_BENCH_REDIS must be a redis:// URL on loopback"
    try:
        import redis
    except ImportError:
        return "redis is not installed (the redis extra)"
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"Redis unreachable ({type(exc).__name__})"
    finally:
        client.close()
    return None


def redis_forget(url: str, prefix: str) -> None:
    """Delete the keys a RedisStateStore with ``prefix`` left behind."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.delete(key)
    finally:
        client.close()
