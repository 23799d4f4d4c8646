"""What a board gives an app: sessions, Core, switch callbacks, settings, health, history."""

import asyncio

import sqlalchemy as sa

from dbswap import Switchboard

board = Switchboard.from_env()

Session = board.sessionmaker(expire_on_commit=False)  # sync ORM
AsyncSession = board.async_sessionmaker()  # asyncio ORM (aiosqlite, psycopg, asyncpg, aiomysql)

with board.engine.connect() as conn:  # Core: a stable object, import it once
    print(conn.info["dbswap_target"], conn.execute(sa.text("SELECT count(*) FROM items")).scalar())

cache: dict[str, object] = {"stale": True}


@board.on_switch
def clear_caches(result: object) -> None:  # after each committed switch
    cache.clear()


board.use("production", user="alice")
assert cache == {}  # the callback ran
print(board.setting("BLOB_READ_WRITE_TOKEN"))  # the active target's own token (None if unset)
print([(h.target, h.ok) for h in board.check()])  # Health(target, dialect, ok, latency_ms, error)
print([(e["outcome"], e["to"]) for e in board.history(20)])  # audit entries, newest first


async def count() -> int:
    try:
        async with AsyncSession() as s:
            return int(await s.scalar(sa.text("SELECT count(*) FROM items")))
    finally:
        await board.adispose()


print(asyncio.run(count()))
board.use("local")  # as it was: the next example starts on local
board.close()
