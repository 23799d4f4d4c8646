"""``dbswap.flask``: a login belongs to the target it was made on.

The issue's app: Flask-SQLAlchemy, ``flask.session["user_id"]`` set at log-in,
a ``before_request`` (registered before dbswap, as blueprints often are) that
loads ``g.user``, and posts written as ``g.user``. ``local`` (SQLite) and
``production`` (PostgreSQL) both have a user 3, and they are different people.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, g, redirect, request, session
from flask.testing import FlaskClient
from flask_sqlalchemy import SQLAlchemy

import dbswap
from dbswap.flask import DBSwap, NotAuthenticated, Session

pytestmark = pytest.mark.postgres

ADMIN = {"Authorization": "Bearer identity-admin-token"}
SWITCH, STATUS, PAGE = "/api/admin/database/switch", "/api/admin/database", "/admin/configuration"
PEOPLE = {"local": "ann (local)", "production": "mallory (production)"}  # both are user 3
PASSWORD = "ops-password-5"
METADATA = sa.MetaData()
USERS = sa.Table(
    "users",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100)),
)
POSTS = sa.Table(
    "posts",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("author", sa.String(100)),
    sa.Column("body", sa.String(100)),
)


def authorize() -> str:
    """Scripts by bearer token; people by the admin flag of a password log-in."""
    if request.headers.get("Authorization") == ADMIN["Authorization"]:
        return "script"
    if "admin" not in session:
        raise NotAuthenticated()
    return str(session["admin"])


def make_app(
    board: dbswap.Switchboard, config: dict[str, Any] | None = None, **options: Any
) -> Flask:
    db = SQLAlchemy(session_options={"class_": Session})

    class User(db.Model):  # type: ignore[name-defined,misc]
        __table__ = USERS

    class Post(db.Model):  # type: ignore[name-defined,misc]
        __table__ = POSTS

    app = Flask(__name__)
    app.config["SECRET_KEY"] = "identity-test-secret-key-0123456789"
    app.config.update(config or {})

    @app.before_request  # before DBSwap: dbswap's own hooks still run first
    def load_user() -> None:
        user_id = session.get("user_id")
        g.user = db.session.get(User, user_id) if user_id is not None else None

    DBSwap(app, db=db, board=board, authorize=authorize, **options)

    @app.post("/login")
    def login() -> Any:
        user = db.session.get(User, int(request.form["user_id"]))
        if user is None:
            return {"error": "no such user"}, 401
        session["user_id"] = user.id
        return {"name": user.name}

    @app.post("/admin-login")
    def admin_login() -> Any:
        if request.form.get("password") != PASSWORD:
            return "no", 401
        session["admin"] = "ops"  # who may switch: not a row of a switched database
        return "", 204

    @app.post("/posts")
    def create_post() -> Any:
        if g.user is None:
            return redirect("/login")
        db.session.add(Post(author=g.user.name, body=request.form["body"]))
        db.session.commit()
        return {"author": g.user.name, "target": db.session().dbswap_target}, 201

    app.extensions["test_db"] = db
    return app


def seed(url: str, name: str) -> None:
    engine = sa.create_engine(url)
    try:
        METADATA.create_all(engine)
        with engine.begin() as conn:
            conn.execute(USERS.insert().values(id=3, name=name))
    finally:
        engine.dispose()


def posts(url: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.select(POSTS.c.author, POSTS.c.body))]
    finally:
        engine.dispose()


@pytest.fixture
def urls(sqlite_url: Callable[[str], str], pg_url: Callable[[str], str]) -> dict[str, str]:
    result = {"local": sqlite_url("local"), "production": pg_url("production")}
    for name, url in result.items():
        seed(url, PEOPLE[name])
    return result


@pytest.fixture
def board(urls: dict[str, str], tmp_path: Path) -> Iterator[dbswap.Switchboard]:
    board = dbswap.Switchboard(urls, runtime_dir=tmp_path / "rt")
    yield board
    board.dispose()


def cookie_session(app: Flask, client: FlaskClient) -> dict[str, Any]:
    """What the browser's session cookie holds (decoded with the app's own serializer)."""
    cookie = client.get_cookie("session")
    if cookie is None:
        return {}
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    return dict(serializer.loads(cookie.value))


def switch(client: FlaskClient, target: str) -> None:
    response = client.post(SWITCH, json={"target": target}, headers=ADMIN)
    assert response.status_code == 200, response.text


def test_a_login_made_on_local_never_acts_as_productions_user_of_the_same_id(
    board: dbswap.Switchboard, urls: dict[str, str]
) -> None:
    """The issue: after a switch, local's user 3 must not post as production's user 3."""
    app = make_app(board)
    client = app.test_client()
    assert client.post("/login", data={"user_id": 3}).get_json() == {"name": "ann (local)"}
    assert cookie_session(app, client) == {"user_id": 3, "_dbswap_target": "local"}
    assert client.post("/posts", data={"body": "on local"}).status_code == 201

    switch(client, "production")
    refused = client.post("/posts", data={"body": "after the switch"})
    assert refused.status_code == 302 and refused.headers["Location"] == "/login"
    assert posts(urls["production"]) == []  # never written as mallory
    assert cookie_session(app, client) == {}  # logged out: the cookie is gone

    # A login made on production works on production...
    assert client.post("/login", data={"user_id": 3}).get_json()["name"] == PEOPLE["production"]
    made = client.post("/posts", data={"body": "as mallory"})
    assert made.get_json() == {"author": PEOPLE["production"], "target": "production"}
    assert posts(urls["production"]) == [(PEOPLE["production"], "as mallory")]
    # ... and not on local.
    switch(client, "local")
    assert client.post("/posts", data={"body": "back on local"}).status_code == 302
    assert posts(urls["local"]) == [(PEOPLE["local"], "on local")]


def test_shared_identity_keeps_the_session_across_targets(
    board: dbswap.Switchboard, urls: dict[str, str]
) -> None:
    """For apps whose users have the same ids everywhere: nothing is stamped or dropped."""
    app = make_app(board, shared_identity=True)
    client = app.test_client()
    client.post("/login", data={"user_id": 3})
    assert cookie_session(app, client) == {"user_id": 3}
    switch(client, "production")
    kept = client.post("/posts", data={"body": "same id, same person"})
    assert kept.status_code == 201 and kept.get_json()["target"] == "production"
    assert posts(urls["production"]) == [(PEOPLE["production"], "same id, same person")]


def _page_token(client: FlaskClient) -> str:
    page = client.get(PAGE)
    assert page.status_code == 200, page.text
    match = re.search(r'<meta name="dbswap-csrf" content="([0-9a-f]{64})">', page.text)
    assert match, "no CSRF token in the page"
    return match.group(1)


def test_bound_session_keys_drop_the_login_and_keep_the_admins_control_plane_flag(
    board: dbswap.Switchboard,
) -> None:
    """``bound_session_keys=("user_id",)``: the switch logs the user out, but the admin
    flag of the password log-in survives, so the admin switches back from the page."""
    app = make_app(board, bound_session_keys=("user_id",))
    client = app.test_client()
    assert client.post("/admin-login", data={"password": PASSWORD}).status_code == 204
    client.post("/login", data={"user_id": 3})
    headers = {"X-CSRF-Token": _page_token(client), "Origin": "http://localhost"}
    assert client.post(SWITCH, json={"target": "production"}, headers=headers).status_code == 200

    assert client.post("/posts", data={"body": "x"}).status_code == 302  # user_id dropped
    assert cookie_session(app, client) == {"admin": "ops"}
    assert client.get(STATUS).get_json()["target"] == "production"  # still the admin
    back = client.post(SWITCH, json={"target": "local"}, headers=headers)
    assert back.status_code == 200 and board.active == "local"


def test_a_whole_session_login_is_dropped_and_the_admin_switches_back_from_the_cli(
    board: dbswap.Switchboard,
) -> None:
    """By default the whole session is bound: the admin's own log-in is dropped by the
    switch too (the page asks to log in again), and ``flask dbswap use`` still works."""
    app = make_app(board)
    client = app.test_client()
    client.post("/admin-login", data={"password": PASSWORD})
    headers = {"X-CSRF-Token": _page_token(client), "Origin": "http://localhost"}
    assert client.post(SWITCH, json={"target": "production"}, headers=headers).status_code == 200
    assert client.get(STATUS).status_code == 401
    assert client.get(PAGE).status_code == 401  # no login_url: the page says to log in
    used = app.test_cli_runner().invoke(args=["dbswap", "use", "local", "--yes", "--user", "ops"])
    assert used.exit_code == 0, used.output
    assert board.active == "local"


def test_an_app_dbswap_steps_aside_for_is_not_stamped(
    board: dbswap.Switchboard, tmp_path: Path
) -> None:
    """A TESTING config with its own database: dbswap neither pins nor stamps."""
    config = {"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'own.db'}"}
    app = make_app(board, config)
    seed(config["SQLALCHEMY_DATABASE_URI"], "own user")
    client = app.test_client()
    assert client.post("/login", data={"user_id": 3}).get_json() == {"name": "own user"}
    assert cookie_session(app, client) == {"user_id": 3}
    board.use("production", user="test")
    assert client.post("/posts", data={"body": "still me"}).get_json()["author"] == "own user"
