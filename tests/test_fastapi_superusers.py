"""A FastAPI app whose admins are users of the switched database (superuser tokens).

The shape of FastAPI's full-stack template, wired as docs/examples/fastapi_app.py
shows (tokens stamped at log-in, ``bound_to_target`` on the endpoints, the
read-only handler), with identity.md's recipe for its admins: ``authorize``
takes only tokens issued on the control target (``board.default_target``) and
checks the superuser there, inside ``board.pinned(...)``, so an admin can always
switch back; ``PreviewMiddleware`` pins an admin's previews. Ids mean different
people per target:

- local: 1 alice (superuser), 3 ann (a plain user);
- production: 1 mallory (a plain user), 3 root (superuser).
"""

# No `from __future__ import annotations`: FastAPI must evaluate the endpoints'
# annotations, which name dependencies local to make_app().
import hashlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import pytest
import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.security import OAuth2PasswordRequestForm
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import dbswap
from dbswap.fastapi import (
    TARGET_CLAIM,
    Forbidden,
    NotAuthenticated,
    PreviewMiddleware,
    admin_router,
    bound_to_target,
    read_only_refused,
    stamp_claims,
)
from webhelpers import TestClient

SECRET = "superusers-secret-0123456789abcdef"
tokens = URLSafeTimedSerializer(SECRET, salt="access-token")
PEOPLE = {  # (id, email, superuser)
    "local": [(1, "alice@example.test", True), (3, "ann@example.test", False)],
    "production": [(1, "mallory@example.test", False), (3, "root@example.test", True)],
}
PREVIEW, SWITCH = "/api/admin/database/preview", "/api/admin/database/switch"
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    is_superuser: Mapped[bool] = mapped_column(default=False)


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(100))


def password_hash(password: str) -> str:  # fast, for tests; the example uses scrypt
    return hashlib.sha256(password.encode()).hexdigest()


def make_app(board: dbswap.Switchboard) -> FastAPI:
    SessionLocal = board.sessionmaker()

    def get_session() -> Iterator[Session]:
        with SessionLocal() as session:
            yield session

    def token_claims(authorization: Annotated[str, Header()] = "") -> dict[str, Any]:
        try:
            return dict(tokens.loads(authorization.removeprefix("Bearer "), max_age=3600))
        except BadData:
            raise HTTPException(401, "sign in first", {"WWW-Authenticate": "Bearer"}) from None

    Db = Annotated[Session, Depends(get_session)]
    Claims = Annotated[
        Mapping[str, Any], Depends(bound_to_target(board, token_claims, session=get_session))
    ]
    Form = Annotated[OAuth2PasswordRequestForm, Depends()]

    def check(db: Session, form: OAuth2PasswordRequestForm) -> User:
        user = db.scalar(sa.select(User).where(User.email == form.username))
        if user is None or user.password_hash != password_hash(form.password):
            raise HTTPException(401, "wrong email or password")
        return user

    # -- identity.md's recipe: admins are superusers of the control target --------------

    def authorize(request: Request) -> str:
        """Superusers of the control target: never whoever has that id on the active one."""
        claims = token_claims(request.headers.get("authorization", ""))
        if claims.get(TARGET_CLAIM) != board.default_target:
            raise NotAuthenticated(f"sign in at /admin/login (on {board.default_target!r})")
        with board.pinned(board.default_target), SessionLocal() as db:
            user = db.get(User, claims["sub"])
        if user is None or not user.is_superuser:
            raise Forbidden()
        return user.email

    app = FastAPI()
    app.include_router(admin_router(board, authorize=authorize, csrf_secret=SECRET))
    app.add_middleware(PreviewMiddleware, board=board, authorize=authorize, csrf_secret=SECRET)
    app.add_exception_handler(dbswap.ReadOnlyTarget, read_only_refused)

    @app.post("/admin/login")
    def admin_login(form: Form) -> dict[str, str]:
        with board.pinned(board.default_target), SessionLocal() as db:  # always the control target
            user = check(db, form)
            if not user.is_superuser:
                raise HTTPException(403, "not an administrator")
            return {"access_token": tokens.dumps(stamp_claims({"sub": user.id}, db))}

    # -- the app, as the example ----------------------------------------------------------

    @app.post("/login")
    def login(form: Form, db: Db) -> dict[str, str]:
        user = check(db, form)
        return {"access_token": tokens.dumps(stamp_claims({"sub": user.id}, db))}

    @app.get("/users/me")
    def me(claims: Claims, db: Db) -> dict[str, Any]:
        user = db.get(User, claims["sub"])
        if user is None:
            raise HTTPException(401, "sign in again")
        return {"email": user.email, "is_superuser": user.is_superuser, "target": db.dbswap_target}

    @app.get("/items")
    def items(db: Db) -> dict[str, Any]:
        return {"target": db.dbswap_target, "items": list(db.scalars(sa.select(Item.label)))}

    @app.post("/items", status_code=201)
    def add_item(label: str, claims: Claims, db: Db) -> dict[str, str]:
        db.add(Item(label=label))
        db.commit()
        return {"label": label}

    @app.post("/feedback", status_code=201)
    def feedback(text: str, db: Db) -> dict[str, str]:  # anyone may write one
        db.add(Item(label=f"feedback: {text}"))
        db.commit()
        return {"text": text}

    return app


@pytest.fixture
def board(tmp_path: Path) -> Iterator[dbswap.Switchboard]:
    urls = {name: f"sqlite:///{tmp_path / name}.db" for name in PEOPLE}
    for name, url in urls.items():
        engine = sa.create_engine(url)
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            for id, email, superuser in PEOPLE[name]:
                password = password_hash(email.split("@")[0])  # alice's password: "alice"
                session.add(
                    User(id=id, email=email, password_hash=password, is_superuser=superuser)
                )
            session.add(Item(label=f"{name}-1"))
            session.commit()
        engine.dispose()
    board = dbswap.Switchboard(urls, runtime_dir=tmp_path / "rt")
    yield board
    board.dispose()


@pytest.fixture
def client(board: dbswap.Switchboard) -> Iterator[TestClient]:
    with TestClient(make_app(board)) as client:
        yield client


def bearer(client: TestClient, email: str, path: str = "/login") -> dict[str, str]:
    answer = client.post(path, data={"username": email, "password": email.split("@")[0]})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def switch(client: TestClient, admin: dict[str, str], **body: Any) -> None:
    done = client.post(SWITCH, json=body, headers=admin)
    assert done.status_code == 200, done.text


def items_on(board: dbswap.Switchboard, target: str) -> list[str]:
    engine = sa.create_engine(board.url_for(target))
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(Item.label).order_by(Item.id)).scalars())
    finally:
        engine.dispose()


def test_a_local_users_token_is_never_productions_superuser_of_the_same_id(
    client: TestClient,
) -> None:
    admin = bearer(client, "alice@example.test", "/admin/login")
    ann = bearer(client, "ann@example.test")  # local's user 3
    switch(client, admin, target="production")  # production's user 3 is root, a superuser
    refused = client.get("/users/me", headers=ann)
    assert refused.status_code == 401 and "'local'" in refused.json()["detail"]
    assert client.post("/items", params={"label": "x"}, headers=ann).status_code == 401
    assert client.get("/api/admin/database", headers=ann).status_code == 403  # ann, on local


def test_the_admin_is_checked_on_the_control_target_and_can_always_switch_back(
    client: TestClient, board: dbswap.Switchboard
) -> None:
    admin = bearer(client, "alice@example.test", "/admin/login")
    switch(client, admin, target="production")  # production's user 1 is mallory, no admin
    assert client.get("/api/admin/database", headers=admin).json()["target"] == "production"
    root = bearer(client, "root@example.test")  # production's superuser, a production token
    refused = client.post(SWITCH, json={"target": "local"}, headers=root)
    assert refused.status_code == 401 and "/admin/login" in refused.json()["message"]
    switch(client, admin, target="local")
    assert board.active == "local"
    assert client.get("/users/me", headers=admin).json()["email"] == "alice@example.test"


def test_a_preview_never_serves_the_admins_token_as_the_previewed_targets_user(
    client: TestClient,
) -> None:
    """alice (local's user 1) previews production: her token is refused there (401), never
    mallory's (production's user 1); dbswap's routes still know her; after the preview her
    token works again, and a token issued during it belongs to production only."""
    admin = bearer(client, "alice@example.test", "/admin/login")
    assert client.post(PREVIEW, json={"target": "production"}, headers=admin).status_code == 200
    assert client.get("/items", headers=admin).json()["target"] == "production"
    refused = client.get("/users/me", headers=admin)
    assert refused.status_code == 401, refused.text  # never mallory
    assert client.get(PREVIEW, headers=admin).json()["preview"]["user"] == "alice@example.test"
    answer = client.post(
        "/login", data={"username": "root@example.test", "password": "root"}, headers=admin
    )
    made_in_preview = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    assert tokens.loads(answer.json()["access_token"])[TARGET_CLAIM] == "production"

    assert client.delete(PREVIEW, headers=admin).json()["stopped"] is True
    assert client.get("/users/me", headers=admin).json()["email"] == "alice@example.test"
    assert client.get("/users/me", headers=made_in_preview).status_code == 401


def test_a_write_refused_by_a_read_only_preview_is_a_409_that_advises_a_writable_preview(
    client: TestClient, board: dbswap.Switchboard
) -> None:
    admin = bearer(client, "alice@example.test", "/admin/login")
    assert client.post(PREVIEW, json={"target": "production"}, headers=admin).json()["readOnly"]
    refused = client.post("/feedback", params={"text": "hi"}, headers=admin)
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert (body["error"], body["target"], body["preview"]) == ("read_only", "production", True)
    assert '"readOnly": false' in body["message"] and "dbswap use" not in body["message"]
    page = client.post("/feedback", params={"text": "hi"}, headers=admin | BROWSER)
    assert page.status_code == 409 and page.headers["content-type"].startswith("text/html")
    assert "your preview of &#39;production&#39; is read-only" in page.text
    assert items_on(board, "production") == ["production-1"]
    assert items_on(board, "local") == ["local-1"]


def test_a_write_refused_by_a_read_only_switch_is_a_409_json_or_page(
    client: TestClient, board: dbswap.Switchboard
) -> None:
    admin = bearer(client, "alice@example.test", "/admin/login")
    switch(client, admin, target="production", readOnly=True)
    root = bearer(client, "root@example.test")
    refused = client.post("/items", params={"label": "no"}, headers=root)
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert (body["error"], body["target"], body["preview"]) == ("read_only", "production", False)
    assert "dbswap use production --writable" in body["message"]
    page = client.post("/items", params={"label": "no"}, headers=root | BROWSER)
    assert page.status_code == 409 and page.headers["content-type"].startswith("text/html")
    assert re.search(r"the &#39;production&#39; database is in read-only mode", page.text)
    assert items_on(board, "production") == ["production-1"]
