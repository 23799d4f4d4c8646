"""A FastAPI app whose pages read through pinned async sessions, with dbswap's admin API."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession

from dbswap import Switchboard
from dbswap.fastapi import Forbidden, NotAuthenticated, admin_router

board = Switchboard.from_env()
SessionLocal = board.async_sessionmaker(expire_on_commit=False)
ADMIN_TOKEN = os.environ["ADMIN_TOKEN"]


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:  # one request, one target
        yield session


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


@app.get("/items")
async def items(session: Annotated[AsyncSession, Depends(get_session)]) -> dict[str, object]:
    rows = await session.scalars(sa.text("SELECT label FROM items ORDER BY label"))
    return {"target": session.sync_session.dbswap_target, "items": list(rows)}
