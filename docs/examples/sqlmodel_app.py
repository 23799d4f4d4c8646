"""SQLModel's own Session and AsyncSession, pinned by dbswap, in a FastAPI app whose
cookie logins are bound to the target they were made on."""

import hashlib
import hmac
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from sqlmodel import Field, Session, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.middleware.sessions import SessionMiddleware

from dbswap import ReadOnlyTarget, Switchboard
from dbswap.fastapi import bound_to_target, read_only_refused, stamp_claims


class Hero(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str


class User(SQLModel, table=True):  # a table of each target: local's user 1 is not production's
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    password_hash: str
    is_superuser: bool = False


def hash_password(password: str, name: str) -> str:  # use your password library here
    return hashlib.pbkdf2_hmac("sha256", password.encode(), name.encode(), 200_000).hex()


board = Switchboard.from_env()
for name in board.targets:  # create the tables in every target (a migration's job, usually)
    SQLModel.metadata.create_all(board.engine_for(name))

SessionLocal = board.sessionmaker(class_=Session)
AsyncSessionLocal = board.async_sessionmaker(class_=AsyncSession, expire_on_commit=False)


def get_session() -> Iterator[Session]:
    with SessionLocal() as session:  # one request, one target
        yield session


async def get_async_session() -> AsyncIterator[AsyncSession]:
    async with AsyncSessionLocal() as session:
        yield session


def cookie_login(request: Request) -> Mapping[str, Any]:
    return request.session


Db = Annotated[Session, Depends(get_session)]
# The cookie names a user of the target it was signed in on: any other target answers 401.
SignedIn = Annotated[
    Mapping[str, Any], Depends(bound_to_target(board, cookie_login, session=get_session))
]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await board.adispose()  # close the asyncio pools on the app's own loop


app = FastAPI(lifespan=lifespan)
app.add_middleware(SessionMiddleware, secret_key=os.environ["SECRET_KEY"])
app.add_exception_handler(ReadOnlyTarget, read_only_refused)  # a refused write: 409, not 500


@app.post("/login")
def login(name: str, password: str, request: Request, db: Db) -> dict[str, str]:
    user = db.exec(select(User).where(User.name == name)).first()
    if user is None or not hmac.compare_digest(hash_password(password, name), user.password_hash):
        raise HTTPException(401, "wrong name or password")
    request.session.clear()
    request.session.update(stamp_claims({"user_id": user.id}, db))  # + the user's target
    return {"name": user.name}


@app.get("/me")
def me(login: SignedIn, db: Db) -> dict[str, object]:
    user = db.get(User, login["user_id"])
    if user is None:
        raise HTTPException(401, "sign in again")
    return {"name": user.name, "is_superuser": user.is_superuser, "target": db.dbswap_target}


@app.post("/heroes", status_code=201)
def create_hero(hero: Hero, login: SignedIn, db: Db) -> Hero:
    db.add(hero)
    db.commit()
    db.refresh(hero)
    return hero


@app.get("/heroes")
async def heroes(db: Annotated[AsyncSession, Depends(get_async_session)]) -> list[str]:
    return [hero.name for hero in (await db.exec(select(Hero))).all()]
