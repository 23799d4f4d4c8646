"""``dbswap.django``: a login belongs to the target it was made on, or to a fixed database.

The project in ``tests/django_project`` (configured once, ``django_urls``):
``local`` is the ``default`` alias (SQLite), ``production`` a PostgreSQL
database. dana (``default``) and mallory (``production``, staff) share one
user id: a login as dana must never act as mallory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import dbswap
import dbswap.django
from dbhelpers import labels
from djangohelpers import (
    PROJECT,
    ROWS,
    create_pg_database,
    django_board,
    drop_pg_database,
)

pytestmark = pytest.mark.postgres

SWITCH, PAGE = "/api/admin/database/switch", "/admin/configuration"
FIXED = ["auth", "sessions", "admin", "contenttypes"]
COOKIE_SESSIONS = "django.contrib.sessions.backends.signed_cookies"  # one store for all targets
SAME_ID = 1001


@pytest.fixture
def board(django_urls: dict[str, str], tmp_path: Path) -> Iterator[dbswap.Switchboard]:
    with django_board(django_urls, tmp_path / "rt") as board:
        yield board


@pytest.fixture
def people(board: dbswap.Switchboard) -> Iterator[None]:
    """dana on local and mallory on production, both user 1001 with one password hash (a
    fixture or a scrubbed dump sets one for everybody), so Django's session hash check
    cannot tell them apart; pat, staff on production only."""
    from django.contrib.auth.models import User

    dana = User.objects.db_manager("default").create_user("dana", password="pw", id=SAME_ID)
    mallory = User(username="mallory", password=dana.password, id=SAME_ID, is_staff=True)
    mallory.save(using="production")
    pat = User.objects.db_manager("production").create_user("pat", password="pw", is_staff=True)
    made = [dana, mallory, pat]
    yield
    for user in made:
        user.delete()


def _settings(**values: Any) -> Any:
    from django.test import override_settings

    return override_settings(**values)


def _client() -> Any:
    from django.test import Client

    return Client()


def _admin_login(client: Any, username: str, next_url: str) -> Any:
    """The real form of Django's admin, as a browser posts it."""
    return client.post(
        f"/admin/login/?next={next_url}",
        {"username": username, "password": "pw", "next": next_url},
    )


def _switch(client: Any, target: str) -> None:
    page = client.get(PAGE)
    assert page.status_code == 200, page.content
    match = re.search(r'<meta name="dbswap-csrf" content="([A-Za-z0-9]{64})">', page.text)
    assert match, "no CSRF token in the page"
    response = client.post(
        SWITCH,
        json.dumps({"target": target}),
        content_type="application/json",
        headers={"X-CSRF-Token": match.group(1)},
    )
    assert response.status_code == 200, response.content


# -- sessions bound to their target (the default) -------------------------------------


@pytest.mark.usefixtures("people")
def test_a_login_made_on_local_never_acts_as_productions_user_of_the_same_id(
    board: dbswap.Switchboard, django_urls: dict[str, str]
) -> None:
    """The issue, with a session store every target shares (signed cookies): after a
    switch dana's session is flushed (anonymous, and told why), never mallory's."""
    with _settings(SESSION_ENGINE=COOKIE_SESSIONS):
        dana = _client()
        assert dana.login(username="dana", password="pw")
        assert dana.get("/whoami").json() == {"user": "dana", "alias": "default"}
        board.use("production", user="test")

        assert dana.get("/whoami").json() == {"user": None, "alias": "production"}
        refused = dana.post("/notes", {"text": "after the switch"})
        assert refused.status_code == 302 and refused.headers["Location"].startswith("/admin/")
        assert labels(django_urls["production"]) == ROWS["production"]  # nothing as mallory
        told = dana.get("/admin/", follow=True).text  # the admin's log-in page says why
        assert "signed in while the 'local' database was in use" in unescape(told)

        # A login made on production works on production.
        mallory = _client()
        assert mallory.login(username="mallory", password="pw")
        assert mallory.get("/whoami").json() == {"user": "mallory", "alias": "production"}
        assert mallory.post("/notes", {"text": "mine"}).status_code == 201
        assert labels(django_urls["production"]) == [*ROWS["production"], "mallory: mine"]
        # dbswap's page looks users up on default, where 1001 is dana: it refuses, says
        # why, and leaves mallory signed in on production.
        page = mallory.get(PAGE)
        assert page.status_code == 401
        assert "you are signed in on 'production'" in unescape(page.text)
        assert mallory.get("/whoami").json()["user"] == "mallory"


@pytest.mark.usefixtures("people")
def test_shared_identity_keeps_the_login_across_targets(board: dbswap.Switchboard) -> None:
    """``DBSWAP_SHARED_IDENTITY = True``: for projects whose ids mean the same person."""
    with _settings(SESSION_ENGINE=COOKIE_SESSIONS, DBSWAP_SHARED_IDENTITY=True):
        client = _client()
        assert client.login(username="dana", password="pw")
        board.use("production", user="test")
        assert client.get("/whoami").json() == {"user": "mallory", "alias": "production"}


@pytest.mark.usefixtures("people")
def test_staff_who_log_in_after_a_switch_are_told_why_instead_of_looping(
    board: dbswap.Switchboard,
) -> None:
    """Database sessions: pat logs in on production, opens dbswap's page. It used to
    read her session on ``default``, find nothing, delete her cookie and send her
    back to the log-in form, forever. Now it says why, and her session survives."""
    board.use("production", user="test")
    pat = _client()
    logged_in = _admin_login(pat, "pat", PAGE)
    assert logged_in.status_code == 302 and logged_in.headers["Location"] == PAGE
    page = pat.get(PAGE)
    assert page.status_code == 401, page.headers.get("Location")
    assert "takes only logins made on 'local'" in unescape(page.text)
    assert "manage.py dbswap use local" in page.text
    assert pat.get("/admin/").status_code == 200  # still signed in on production
    assert pat.get("/whoami").json() == {"user": "pat", "alias": "production"}


# -- identity on a fixed control database --------------------------------------------------


@pytest.fixture
def root(board: dbswap.Switchboard) -> Iterator[None]:
    """A superuser of ``default`` only."""
    from django.contrib.auth.models import User

    user = User.objects.db_manager("default").create_superuser("root", password="pw")
    yield
    user.delete()


@pytest.mark.usefixtures("root")
def test_with_fixed_apps_a_login_holds_on_every_target(
    board: dbswap.Switchboard, django_urls: dict[str, str]
) -> None:
    """root exists only on ``default``: logged in there, root keeps the login after a
    switch, for the app, Django's admin (showing production's rows) and dbswap's page."""
    from dbswap.django import UnroutedQuery

    with _settings(DBSWAP_FIXED_APPS=FIXED):
        root = _client()
        assert _admin_login(root, "root", "/admin/").status_code == 302
        _switch(root, "production")

        assert root.get("/whoami").json() == {"user": "root", "alias": "production"}
        items = root.get("/admin/shop/item/")
        assert items.status_code == 200 and "prod-2" in items.text and "local-1" not in items.text
        assert root.post("/notes", {"text": "kept"}).status_code == 201
        logged = _count(django_urls["local"], "django_admin_log")
        item = _first_id(django_urls["production"])
        edited = root.post(f"/admin/shop/item/{item}/change/", {"label": "prod-1, edited"})
        assert edited.status_code == 302 and edited.headers["Location"] == "/admin/shop/item/"
        assert labels(django_urls["production"]) == ["prod-1, edited", "prod-2", "root: kept"]
        assert _count(django_urls["local"], "django_admin_log") == logged + 1  # on default
        key = root.cookies["sessionid"].value
        assert _count(django_urls["local"], "django_session", session_key=key) == 1
        assert _count(django_urls["production"], "django_session", session_key=key) == 0
        with pytest.raises(UnroutedQuery):  # app tables on default are still refused
            root.get("/raw-default")
        _switch(root, "local")
        assert board.active == "local"


def test_with_fixed_apps_staff_log_in_after_a_switch_and_reach_the_page(
    board: dbswap.Switchboard,
) -> None:
    """The log-in loop is gone: the form signs in on ``default``, where the page looks."""
    with _settings(DBSWAP_FIXED_APPS=FIXED):
        board.use("production", user="test")
        alice = _client()
        logged_in = _admin_login(alice, "alice", PAGE)
        assert logged_in.status_code == 302 and logged_in.headers["Location"] == PAGE
        page = alice.get(PAGE)
        assert page.status_code == 200 and "Signed in as alice" in page.text
        assert 'data-target="production"' in page.text


@pytest.mark.usefixtures("root")
def test_with_fixed_apps_rows_of_the_switched_database_may_point_at_users(
    board: dbswap.Switchboard,
) -> None:
    """What a ``ForeignKey(User, db_constraint=False)`` of a switched app needs."""
    from django.contrib.auth.models import User
    from django.db import router
    from shop.models import Item

    item = Item.objects.using("production").get(label="prod-1")
    root = User.objects.db_manager("default").get(username="root")
    assert router.allow_relation(item, root) is False  # Django's rule: one database
    with _settings(DBSWAP_FIXED_APPS=FIXED), dbswap.django.pinned("production"):
        assert router.allow_relation(item, root) is True
        assert router.db_for_read(User, instance=item) == "default"  # an item's author
        assert router.db_for_read(Item, instance=root) == "production"  # a user's items


def _first_id(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT min(id) FROM items")).scalar_one())
    finally:
        engine.dispose()


def _count(url: str, table: str, **where: str) -> int:
    engine = sa.create_engine(url)
    condition = " AND ".join(f"{column} = :{column}" for column in where) or "1 = 1"
    try:
        with engine.connect() as conn:
            query = sa.text(f"SELECT count(*) FROM {table} WHERE {condition}")
            return int(conn.execute(query, where).scalar_one())
    finally:
        engine.dispose()


def test_fixed_apps_are_migrated_on_default_only(
    tmp_path: Path, django_urls: dict[str, str]
) -> None:
    """`migrate --database=production` skips the fixed apps' tables; the switch still
    passes the migration guard (Django records those migrations as applied)."""
    fresh = {"local": django_urls["local"], "production": create_pg_database()}
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_URL")}
        env |= {f"DATABASE_URL_{n.upper()}": u for n, u in fresh.items()}
        env |= {"DBSWAP_RUNTIME_DIR": str(tmp_path / "rt")}
        env["DJANGO_SETTINGS_MODULE"] = "djproject.settings_fixed"
        done = subprocess.run(
            [sys.executable, str(PROJECT / "manage.py"), "migrate", "--database=production"],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        engine = sa.create_engine(fresh["production"])
        try:
            with engine.connect() as conn:
                tables = set(sa.inspect(conn).get_table_names())
        finally:
            engine.dispose()
        assert {"items", "django_migrations"} <= tables
        assert not tables & {"auth_user", "django_session", "django_admin_log"}
        board = dbswap.Switchboard(fresh, runtime_dir=tmp_path / "rt")
        board.schema_guard = dbswap.django.MigrationGuard(board.default_target)
        try:
            assert board.check("production")[0].schema_ok is True
        finally:
            board.dispose()
    finally:
        drop_pg_database(fresh["production"])


def test_manage_py_check_reports_fixed_apps_that_cannot_stand_alone(
    board: dbswap.Switchboard,
) -> None:
    from django.core.checks import run_checks

    with _settings(DBSWAP_FIXED_APPS=["admin", "nope"]):
        found = {(problem.id, problem.msg.split(" ")[0]) for problem in run_checks()}
    assert ("dbswap.E005", "DBSWAP_FIXED_APPS") in found
    assert ("dbswap.E006", "admin.LogEntry.user") in found  # auth is not fixed with it
    with _settings(DBSWAP_FIXED_APPS=FIXED):
        assert not [p for p in run_checks() if p.id.startswith("dbswap.")]
