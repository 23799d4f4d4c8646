"""``dbswap.flask``: Flask-SQLAlchemy follows the switch, the admin blueprint, ``flask dbswap``.

A small app (``make_app``) reads and writes table ``items`` through
``db.session``; ``local`` is a SQLite file and ``production`` a PostgreSQL
database, seeded with different rows.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from flask import Flask, abort, request, session
from flask.testing import FlaskClient
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.serving import make_server

import dbswap
from dbhelpers import labels, pg_connections, seed
from dbswap.flask import DBSwap, Forbidden, NotAuthenticated, Session

pytestmark = pytest.mark.postgres

ADMIN = {"Authorization": "Bearer flask-admin-token-1"}
USER = {"Authorization": "Bearer flask-user-token-2"}
SWITCH, STATUS, HISTORY, PAGE = (
    "/api/admin/database/switch",
    "/api/admin/database",
    "/api/admin/database/history",
    "/admin/configuration",
)
PASSWORD = "flask-login-pw-7"


def authorize() -> str:
    """Bearer tokens for scripts, the Flask session for browsers; never a switched database."""
    header = request.headers.get("Authorization")
    if header == ADMIN["Authorization"]:
        return "alice"
    if header == USER["Authorization"]:
        raise Forbidden("bob is not an administrator")
    if header is not None:
        abort(401, "unknown token")
    if session.get("user") is None:
        raise NotAuthenticated()
    return str(session["user"])


class Gate:
    """Lets a test hold a request in the middle of its view."""

    def __init__(self) -> None:
        self.reached, self.release = threading.Event(), threading.Event()


def make_app(board: dbswap.Switchboard, gate: Gate | None = None, **options: Any) -> Flask:
    db = SQLAlchemy(session_options={"class_": Session})

    class Item(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "items"
        id: Mapped[int] = mapped_column(primary_key=True)
        label: Mapped[str] = mapped_column(sa.String(100))

    def add(label: str) -> None:
        next_id = (db.session.scalar(sa.select(sa.func.max(Item.id))) or 0) + 1
        db.session.add(Item(id=next_id, label=label))
        db.session.commit()

    def read() -> list[str]:
        return list(db.session.scalars(sa.select(Item.label).order_by(Item.id)))

    app = Flask(__name__)
    app.config["SECRET_KEY"] = "flask-test-secret-key-0123456789"
    DBSwap(app, db=db, board=board, authorize=authorize, login_url="/login", **options)

    @app.get("/items")
    def items() -> dict[str, Any]:
        return {"target": db.session().dbswap_target, "labels": read()}

    @app.post("/items")
    def create() -> Any:
        try:
            add(request.get_json()["label"])
        except dbswap.ReadOnlyTarget as exc:
            db.session.rollback()
            return {"error": str(exc)}, 409
        return {"target": db.session().dbswap_target}, 201

    @app.post("/slow-add")
    def slow_add() -> dict[str, Any]:
        assert gate is not None
        seen = read()  # the request is now on its target
        gate.reached.set()
        assert gate.release.wait(10)
        add("written-in-flight")
        return {"target": db.session().dbswap_target, "seen": seen}

    @app.post("/login")
    def login() -> Any:
        if request.form.get("password") != PASSWORD:
            return "no", 401
        session["user"] = "admin"
        return "", 204

    @app.get("/engine")
    def engine() -> dict[str, Any]:
        with db.engine.connect() as conn:
            count = conn.execute(sa.text("SELECT count(*) FROM items")).scalar_one()
        return {"url": db.engine.url.database, "count": count}

    app.extensions["test_db"] = db
    return app


@pytest.fixture
def urls(sqlite_url: Callable[[str], str], pg_url: Callable[[str], str]) -> dict[str, str]:
    result = {"local": sqlite_url("local"), "production": pg_url("production")}
    seed(result["local"], ["local-1"])
    seed(result["production"], ["prod-1", "prod-2"])
    return result


@pytest.fixture
def board(urls: dict[str, str], tmp_path: Path) -> Iterator[dbswap.Switchboard]:
    board = dbswap.Switchboard(urls, runtime_dir=tmp_path / "rt")
    yield board
    board.dispose()


@pytest.fixture
def client(board: dbswap.Switchboard) -> FlaskClient:
    return make_app(board).test_client()


def snapshot(board: dbswap.Switchboard) -> tuple[dbswap.State, bytes | None]:
    path = Path(board.runtime_dir) / "db-target.json"
    return board.state, path.read_bytes() if path.exists() else None


@contextmanager
def live_server(app: Flask) -> Iterator[str]:
    """``app`` under werkzeug's threaded server on a free loopback port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_switch_through_the_admin_api_changes_what_the_views_return(
    client: FlaskClient, board: dbswap.Switchboard
) -> None:
    """No restart: the next request reads production; switching back restores local."""
    assert client.get("/items").get_json() == {"target": "local", "labels": ["local-1"]}
    response = client.post(SWITCH, json={"useProduction": True}, headers=ADMIN)
    assert response.status_code == 200, response.text
    body = response.get_json()
    assert (body["target"], body["previous"], body["generation"]) == ("production", "local", 1)
    assert body["hotSwap"] is True and body["requiresRestart"] is False
    assert client.get("/items").get_json() == {
        "target": "production",
        "labels": ["prod-1", "prod-2"],
    }
    status = client.get(STATUS, headers=ADMIN).get_json()
    assert status["target"] == "production" and status["switchedBy"] == "alice"
    back = client.post(SWITCH, json={"target": "local"}, headers=ADMIN).get_json()
    assert back["target"] == "local" and back["generation"] == 2
    assert client.get("/items").get_json()["labels"] == ["local-1"]
    history = client.get(f"{HISTORY}?limit=2", headers=ADMIN).get_json()
    assert [e["to"] for e in history["entries"]] == ["local", "production"]


def test_a_request_in_flight_across_a_switch_writes_to_its_own_target(
    board: dbswap.Switchboard, urls: dict[str, str]
) -> None:
    """A real server: a request reads local, a switch commits, its write still lands in local."""
    gate = Gate()
    with live_server(make_app(board, gate)) as base, httpx.Client(base_url=base) as http:
        result: dict[str, Any] = {}
        worker = threading.Thread(
            target=lambda: result.update(http.post("/slow-add", timeout=15).json())
        )
        worker.start()
        assert gate.reached.wait(10)
        switched = http.post(SWITCH, json={"target": "production"}, headers=ADMIN, timeout=15)
        assert switched.status_code == 200, switched.text
        assert http.get("/items").json()["target"] == "production"  # new requests follow
        gate.release.set()
        worker.join(15)
    assert result == {"target": "local", "seen": ["local-1"]}
    assert labels(urls["local"]) == ["local-1", "written-in-flight"]
    assert labels(urls["production"]) == ["prod-1", "prod-2"]


def test_db_engine_follows_the_switch_and_never_connects_to_an_inactive_target(
    pg_url: Callable[[str], str], tmp_path: Path
) -> None:
    """Flask-SQLAlchemy's own default engine is never used: working on production opens
    no connection to local, even through db.engine."""
    urls = {"local": pg_url("local"), "production": pg_url("production")}
    seed(urls["local"], ["l"])
    seed(urls["production"], ["p1", "p2"])
    board = dbswap.Switchboard(urls, runtime_dir=tmp_path / "rt")
    try:
        board.use("production", user="test")
        app = make_app(board)
        assert app.config["SQLALCHEMY_DATABASE_URI"] == urls["local"]  # what dbswap sets
        client = app.test_client()
        assert client.get("/engine").get_json()["count"] == 2
        assert client.get("/items").get_json()["labels"] == ["p1", "p2"]
        local_db = sa.make_url(urls["local"]).database
        assert local_db is not None and pg_connections(local_db) == 0
        with app.app_context():
            db: SQLAlchemy = app.extensions["test_db"]
            assert db.engine.url.database == sa.make_url(urls["production"]).database
    finally:
        board.dispose()


def test_read_only_switch_makes_the_database_refuse_the_apps_writes(
    client: FlaskClient, board: dbswap.Switchboard, urls: dict[str, str]
) -> None:
    response = client.post(SWITCH, json={"target": "production", "readOnly": True}, headers=ADMIN)
    assert response.status_code == 200 and response.get_json()["readOnly"] is True
    refused = client.post("/items", json={"label": "sneaky"})
    assert refused.status_code == 409
    assert "read-only" in refused.get_json()["error"]
    assert labels(urls["production"]) == ["prod-1", "prod-2"]
    assert client.get("/items").get_json()["labels"] == ["prod-1", "prod-2"]  # reads work
    client.post(SWITCH, json={"target": "production", "readOnly": False}, headers=ADMIN)
    assert client.post("/items", json={"label": "allowed"}).status_code == 201
    assert labels(urls["production"]) == ["prod-1", "prod-2", "allowed"]


@pytest.mark.parametrize(
    ("headers", "body", "content_type", "status", "phrase"),
    [
        ({}, b'{"target": "production"}', "application/json", 401, "log in"),
        (
            {"Authorization": "Bearer nope"},
            b'{"target": "production"}',
            "application/json",
            401,
            "unknown token",
        ),
        (USER, b'{"target": "production"}', "application/json", 403, "not an administrator"),
        (ADMIN, b"{not json", "application/json", 400, "not valid JSON"),
        (ADMIN, b"[1]", "application/json", 422, "JSON object"),
        (ADMIN, b'{"target": 3}', "application/json", 422, "must be a string"),
        (ADMIN, b'{"target": "production", "x": 1}', "application/json", 422, "unexpected"),
        (ADMIN, b"target=production", "application/x-www-form-urlencoded", 415, "JSON"),
        (ADMIN, b'{"target": "' + b"p" * 20000 + b'"}', "application/json", 413, "larger"),
        (ADMIN, b'{"target": "staging"}', "application/json", 404, "known targets"),
    ],
)
def test_refused_switches_change_nothing(
    client: FlaskClient,
    board: dbswap.Switchboard,
    headers: dict[str, str],
    body: bytes,
    content_type: str,
    status: int,
    phrase: str,
) -> None:
    before = snapshot(board)
    response = client.post(SWITCH, data=body, headers={"Content-Type": content_type} | headers)
    assert response.status_code == status, response.text
    payload = response.get_json()
    assert payload["success"] is False and phrase in payload["message"]
    assert response.headers["Cache-Control"] == "no-store"
    if status == 401:
        assert "WWW-Authenticate" in response.headers
    assert snapshot(board) == before
    assert client.get("/items").get_json()["target"] == "local"


def test_the_production_lock_refuses_every_switch(urls: dict[str, str], tmp_path: Path) -> None:
    board = dbswap.Switchboard(urls, runtime_dir=tmp_path / "rt", production_lock=True)
    try:
        client = make_app(board).test_client()
        assert client.get("/items").get_json()["target"] == "production"
        response = client.post(SWITCH, json={"target": "local"}, headers=ADMIN)
        assert response.status_code == 403
        assert response.get_json()["error"] == "locked"
        assert client.get("/items").get_json()["target"] == "production"
        assert not (tmp_path / "rt" / "db-target.json").exists()
    finally:
        board.dispose()


@pytest.fixture
def browser(board: dbswap.Switchboard) -> FlaskClient:
    client = make_app(board).test_client()
    assert client.post("/login", data={"password": PASSWORD}).status_code == 204
    return client


def _token(html: str) -> str:
    match = re.search(r'<meta name="dbswap-csrf" content="([0-9a-f]{64})">', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def test_the_page_is_the_shared_template_and_its_token_switches(
    browser: FlaskClient, board: dbswap.Switchboard
) -> None:
    page = browser.get(PAGE)
    assert page.status_code == 200
    html = page.text
    assert 'id="active-badge" data-target="local"' in html
    assert 'data-switch-url="/api/admin/database/switch"' in html
    assert "Signed in as admin" in html
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert (
        "HttpOnly" in page.headers["Set-Cookie"] and "SameSite=Strict" in page.headers["Set-Cookie"]
    )
    response = browser.post(
        SWITCH,
        json={"target": "production"},
        headers={"X-CSRF-Token": _token(html), "Origin": "http://localhost"},
    )
    assert response.status_code == 200, response.text
    assert board.state.switched_by == "admin"


@pytest.mark.parametrize(
    ("case", "phrase"),
    [
        ("no token", "missing X-CSRF-Token"),
        ("wrong token", "invalid X-CSRF-Token"),
        ("foreign origin", "cross-origin request refused"),
        ("cross-site fetch", "cross-site request refused"),
        ("no cookie", "dbswap_csrf cookie"),
    ],
)
def test_forged_browser_requests_are_refused_and_change_nothing(
    browser: FlaskClient, board: dbswap.Switchboard, case: str, phrase: str
) -> None:
    headers = {"X-CSRF-Token": _token(browser.get(PAGE).text)}
    if case == "no token":
        headers = {}
    elif case == "wrong token":
        headers["X-CSRF-Token"] = "0" * 64
    elif case == "foreign origin":
        headers["Origin"] = "http://evil.example"
    elif case == "cross-site fetch":
        headers["Sec-Fetch-Site"] = "cross-site"
    elif case == "no cookie":
        browser.delete_cookie("dbswap_csrf")
    before = snapshot(board)
    response = browser.post(SWITCH, json={"target": "production"}, headers=headers)
    assert response.status_code == 403, response.text
    assert phrase in response.get_json()["message"]
    assert snapshot(board) == before


def test_anonymous_visitors_are_sent_to_the_login_and_users_refused(
    board: dbswap.Switchboard,
) -> None:
    client = make_app(board).test_client()
    response = client.get(PAGE)
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?next=%2Fadmin%2Fconfiguration"
    refused = client.get(PAGE, headers=USER)
    assert refused.status_code == 403 and "not an administrator" in refused.text


def test_the_blueprint_can_be_mounted_under_a_prefix(board: dbswap.Switchboard) -> None:
    client = make_app(board, url_prefix="/ops").test_client()
    html = client.get("/ops" + PAGE, headers=ADMIN).text
    assert 'data-switch-url="/ops/api/admin/database/switch"' in html
    assert (
        client.post("/ops" + SWITCH, json={"useProduction": True}, headers=ADMIN).status_code == 200
    )
    assert board.active == "production"


def test_flask_dbswap_runs_the_cli_on_the_apps_board(board: dbswap.Switchboard) -> None:
    runner = make_app(board).test_cli_runner()
    used = runner.invoke(args=["dbswap", "use", "production", "--yes", "--user", "ops", "--json"])
    assert used.exit_code == 0, used.output
    assert json.loads(used.output)["target"] == "production"
    assert board.state.switched_by == "ops"
    status = runner.invoke(args=["dbswap", "status", "--json"])
    assert json.loads(status.output)["target"] == "production"
    unknown = runner.invoke(args=["dbswap", "use", "nowhere", "--yes"])
    assert unknown.exit_code == 1 and "unknown target 'nowhere'" in unknown.output
    assert runner.invoke(args=["dbswap", "check"]).exit_code == 0
    history = runner.invoke(args=["dbswap", "history", "-n", "1", "--json"])
    assert json.loads(history.output)[0]["outcome"] == "refused"


def test_a_db_session_without_dbswaps_class_is_refused_at_init(board: dbswap.Switchboard) -> None:
    app = Flask(__name__)
    with pytest.raises(dbswap.ConfigError, match="session_options"):
        DBSwap(app, db=SQLAlchemy(), board=board)


def test_a_database_uri_that_is_not_a_target_is_refused(
    board: dbswap.Switchboard, sqlite_url: Callable[[str], str]
) -> None:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = sqlite_url("elsewhere")
    db = SQLAlchemy(session_options={"class_": Session})
    with pytest.raises(dbswap.ConfigError, match="not a dbswap target"):
        DBSwap(app, db=db, board=board)
