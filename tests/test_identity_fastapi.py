"""``dbswap.fastapi``: tokens and cookies bound to the target they were issued on.

A real app: users read through ``board.sessionmaker()``; a bearer token signed
with itsdangerous (``stamp_claims`` at log-in, ``bound_to_target`` on the
endpoints, checked against the endpoint's own session), and Starlette's cookie
session (checked against the active target). ``local`` (SQLite) and
``production`` (PostgreSQL) both have a user 3, and they are different people.
"""

# No `from __future__ import annotations`: FastAPI must evaluate the endpoints'
# annotations, which name dependencies local to make_app().
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import pytest
import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import Session
from starlette.middleware.sessions import SessionMiddleware

import dbswap
from dbswap.fastapi import TARGET_CLAIM, admin_router, bound_to_target, stamp_claims
from webhelpers import ADMIN, SWITCH, TestClient, authorize_by_token

pytestmark = pytest.mark.postgres

PEOPLE = {"local": "ann (local)", "production": "mallory (production)"}  # both are user 3
USERS = sa.table("users", sa.column("id", sa.Integer), sa.column("name", sa.String))
SIGNER = URLSafeSerializer("identity-fastapi-secret")


def make_app(board: dbswap.Switchboard) -> FastAPI:
    factory = board.sessionmaker()

    def get_db() -> Iterator[Session]:
        with factory() as db:
            yield db

    def token_claims(authorization: Annotated[str, Header()] = "") -> dict[str, Any]:
        try:
            return dict(SIGNER.loads(authorization.removeprefix("Bearer ")))
        except BadSignature:
            raise HTTPException(401, "not a token of ours") from None

    def cookie_claims(request: Request) -> Mapping[str, Any]:
        return request.session

    Db = Annotated[Session, Depends(get_db)]
    TokenClaims = Annotated[
        Mapping[str, Any], Depends(bound_to_target(board, token_claims, session=get_db))
    ]
    CookieClaims = Annotated[Mapping[str, Any], Depends(bound_to_target(board, cookie_claims))]

    def name_of(db: Session, user_id: int) -> str:
        return str(db.execute(sa.select(USERS.c.name).where(USERS.c.id == user_id)).scalar_one())

    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key="identity-cookie-secret")
    app.include_router(admin_router(board, authorize=authorize_by_token))

    @app.post("/token")
    def issue_token(user_id: int, db: Db) -> dict[str, str]:
        name_of(db, user_id)  # the user exists where the token is issued
        assert db.dbswap_target is not None
        return {"token": SIGNER.dumps(stamp_claims({"sub": user_id}, db.dbswap_target))}

    @app.get("/me")
    def me(claims: TokenClaims, db: Db) -> dict[str, Any]:
        return {"name": name_of(db, claims["sub"]), "target": db.dbswap_target}

    @app.post("/cookie-login")
    def cookie_login(user_id: int, request: Request, db: Db) -> dict[str, str]:
        assert db.dbswap_target is not None
        request.session.clear()
        request.session.update(stamp_claims({"user_id": user_id}, db.dbswap_target))
        return {"name": name_of(db, user_id)}

    @app.get("/cookie-me")
    def cookie_me(claims: CookieClaims, db: Db) -> dict[str, Any]:
        return {"name": name_of(db, claims["user_id"]), "target": db.dbswap_target}

    return app


@pytest.fixture
def board(
    sqlite_url: Callable[[str], str], pg_url: Callable[[str], str], tmp_path: Path
) -> Iterator[dbswap.Switchboard]:
    urls = {"local": sqlite_url("local"), "production": pg_url("production")}
    for name, url in urls.items():
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(100))"))
            conn.execute(USERS.insert().values(id=3, name=PEOPLE[name]))
        engine.dispose()
    board = dbswap.Switchboard(urls, runtime_dir=tmp_path / "rt")
    yield board
    board.dispose()


@pytest.fixture
def client(board: dbswap.Switchboard) -> Iterator[TestClient]:
    with TestClient(make_app(board)) as client:
        yield client


def switch(client: TestClient, target: str) -> None:
    response = client.post(SWITCH, json={"target": target}, headers=ADMIN)
    assert response.status_code == 200, response.text


def test_a_token_issued_on_local_is_refused_on_production_and_accepted_back_on_local(
    client: TestClient,
) -> None:
    local = {"Authorization": f"Bearer {client.post('/token?user_id=3').json()['token']}"}
    assert SIGNER.loads(local["Authorization"][7:]) == {"sub": 3, TARGET_CLAIM: "local"}
    assert client.get("/me", headers=local).json() == {"name": PEOPLE["local"], "target": "local"}

    switch(client, "production")
    refused = client.get("/me", headers=local)
    assert refused.status_code == 401, refused.text  # never mallory
    assert "'local'" in refused.json()["detail"] and "sign in again" in refused.json()["detail"]
    assert refused.headers["WWW-Authenticate"] == "Bearer"

    # A token issued on production works there, and only there.
    production = {"Authorization": f"Bearer {client.post('/token?user_id=3').json()['token']}"}
    assert client.get("/me", headers=production).json() == {
        "name": PEOPLE["production"],
        "target": "production",
    }
    switch(client, "local")
    assert client.get("/me", headers=local).json()["name"] == PEOPLE["local"]
    assert client.get("/me", headers=production).status_code == 401


def test_a_cookie_session_is_bound_to_its_target_too(client: TestClient) -> None:
    assert client.post("/cookie-login?user_id=3").json() == {"name": PEOPLE["local"]}
    assert client.get("/cookie-me").json()["name"] == PEOPLE["local"]
    switch(client, "production")
    assert client.get("/cookie-me").status_code == 401
    assert client.post("/cookie-login?user_id=3").json() == {"name": PEOPLE["production"]}
    assert client.get("/cookie-me").json() == {
        "name": PEOPLE["production"],
        "target": "production",
    }
    switch(client, "local")
    assert client.get("/cookie-me").status_code == 401


def test_a_token_without_a_target_is_refused(client: TestClient) -> None:
    """Issued before the app stamped its tokens, or by something else: not trusted anywhere."""
    unstamped = {"Authorization": f"Bearer {SIGNER.dumps({'sub': 3})}"}
    refused = client.get("/me", headers=unstamped)
    assert refused.status_code == 401
    assert "does not say which database" in refused.json()["detail"]
