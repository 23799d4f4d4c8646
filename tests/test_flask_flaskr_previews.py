"""The flaskr-shaped app of ``test_flask_flaskr.py`` against two targets, driven over HTTP.

``local`` is flaskr's SQLite file in the instance folder, ``production`` a PostgreSQL
database. Ids mean different people per target: alice is local's user 3, while
production's user 3 is mallory (alice is production's user 4, with another password).
alice is an admin (``ADMINS``): dbswap's ``authorize`` reads the flag her log-in set.

- A preview never shows the admin as the previewed target's user of the same id: the
  app sees her as anonymous there, her own login is kept for when the preview ends,
  and a login made during the preview belongs to it and ends with it.
- A write that a read-only preview or a read-only switch refuses is a 409 (JSON for
  JSON clients, a page for browsers), never a 500, and nothing is written.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

import test_flask_flaskr as flaskr
from dbswap.flask import DBSwap

pytestmark = pytest.mark.postgres

PREVIEW, SWITCH, PAGE = (
    "/api/admin/database/preview",
    "/api/admin/database/switch",
    "/admin/configuration",
)
PEOPLE = {  # (id, username, password) per target: user 3 is somebody else on each
    "local": [(1, "ann", "ann-pw"), (3, "alice", "alice-local-pw")],
    "production": [(3, "mallory", "mallory-pw"), (4, "alice", "alice-prod-pw")],
}
JSON = {"Accept": "application/json"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture
def urls(
    tmp_path: Path, pg_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The developer's ``.env``: flaskr's default file is ``local``; production is PostgreSQL."""
    for key in ("DATABASE_URL", "SECRET_KEY", "DBSWAP_DEFAULT_TARGET", "DBSWAP_READONLY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    production = pg_url("production")
    monkeypatch.setenv("DATABASE_URL_LOCAL", "sqlite:///flaskr.sqlite")
    monkeypatch.setenv("DATABASE_URL_PRODUCTION", production)
    monkeypatch.setenv("DBSWAP_RUNTIME_DIR", str(tmp_path / "runtime"))
    local = f"sqlite:///{tmp_path / 'instance' / 'flaskr.sqlite'}"
    return {"local": local, "production": production}


def make_app(**options: Any) -> Flask:
    """flaskr's factory, as deployed by a developer whose admin is alice."""
    if options:  # another DBSwap of the same app: the module's swap with these options
        swap = DBSwap(authorize=flaskr.authorize, **options)
        original, flaskr.swap = flaskr.swap, swap
        try:
            app = flaskr.create_app({"ADMINS": ("alice",)})
        finally:
            flaskr.swap = original
    else:
        app = flaskr.create_app({"ADMINS": ("alice",)})
    board = app.extensions["dbswap"].board
    with app.app_context():
        for name, people in PEOPLE.items():
            with board.pinned(name):
                flaskr.init_db()
                for id, username, password in people:
                    hashed = generate_password_hash(password, method="pbkdf2:sha256:1000")
                    flaskr.db.session.add(
                        flaskr.User(id=id, username=username, password_hash=hashed)
                    )
                flaskr.db.session.commit()
                flaskr.db.session.remove()  # the next target gets a session of its own
    return app


@pytest.fixture
def app(urls: dict[str, str]) -> Iterator[Flask]:
    app = make_app()
    yield app
    app.extensions["dbswap"].board.dispose()


def posts(url: str) -> list[tuple[int, str, str]]:
    """(author id, author name, title) of every post, read without dbswap."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT p.author_id, u.username, p.title FROM posts p "
                    "JOIN users u ON u.id = p.author_id ORDER BY p.id"
                )
            )
            return [(row[0], row[1], row[2]) for row in rows]
    finally:
        engine.dispose()


def users(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT username FROM users ORDER BY id")).scalars())
    finally:
        engine.dispose()


def log_in(client: FlaskClient, username: str, password: str) -> None:
    response = client.post("/auth/login", data={"username": username, "password": password})
    assert response.status_code == 302 and response.headers["Location"] == "/", response.text


def shown_as(client: FlaskClient) -> str | None:
    """Who the app's pages say is logged in (None: anonymous)."""
    text = client.get("/").text
    found = re.search(r"<nav><span>([^<]+)</span>", text)
    if found is None:
        assert "Log In" in text
        return None
    return found.group(1)


def page_token(client: FlaskClient) -> str:
    page = client.get(PAGE)
    assert page.status_code == 200, page.text
    found = re.search(r'<meta name="dbswap-csrf" content="([^"]+)">', page.text)
    assert found is not None
    return found.group(1)


def start_preview(client: FlaskClient, **body: Any) -> TestResponse:
    response = client.post(PREVIEW, json=body, headers={"X-CSRF-Token": page_token(client)})
    assert response.status_code == 200, response.text
    return response


def stop_preview(client: FlaskClient) -> None:
    stopped = client.delete(PREVIEW, headers={"Origin": "http://localhost"})
    assert stopped.status_code == 200 and stopped.get_json()["stopped"] is True, stopped.text


def cookie_session(app: Flask, client: FlaskClient) -> dict[str, Any]:
    cookie = client.get_cookie("session")
    if cookie is None:
        return {}
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    return dict(serializer.loads(cookie.value))


# -- logins never cross targets in a preview ------------------------------------------------


def test_a_preview_never_shows_the_admin_as_the_previewed_targets_user_of_the_same_id(
    app: Flask, urls: dict[str, str]
) -> None:
    """The issue: alice (local's user 3) previews production, writable. Its pages must not
    show her as mallory (production's user 3), nor write her posts as mallory."""
    client = app.test_client()
    log_in(client, "alice", "alice-local-pw")
    assert shown_as(client) == "alice"
    start_preview(client, target="production", readOnly=False)

    assert shown_as(client) is None  # anonymous on production, never mallory
    for n in range(5):
        refused = client.post("/create", data={"title": f"post {n}", "body": ""})
        assert refused.status_code == 302 and refused.headers["Location"] == "/auth/login"
    assert posts(urls["production"]) == []
    # dbswap's own routes still know her (her own session): the preview holds on every request.
    state = client.get(PREVIEW).get_json()
    assert state["preview"]["target"] == "production" and state["preview"]["user"] == "alice"

    # She signs in on production, as production's alice: that login is the preview's.
    log_in(client, "alice", "alice-prod-pw")
    assert shown_as(client) == "alice"
    kept = cookie_session(app, client)  # her own login, and the preview's beside it
    assert {k: kept[k] for k in ("user_id", "admin", "_dbswap_target")} == {
        "user_id": 3,
        "admin": "alice",
        "_dbswap_target": "local",
    }
    assert kept["_dbswap_preview"]["session"] == {
        "user_id": 4,
        "admin": "alice",
        "_dbswap_target": "production",
    }
    assert client.post("/create", data={"title": "from the preview", "body": ""}).status_code == 302
    assert posts(urls["production"]) == [(4, "alice", "from the preview")]

    stop_preview(client)
    assert shown_as(client) == "alice"  # her own login, kept for when the preview ended
    assert client.post("/create", data={"title": "back home", "body": ""}).status_code == 302
    assert posts(urls["local"]) == [(3, "alice", "back home")]
    assert cookie_session(app, client) == {
        "user_id": 3,
        "admin": "alice",
        "_dbswap_target": "local",
    }

    # A new preview starts anonymous: the last one's login ended with it.
    start_preview(client, target="production", readOnly=False)
    assert shown_as(client) is None
    assert posts(urls["production"]) == [(4, "alice", "from the preview")]


def test_a_login_made_during_a_preview_ends_when_the_preview_expires(app: Flask) -> None:
    client = app.test_client()
    log_in(client, "alice", "alice-local-pw")
    start_preview(client, target="production", forSeconds=1)
    cookie = client.get_cookie("dbswap_preview")
    assert cookie is not None
    log_in(client, "alice", "alice-prod-pw")
    assert shown_as(client) == "alice"
    time.sleep(1.2)
    client.set_cookie("dbswap_preview", cookie.value)  # a browser that kept it anyway
    assert shown_as(client) == "alice"
    assert client.get("/create").status_code == 200  # local's alice, signed in
    assert cookie_session(app, client) == {
        "user_id": 3,
        "admin": "alice",
        "_dbswap_target": "local",
    }


def test_bound_session_keys_keep_their_meaning_in_a_preview(urls: dict[str, str]) -> None:
    """``bound_session_keys=("user_id",)``: in a preview the app sees the unbound keys (the
    admin flag), never a ``user_id`` of another target; the preview's own ``user_id`` ends
    with it."""
    app = make_app(bound_session_keys=("user_id",))
    try:
        client = app.test_client()
        log_in(client, "alice", "alice-local-pw")
        start_preview(client, target="production", readOnly=False)
        assert shown_as(client) is None
        assert client.post("/create", data={"title": "x", "body": ""}).status_code == 302
        assert posts(urls["production"]) == []
        log_in(client, "alice", "alice-prod-pw")
        client.post("/create", data={"title": "as production's alice", "body": ""})
        assert posts(urls["production"]) == [(4, "alice", "as production's alice")]
        stop_preview(client)
        assert shown_as(client) == "alice"
        client.post("/create", data={"title": "as local's alice", "body": ""})
        assert posts(urls["local"]) == [(3, "alice", "as local's alice")]
    finally:
        app.extensions["dbswap"].board.dispose()


def test_shared_identity_keeps_the_login_in_a_preview(urls: dict[str, str]) -> None:
    """``shared_identity=True`` says ids mean the same people on every target: nothing is
    bound, so the login holds in a preview too (here user 3 is, by that choice, mallory)."""
    app = make_app(shared_identity=True)
    try:
        client = app.test_client()
        log_in(client, "alice", "alice-local-pw")
        start_preview(client, target="production")
        assert shown_as(client) == "mallory"
        assert cookie_session(app, client) == {"user_id": 3, "admin": "alice"}
    finally:
        app.extensions["dbswap"].board.dispose()


# -- a refused write is a 409 ------------------------------------------------------------


def test_a_write_refused_by_a_read_only_preview_is_a_409_and_writes_nothing(
    app: Flask, urls: dict[str, str]
) -> None:
    client = app.test_client()
    log_in(client, "alice", "alice-local-pw")
    assert start_preview(client, target="production").get_json()["readOnly"] is True
    log_in(client, "alice", "alice-prod-pw")  # a log-in writes no row

    refused = client.post("/create", data={"title": "t", "body": ""}, headers=JSON)
    assert refused.status_code == 409, refused.text
    body = refused.get_json()
    assert (body["error"], body["target"], body["preview"]) == ("read_only", "production", True)
    assert '"readOnly": false' in body["message"] and "dbswap use" not in body["message"]
    assert refused.headers["Cache-Control"] == "no-store"

    page = client.post("/create", data={"title": "t", "body": ""}, headers=BROWSER)
    assert page.status_code == 409 and page.mimetype == "text/html"
    assert "your preview of &#39;production&#39; is read-only" in page.text
    registered = client.post(
        "/auth/register", data={"username": "eve", "password": "pw"}, headers=BROWSER
    )
    assert registered.status_code == 409
    assert posts(urls["production"]) == [] and users(urls["production"]) == ["mallory", "alice"]


def test_a_write_refused_by_a_read_only_switch_is_a_409_and_writes_nothing(
    app: Flask, urls: dict[str, str]
) -> None:
    admin = app.test_client()
    log_in(admin, "alice", "alice-local-pw")
    switched = admin.post(
        SWITCH,
        json={"target": "production", "readOnly": True},
        headers={"X-CSRF-Token": page_token(admin)},
    )
    assert switched.status_code == 200, switched.text
    client = app.test_client()
    log_in(client, "mallory", "mallory-pw")

    refused = client.post("/create", data={"title": "t", "body": ""}, headers=JSON)
    assert refused.status_code == 409, refused.text
    body = refused.get_json()
    assert (body["error"], body["target"], body["preview"]) == ("read_only", "production", False)
    assert "dbswap use production --writable" in body["message"]

    page = client.post("/create", data={"title": "t", "body": ""}, headers=BROWSER)
    assert page.status_code == 409 and page.mimetype == "text/html"
    assert "the &#39;production&#39; database is in read-only mode" in page.text
    assert posts(urls["production"]) == [] and posts(urls["local"]) == []
    assert users(urls["production"]) == ["mallory", "alice"]
