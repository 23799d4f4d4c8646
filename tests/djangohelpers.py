"""Django is configured once per test process: the project in ``tests/django_project``.

``local`` (the ``default`` alias) is a SQLite file, ``production`` a PostgreSQL
database, ``staging`` a SQLite file that lacks migrations. ``tests/conftest.py``
turns :func:`configured_django` into the session fixture ``django_urls``, shared
by every module that drives the project.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dbhelpers import PG_ADMIN

PROJECT = Path(__file__).parent / "django_project"


def create_pg_database() -> str:
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"dbswap_django_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return sa.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            name = sa.make_url(url).database
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def configured_django(base: Path) -> Iterator[dict[str, str]]:
    """Three databases, migrated (staging only partly), two users of ``default``."""
    import dbswap.django

    urls = {
        "local": f"sqlite:///{base / 'local.db'}",
        "production": create_pg_database(),
        "staging": f"sqlite:///{base / 'staging.db'}",
    }
    env = {f"DATABASE_URL_{name.upper()}": url for name, url in urls.items()}
    env["DBSWAP_RUNTIME_DIR"] = str(base / "runtime")
    saved = {key: os.environ.get(key) for key in [*env, "DJANGO_SETTINGS_MODULE"]}
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "djproject.settings"
    sys.path.insert(0, str(PROJECT))
    try:
        import django
        from django.core.management import call_command

        django.setup()
        from django.contrib.auth.models import User
        from django.db import connections

        call_command("migrate", database="default", verbosity=0)
        call_command("migrate", database="production", verbosity=0)
        call_command("migrate", "contenttypes", database="staging", verbosity=0)
        User.objects.db_manager("default").create_user("alice", password="pw", is_staff=True)
        User.objects.db_manager("default").create_user("bob", password="pw")
        connections.close_all()
        dbswap.django.set_board(dbswap.django.get_board())  # built from these variables...
        _restore(saved)  # ...which must not leak into the other tests of the session
        yield urls
    finally:
        from django.db import connections

        connections.close_all()
        dbswap.django.set_board(None)
        drop_pg_database(urls["production"])
        _restore(saved)


def _restore(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if key == "DJANGO_SETTINGS_MODULE":
            continue  # Django is configured for the whole process
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


ROWS = {"local": ["local-1"], "production": ["prod-1", "prod-2"]}  # each test starts with these


def reset_rows(url: str, rows: list[str]) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM items"))
            for label in rows:
                conn.execute(sa.text("INSERT INTO items (label) VALUES (:l)"), {"l": label})
    finally:
        engine.dispose()


@contextmanager
def django_board(urls: dict[str, str], runtime_dir: Path) -> Iterator[Any]:
    """A board on ``urls`` (rows reset to ``ROWS``), installed as the project's board."""
    from django.db import connections

    import dbswap
    from dbswap.django import MigrationGuard, set_board

    for name, rows in ROWS.items():
        reset_rows(urls[name], rows)
    board = dbswap.Switchboard(urls, runtime_dir=runtime_dir)
    board.schema_guard = MigrationGuard(board.default_target)
    set_board(board)
    try:
        yield board
    finally:
        set_board(None)
        connections.close_all()
        board.dispose()
