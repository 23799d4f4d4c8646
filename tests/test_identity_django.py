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
        assert _admin_login(mallory, "mallory", "/whoami").status_code == 302
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


# -- one session cookie per target: a login is never lost to another target ----------------


@pytest.fixture(params=[None, COOKIE_SESSIONS], ids=["database-sessions", "signed-cookies"])
def session_engine(request: pytest.FixtureRequest) -> Iterator[None]:
    """Django's default database sessions, then sessions every target shares."""
    with _settings(**({"SESSION_ENGINE": request.param} if request.param else {})):
        yield


@pytest.mark.usefixtures("people", "session_engine")
def test_staff_who_switch_to_production_and_browse_can_always_switch_back(
    board: dbswap.Switchboard,
) -> None:
    """The issue: alice switches from the page, opens the admin and the catalog on
    production (where no session of hers exists), and comes back to the page. Her
    login on local must be neither deleted nor replaced: she switches back."""
    alice = _client()
    assert _admin_login(alice, "alice", PAGE).headers["Location"] == PAGE
    _switch(alice, "production")
    assert board.active == "production"
    assert alice.get("/admin/").status_code == 302  # production's admin: log in there
    assert alice.get("/items").json()["alias"] == "production"
    assert alice.get("/whoami").json() == {"user": None, "alias": "production"}
    page = alice.get(PAGE)
    assert page.status_code == 200 and "Signed in as alice" in page.text
    _switch(alice, "local")
    assert board.active == "local"
    assert alice.get("/whoami").json() == {"user": "alice", "alias": "default"}
    assert alice.get("/admin/").status_code == 200


@pytest.mark.usefixtures("people")
def test_a_login_on_each_target_is_kept_for_when_the_site_comes_back_to_it(
    board: dbswap.Switchboard, django_urls: dict[str, str]
) -> None:
    """One cookie per target: signing in on production (as somebody else) neither
    replaces the local login nor is seen on local; a CLI switch brings each back."""
    alice = _client()
    _admin_login(alice, "alice", "/admin/")
    board.use("production", user="ops")  # from a shell
    assert _admin_login(alice, "mallory", "/whoami").headers["Location"] == "/whoami"
    assert alice.get("/whoami").json() == {"user": "mallory", "alias": "production"}
    assert alice.get(PAGE).status_code == 200  # the page still takes her local login
    board.use("local", user="ops")
    assert alice.get("/whoami").json() == {"user": "alice", "alias": "default"}
    board.use("production", user="ops")
    assert alice.get("/whoami").json() == {"user": "mallory", "alias": "production"}
    local, production = (_count(django_urls[t], "django_session") for t in ("local", "production"))
    assert alice.post("/admin/logout/").status_code == 200  # signs out of production only
    assert _count(django_urls["production"], "django_session") == production - 1
    assert _count(django_urls["local"], "django_session") == local
    board.use("local", user="ops")
    assert alice.get("/whoami").json() == {"user": "alice", "alias": "default"}


@pytest.mark.usefixtures("people")
def test_a_visitor_signed_in_on_another_target_is_told_once_and_nothing_is_written(
    board: dbswap.Switchboard, django_urls: dict[str, str]
) -> None:
    """Database sessions: dana, signed in on local, visits while production is in use.
    She is anonymous there and told why, once, without a session row on production."""
    dana = _client()
    assert dana.login(username="dana", password="pw")  # while local, the control target
    board.use("production", user="test")
    sessions = _count(django_urls["production"], "django_session")
    assert dana.get("/whoami").json() == {"user": None, "alias": "production"}
    told = "signed in while the 'local' database was in use"
    assert told in unescape(dana.get("/admin/", follow=True).text)
    assert told not in unescape(dana.get("/admin/", follow=True).text)  # once
    assert told not in unescape(dana.get("/whoami").text + dana.get("/admin/", follow=True).text)
    assert _count(django_urls["production"], "django_session") == sessions
    board.use("local", user="test")
    assert dana.get("/whoami").json() == {"user": "dana", "alias": "default"}


# -- previews: a login is never taken to another target ----------------------------------

PREVIEW = "/api/admin/database/preview"
TWIN = 7001


@pytest.fixture
def twins(board: dbswap.Switchboard, django_urls: dict[str, str]) -> Iterator[None]:
    """ada, a superuser of local, and eve, staff on production, share user id 7001;
    each has a loan (a row of hers, found by her id) on her own target."""
    from django.contrib.auth.models import User
    from shop.models import Loan

    ada = User.objects.db_manager("default").create_superuser("ada", password="pw", id=TWIN)
    eve = User(username="eve", password=ada.password, id=TWIN, is_staff=True)
    eve.save(using="production")
    Loan.objects.using("default").create(borrower_id=TWIN, title="ada's book")
    Loan.objects.using("production").create(borrower_id=TWIN, title="eve's book")
    yield
    for alias in ("default", "production"):
        Loan.objects.using(alias).all().delete()
        User.objects.using(alias).filter(id=TWIN).delete()


def _preview(client: Any, **body: Any) -> Any:
    page = client.get(PAGE)
    assert page.status_code == 200, page.content
    match = re.search(r'<meta name="dbswap-csrf" content="([A-Za-z0-9]{64})">', page.text)
    assert match, "no CSRF token in the page"
    started = client.post(
        PREVIEW,
        json.dumps(body),
        content_type="application/json",
        headers={"X-CSRF-Token": match.group(1)},
    )
    assert started.status_code == 200, started.content
    return started


def _loans(url: str) -> list[tuple[int, str]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT borrower_id, title FROM loans ORDER BY id"))
            return [(int(who), str(title)) for who, title in rows]
    finally:
        engine.dispose()


def _sent_to_login(response: Any) -> bool:
    return response.status_code == 302 and response.headers["Location"].startswith("/admin/login/")


@pytest.mark.usefixtures("twins")
def test_in_a_preview_the_admins_login_never_reads_the_previewed_targets_rows(
    board: dbswap.Switchboard,
) -> None:
    """The issue's read-only preview: "my loans" were read by the local admin's id on
    production, somebody else's. The admin is anonymous to the app there; dbswap still
    knows her (on the control database), and her login is back when the preview ends."""
    ada = _client()
    assert _admin_login(ada, "ada", "/mybooks/").status_code == 302
    assert ada.get("/mybooks/").json() == {"user": "ada", "titles": ["ada's book"]}
    _preview(ada, target="production")
    assert _sent_to_login(ada.get("/mybooks/"))
    assert ada.get("/whoami").json() == {"user": None, "alias": "production"}
    assert ada.get(PREVIEW).json()["preview"]["target"] == "production"
    assert "Signed in as ada" in ada.get(PAGE).text
    assert ada.delete(PREVIEW).json()["stopped"] is True
    assert ada.get("/mybooks/").json() == {"user": "ada", "titles": ["ada's book"]}


@pytest.mark.usefixtures("twins", "session_engine")
def test_a_writable_preview_writes_nothing_as_the_admins_id_and_a_login_in_it_ends_with_it(
    board: dbswap.Switchboard, django_urls: dict[str, str]
) -> None:
    """The issue's writable preview: Django's admin recorded production's user 7001 (eve)
    as the author of ada's edits. Now nothing is written as ada's id there; signing in
    on production, in the preview, makes the writes eve's, and that login ends with it."""
    production = django_urls["production"]
    ada = _client()
    assert _admin_login(ada, "ada", "/admin/").status_code == 302
    _preview(ada, target="production", readOnly=False, forSeconds=60)
    item, logged = _first_id(production), _count(production, "django_admin_log")
    assert _sent_to_login(ada.post(f"/admin/shop/item/{item}/change/", {"label": "by ada"}))
    assert _sent_to_login(ada.post("/borrow", {"title": "as ada"}))
    assert labels(production) == ROWS["production"]
    assert _count(production, "django_admin_log") == logged
    assert _loans(production) == [(TWIN, "eve's book")]

    signed_in = _admin_login(ada, "eve", "/mybooks/")
    cookie = signed_in.cookies["sessionid.preview.production"]
    assert cookie.value and 0 < int(cookie["max-age"]) <= 60  # no longer than the preview
    assert ada.get("/mybooks/").json() == {"user": "eve", "titles": ["eve's book"]}
    assert ada.post("/borrow", {"title": "eve's second"}).status_code == 201
    assert "Signed in as ada" in ada.get(PAGE).text  # dbswap's page: still ada, on local
    stopped = ada.delete(PREVIEW)
    assert stopped.cookies["sessionid.preview.production"]["max-age"] == 0
    assert ada.get("/mybooks/").json() == {"user": "ada", "titles": ["ada's book"]}
    _preview(ada, target="production")
    assert ada.get("/whoami").json() == {"user": None, "alias": "production"}
    assert _loans(production) == [(TWIN, "eve's book"), (TWIN, "eve's second")]
    assert _loans(django_urls["local"]) == [(TWIN, "ada's book")]


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
