"""FastAPI with a Starlette cookie session: a preview never mixes the admin's login with
the previewed target's users.

The app is wired as docs/examples/sqlmodel_app.py shows (cookie logins stamped at
log-in, ``bound_to_target`` on the endpoints), plus ``PreviewMiddleware`` added
before ``SessionMiddleware`` as the previews guide says. Ids mean different
people per target: alice is local's user 3 and an admin (a flag her log-in sets,
which ``authorize`` reads); production's user 3 is mallory, and alice is
production's user 4.
"""

# No `from __future__ import annotations`: FastAPI must evaluate the endpoints'
# annotations, which name dependencies local to make_app().
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import pytest
import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException, Request
from sqlalchemy.orm import Session
from starlette.middleware.sessions import SessionMiddleware

import dbswap
from dbswap.fastapi import (
    NotAuthenticated,
    PreviewMiddleware,
    admin_router,
    bound_to_target,
    stamp_claims,
)
from webhelpers import TestClient

SECRET = "preview-sessions-secret-0123456789"
PEOPLE = {
    "local": [(3, "alice", "alice-local")],
    "production": [(3, "mallory", "mallory-prod"), (4, "alice", "alice-prod")],
}
ADMINS = {"alice"}
USERS = sa.table("users", sa.column("id"), sa.column("name"), sa.column("password"))
NOTES = sa.table("notes", sa.column("id"), sa.column("author"), sa.column("text"))
PREVIEW = "/api/admin/database/preview"


def authorize(request: Request) -> str:
    """The admin flag of a password log-in, in the cookie session: never a switched database."""
    admin = request.session.get("admin")
    if admin is None:
        raise NotAuthenticated()
    return str(admin)


def make_app(board: dbswap.Switchboard) -> FastAPI:
    SessionLocal = board.sessionmaker()

    def get_session() -> Iterator[Session]:
        with SessionLocal() as session:
            yield session

    def cookie_login(request: Request) -> Mapping[str, Any]:
        return request.session

    Db = Annotated[Session, Depends(get_session)]
    SignedIn = Annotated[
        Mapping[str, Any], Depends(bound_to_target(board, cookie_login, session=get_session))
    ]

    app = FastAPI()
    app.include_router(admin_router(board, authorize=authorize, csrf_secret=SECRET))
    app.add_middleware(PreviewMiddleware, board=board, authorize=authorize, csrf_secret=SECRET)
    app.add_middleware(SessionMiddleware, secret_key=SECRET)

    @app.post("/login")
    def login(name: str, password: str, request: Request, db: Db) -> dict[str, Any]:
        found = db.execute(
            sa.select(USERS.c.id).where(USERS.c.name == name, USERS.c.password == password)
        ).scalar()
        if found is None:
            raise HTTPException(401, "wrong name or password")
        request.session.clear()
        request.session.update(stamp_claims({"user_id": found}, db))
        if name in ADMINS:
            request.session["admin"] = name
        return {"user_id": found}

    @app.post("/plain-login")
    def plain_login(name: str, request: Request) -> dict[str, str]:  # no stamp: binds nothing
        request.session["admin"] = name
        return {"admin": name}

    @app.get("/whoami")
    def whoami(request: Request, db: Db) -> dict[str, Any]:
        return {"admin": request.session.get("admin"), "target": db.dbswap_target}

    @app.get("/me")
    def me(login: SignedIn, db: Db) -> dict[str, Any]:
        name = db.execute(sa.select(USERS.c.name).where(USERS.c.id == login["user_id"])).scalar()
        return {"id": login["user_id"], "name": name, "target": db.dbswap_target}

    @app.post("/notes", status_code=201)
    def write(text: str, login: SignedIn, db: Db) -> dict[str, str]:
        db.execute(NOTES.insert().values(author=login["user_id"], text=text))
        db.commit()
        return {"text": text}

    return app


@pytest.fixture
def board(tmp_path: Path) -> Iterator[dbswap.Switchboard]:
    urls = {name: f"sqlite:///{tmp_path / name}.db" for name in PEOPLE}
    for name, url in urls.items():
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(
                sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, password TEXT)")
            )
            conn.execute(
                sa.text("CREATE TABLE notes (id INTEGER PRIMARY KEY, author INTEGER, text TEXT)")
            )
            for id, name_, password in PEOPLE[name]:
                conn.execute(USERS.insert().values(id=id, name=name_, password=password))
        engine.dispose()
    board = dbswap.Switchboard(urls, runtime_dir=tmp_path / "rt")
    yield board
    board.dispose()


def notes(board: dbswap.Switchboard, target: str) -> list[tuple[int, str]]:
    engine = sa.create_engine(board.url_for(target))
    try:
        with engine.connect() as conn:
            return [
                (row[0], row[1]) for row in conn.execute(sa.select(NOTES.c.author, NOTES.c.text))
            ]
    finally:
        engine.dispose()


def log_in(client: TestClient, name: str, password: str) -> None:
    answer = client.post("/login", params={"name": name, "password": password})
    assert answer.status_code == 200, answer.text


def start_preview(client: TestClient, **body: Any) -> None:
    page = client.get("/admin/configuration")
    token = re.search(r'<meta name="dbswap-csrf" content="([^"]+)">', page.text)
    assert token is not None, page.text
    started = client.post(PREVIEW, json=body, headers={"X-CSRF-Token": token.group(1)})
    assert started.status_code == 200, started.text


def test_a_preview_keeps_the_admins_own_login_for_its_end(board: dbswap.Switchboard) -> None:
    with TestClient(make_app(board)) as client:
        log_in(client, "alice", "alice-local")
        assert client.get("/me").json() == {"id": 3, "name": "alice", "target": "local"}
        start_preview(client, target="production", readOnly=False)

        assert client.get("/me").status_code == 401  # anonymous there, never mallory
        assert client.post("/notes", params={"text": "x"}).status_code == 401
        assert client.get(PREVIEW).json()["preview"]["user"] == "alice"  # dbswap still knows her
        log_in(client, "alice", "alice-prod")  # production's alice: the preview's own login
        assert client.get("/me").json() == {"id": 4, "name": "alice", "target": "production"}
        assert client.post("/notes", params={"text": "from the preview"}).status_code == 201
        assert notes(board, "production") == [(4, "from the preview")]

        stopped = client.delete(PREVIEW, headers={"Origin": "http://testserver"})
        assert stopped.json()["stopped"] is True
        assert client.get("/me").json() == {"id": 3, "name": "alice", "target": "local"}
        start_preview(client, target="production", readOnly=False)
        assert client.get("/me").status_code == 401  # the last preview's login ended with it
    assert notes(board, "local") == []


def test_a_session_that_binds_nothing_is_left_as_it_is(board: dbswap.Switchboard) -> None:
    """An app that stamps nothing (its admin a password, not a row: dbswap's demo) keeps
    its cookie session in a preview: nothing there is bound to a target."""
    with TestClient(make_app(board)) as client:
        assert client.post("/plain-login", params={"name": "alice"}).status_code == 200
        start_preview(client, target="production")
        assert client.get("/whoami").json() == {"admin": "alice", "target": "production"}
