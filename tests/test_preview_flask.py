"""Personal previews in Flask: ``DBSwap(authorize=...)`` pins a previewing admin's requests.

``local`` is a SQLite file, ``production`` a PostgreSQL database, each with a
table ``tagged`` whose rows say which client wrote them. alice and carol are
admins (bearer tokens, or a password log-in in ``flask.session``), bob is not.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from flask import Flask, request, session
from flask.testing import FlaskClient
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

import dbswap
from dbswap._preview import COOKIE_NAME, Preview, Previews
from dbswap.flask import DBSwap, Forbidden, NotAuthenticated, Session, current_preview

pytestmark = pytest.mark.postgres

PREVIEW, STATUS, PAGE = "/api/admin/database/preview", "/api/admin/database", "/admin/configuration"
ALICE = {"Authorization": "Bearer alice-flask-t0ken"}
CAROL = {"Authorization": "Bearer carol-flask-t0ken"}
TOKENS = {ALICE["Authorization"]: "alice", CAROL["Authorization"]: "carol"}
PASSWORD = "flask-preview-pw-3"


def authorize() -> str:
    header = request.headers.get("Authorization")
    if header is not None:
        if header in TOKENS:
            return TOKENS[header]
        raise Forbidden("not an administrator")
    if session.get("user") is None:
        raise NotAuthenticated()
    return str(session["user"])


def make_app(board: dbswap.Switchboard) -> Flask:
    db = SQLAlchemy(session_options={"class_": Session})

    class Tagged(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "tagged"
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
        client: Mapped[str] = mapped_column(sa.String(20))
        n: Mapped[int] = mapped_column()

    app = Flask(__name__)
    app.config["SECRET_KEY"] = "flask-preview-secret-0123456789"
    DBSwap(app, db=db, board=board, authorize=authorize)

    @app.get("/tagged")
    def read() -> dict[str, Any]:
        count = db.session.scalar(
            sa.select(sa.func.count(Tagged.id)).where(Tagged.client == request.args["client"])
        )
        preview = current_preview()
        return {
            "target": db.session().dbswap_target,
            "count": count,
            "preview": preview.target if preview else None,
            "user": session.get("user"),
        }

    @app.post("/tagged")
    def write() -> Any:
        body = request.get_json()
        try:
            db.session.add(Tagged(client=body["client"], n=body["n"]))
            db.session.commit()
        except dbswap.ReadOnlyTarget as exc:
            db.session.rollback()
            return {"error": str(exc)}, 409
        return {"target": db.session().dbswap_target}, 201

    @app.get("/engine")
    def engine() -> dict[str, Any]:
        return {"database": db.engine.url.database}

    @app.post("/login")
    def login() -> Any:
        if request.form.get("password") != PASSWORD:
            return "no", 401
        session["user"] = request.form["user"]
        return "", 204

    return app


@pytest.fixture
def urls(sqlite_url: Callable[[str], str], pg_url: Callable[[str], str]) -> dict[str, str]:
    result = {"local": sqlite_url("local"), "production": pg_url("production")}
    for url in result.values():
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE TABLE tagged (id INTEGER PRIMARY KEY "
                    + (
                        "AUTOINCREMENT"
                        if url.startswith("sqlite")
                        else "GENERATED ALWAYS AS IDENTITY"
                    )
                    + ", client VARCHAR(20) NOT NULL, n INTEGER NOT NULL)"
                )
            )
        engine.dispose()
    return result


@pytest.fixture
def board(urls: dict[str, str], tmp_path: Path) -> Iterator[dbswap.Switchboard]:
    board = dbswap.Switchboard(urls, runtime_dir=tmp_path / "rt")
    yield board
    board.dispose()


@pytest.fixture
def app(board: dbswap.Switchboard) -> Flask:
    return make_app(board)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def snapshot(board: dbswap.Switchboard) -> tuple[dbswap.State, bytes | None]:
    path = Path(board.runtime_dir) / "db-target.json"
    return board.state, path.read_bytes() if path.exists() else None


def rows(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.execute(sa.text("SELECT client, count(*) FROM tagged GROUP BY client"))
            return {client: count for client, count in found}
    finally:
        engine.dispose()


def start(client: FlaskClient, headers: dict[str, str], **body: Any) -> TestResponse:
    response = client.post(PREVIEW, json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response


def cleared(response: TestResponse) -> bool:
    return any(
        value.startswith(f"{COOKIE_NAME}=;") and "Max-Age=0" in value
        for value in response.headers.getlist("Set-Cookie")
    )


def target_of(client: FlaskClient, headers: dict[str, str] | None = None) -> str:
    response = client.get("/tagged?client=x", headers=headers or {})
    target: str = response.get_json()["target"]
    return target


@contextmanager
def live_server(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_preview_pins_only_its_admins_requests_and_switches_nothing(
    app: Flask, client: FlaskClient, board: dbswap.Switchboard, urls: dict[str, str]
) -> None:
    before = snapshot(board)
    body = start(client, ALICE, target="production").get_json()
    assert (body["target"], body["readOnly"], body["activeTarget"]) == ("production", True, "local")
    assert target_of(client, ALICE) == "production"
    assert client.get("/tagged?client=x", headers=ALICE).get_json()["preview"] == "production"
    production_db = sa.make_url(urls["production"]).database
    assert client.get("/engine", headers=ALICE).get_json()["database"] == production_db
    assert client.get(STATUS, headers=ALICE).get_json()["target"] == "local"
    assert target_of(app.test_client()) == "local"  # anybody else
    assert target_of(app.test_client(), CAROL) == "local"  # another admin, without a preview
    assert snapshot(board) == before and board.active == "local"

    stopped = client.delete(PREVIEW, headers=ALICE)
    assert stopped.get_json()["stopped"] is True and cleared(stopped)
    assert target_of(client, ALICE) == "local"
    assert snapshot(board) == before
    assert [(e["outcome"], e["user"], e["to"], e["generation"]) for e in board.history(None)] == [
        ("preview-ended", "alice", "production", None),
        ("preview", "alice", "production", None),
    ]


def test_production_previews_refuse_writes_unless_asked_otherwise(
    client: FlaskClient, urls: dict[str, str]
) -> None:
    start(client, ALICE, target="production")
    refused = client.post("/tagged", json={"client": "alice", "n": 1}, headers=ALICE)
    assert refused.status_code == 409 and "read-only" in refused.get_json()["error"]
    start(client, ALICE, target="production", readOnly=False)
    written = client.post("/tagged", json={"client": "alice", "n": 2}, headers=ALICE)
    assert written.status_code == 201 and written.get_json()["target"] == "production"
    assert rows(urls["production"]) == {"alice": 1} and rows(urls["local"]) == {}


def test_two_clients_under_load_each_land_on_their_own_target(
    app: Flask, client: FlaskClient, board: dbswap.Switchboard, urls: dict[str, str]
) -> None:
    """A previewing admin and an ordinary client, 100 requests each at once: 0 wrong rows."""
    before = snapshot(board)
    cookie = start(client, ALICE, target="production", readOnly=False)
    value = client.get_cookie(COOKIE_NAME)
    assert value is not None and cookie.status_code == 200
    clients = {
        "admin": (ALICE, {COOKIE_NAME: value.value}, "production"),
        "other": ({}, {}, "local"),
    }
    wrong: list[tuple[str, int, object]] = []
    barrier = threading.Barrier(len(clients))
    with live_server(app) as base:

        def run(name: str) -> None:
            headers, cookies, expected = clients[name]
            with httpx.Client(base_url=base, headers=headers, cookies=cookies, timeout=30) as http:
                barrier.wait()
                for n in range(100):
                    if n % 2:
                        seen = http.get("/tagged", params={"client": name}).json()["target"]
                    else:
                        seen = http.post("/tagged", json={"client": name, "n": n}).json()["target"]
                    if seen != expected:
                        wrong.append((name, n, seen))

        threads = [threading.Thread(target=run, args=(name,)) for name in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(thread.is_alive() for thread in threads)
    assert wrong == []
    assert rows(urls["production"]) == {"admin": 50}
    assert rows(urls["local"]) == {"other": 50}
    assert snapshot(board) == before and board.active == "local"


FORGED: dict[str, Callable[[Previews, str], str]] = {
    "tampered signature": lambda p, real: real[:-2] + ("AA" if not real.endswith("AA") else "BB"),
    "expired": lambda p, real: p.sign(Preview("alice", "production", True, time.time() - 1)),
    "another admin's": lambda p, real: p.sign(
        Preview("carol", "production", True, time.time() + 600)
    ),
    "unknown target": lambda p, real: p.sign(Preview("alice", "staging", True, time.time() + 600)),
    "garbage": lambda p, real: "garbage",
}


@pytest.mark.parametrize("kind", list(FORGED))
def test_a_forged_expired_or_foreign_cookie_is_ignored_and_cleared(
    app: Flask, client: FlaskClient, board: dbswap.Switchboard, kind: str
) -> None:
    start(client, ALICE, target="production")
    real = client.get_cookie(COOKIE_NAME)
    assert real is not None
    before = snapshot(board), board.history(None)
    client.set_cookie(COOKIE_NAME, FORGED[kind](app.extensions["dbswap.preview"], real.value))
    response = client.get("/tagged?client=x", headers=ALICE)
    assert response.get_json()["target"] == "local" and cleared(response)
    assert client.get_cookie(COOKIE_NAME) is None
    assert (snapshot(board), board.history(None)) == before


def test_a_logged_in_admin_previews_from_the_page_and_stays_logged_in(
    app: Flask, board: dbswap.Switchboard
) -> None:
    """A preview of production does not drop a login made on local: the app's pages see
    her as anonymous on production, dbswap's own routes still know her (so the preview
    holds on every request), and her login is back when it ends. Starting takes the
    page's token."""
    browser = app.test_client()
    assert browser.post("/login", data={"password": PASSWORD, "user": "alice"}).status_code == 204
    no_token = browser.post(PREVIEW, json={"target": "production"})
    assert no_token.status_code == 403 and no_token.get_json()["error"] == "csrf"
    page = browser.get(PAGE).get_data(as_text=True)
    assert 'data-preview-url="/api/admin/database/preview"' in page
    found = re.search(r'<meta name="dbswap-csrf" content="([^"]+)">', page)
    assert found is not None
    started = browser.post(
        PREVIEW, json={"target": "production"}, headers={"X-CSRF-Token": found.group(1)}
    )
    assert started.status_code == 200, started.text
    for _ in range(3):
        seen = browser.get("/tagged?client=x").get_json()
        assert (seen["target"], seen["user"]) == ("production", None)  # not local's login
        assert browser.get(PREVIEW).get_json()["preview"]["user"] == "alice"
    stopped = browser.post(PREVIEW, json={"stop": True}, headers={"Origin": "http://localhost"})
    assert stopped.status_code == 200 and stopped.get_json()["stopped"] is True
    seen = browser.get("/tagged?client=x").get_json()
    assert (seen["target"], seen["user"]) == ("local", "alice")
    assert board.generation == 0
