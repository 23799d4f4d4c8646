"""SQLModel's own Session and AsyncSession, pinned by dbswap."""

import asyncio

from sqlmodel import Field, Session, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from dbswap import Switchboard


class Hero(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str


board = Switchboard.from_env()
for name in board.targets:  # create the table in every target (a migration's job, usually)
    SQLModel.metadata.create_all(board.engine_for(name))

SessionLocal = board.sessionmaker(class_=Session)
AsyncSessionLocal = board.async_sessionmaker(class_=AsyncSession, expire_on_commit=False)

with SessionLocal() as s:
    s.add(Hero(name="Deadpond"))
    s.commit()
    print(s.dbswap_target, [h.name for h in s.exec(select(Hero))])


async def read_heroes() -> list[str]:
    try:
        async with AsyncSessionLocal() as s:
            return [h.name for h in (await s.exec(select(Hero))).all()]
    finally:
        await board.adispose()


print(asyncio.run(read_heroes()))
board.close()
