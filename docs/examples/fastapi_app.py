"""A FastAPI app: pinned async sessions, tokens bound to their target, dbswap's admin API."""

import hashlib
import hmac
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.security import OAuth2PasswordRequestForm
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dbswap import ReadOnlyTarget, Switchboard
from dbswap.fastapi import (
    Forbidden,
    NotAuthenticated,
    admin_router,
    bound_to_target,
    read_only_refused,
    stamp_claims,
)

board = Switchboard.from_env()
SessionLocal = board.async_sessionmaker(expire_on_commit=False)
ADMIN_TOKEN = os.environ["ADMIN_TOKEN"]
tokens = URLSafeTimedSerializer(os.environ["SECRET_KEY"], salt="access-token")


class Base(DeclarativeBase):
    pass


class User(Base):  # a table of each target: local's user 1 is not production's
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    is_superuser: Mapped[bool] = mapped_column(default=False)


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"{salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    salt = bytes.fromhex(stored.partition("$")[0])
    return hmac.compare_digest(hash_password(password, salt), stored)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:  # one request, one target
        yield session


def token_claims(authorization: Annotated[str, Header()] = "") -> dict[str, Any]:
    try:
        return dict(tokens.loads(authorization.removeprefix("Bearer "), max_age=3600))
    except BadData:
        raise HTTPException(401, "sign in first", {"WWW-Authenticate": "Bearer"}) from None


Db = Annotated[AsyncSession, Depends(get_session)]
# A token names a user of the target it was issued on: any other target answers 401.
Claims = Annotated[
    Mapping[str, Any], Depends(bound_to_target(board, token_claims, session=get_session))
]


def authorize(request: Request) -> str:
    """Who may switch: never read a switched database here (a plain def runs in the threadpool)."""
    header = request.headers.get("authorization")
    if header is None:
        raise NotAuthenticated()
    if header != f"Bearer {ADMIN_TOKEN}":
        raise Forbidden()
    return "admin"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await board.adispose()  # close the asyncio pools on the app's own loop


app = FastAPI(lifespan=lifespan)
app.include_router(admin_router(board, authorize=authorize))
app.add_exception_handler(ReadOnlyTarget, read_only_refused)  # a refused write: 409, not 500


@app.post("/login")
async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], db: Db) -> dict[str, str]:
    user = await db.scalar(sa.select(User).where(User.email == form.username))
    if user is None or not password_matches(form.password, user.password_hash):
        raise HTTPException(401, "wrong email or password")
    claims = stamp_claims({"sub": user.id}, db)  # + the target the user was read from
    return {"access_token": tokens.dumps(claims), "token_type": "bearer"}


@app.get("/users/me")
async def me(claims: Claims, db: Db) -> dict[str, object]:
    user = await db.get(User, claims["sub"])
    if user is None:
        raise HTTPException(401, "sign in again")
    return {"email": user.email, "is_superuser": user.is_superuser}


@app.get("/items")
async def items(db: Db) -> dict[str, object]:
    rows = await db.scalars(sa.text("SELECT label FROM items ORDER BY label"))
    return {"target": db.sync_session.dbswap_target, "items": list(rows)}


@app.post("/items", status_code=201)
async def add_item(label: str, claims: Claims, db: Db) -> dict[str, str]:
    await db.execute(sa.text("INSERT INTO items (label) VALUES (:label)"), {"label": label})
    await db.commit()
    return {"label": label}
