"""functools caches of query results that follow the switch: keyed by target, or cleared."""

import functools

import sqlalchemy as sa

import dbswap

board = dbswap.Switchboard.from_env()  # DATABASE_URL_LOCAL, DATABASE_URL_PRODUCTION
Session = board.sessionmaker()


# 1. Keyed by target: the target is an argument, so each target has its own entries,
#    and local's are there again when the app is back on local.
@functools.lru_cache(maxsize=256)
def labels(target: str) -> tuple[str, ...]:
    with board.pinned(target), Session() as s:  # reads the target it is keyed by
        return tuple(s.scalars(sa.text("SELECT label FROM items ORDER BY id")))


# 2. Cleared whenever this process starts serving another target, wherever the switch
#    was made (here, another process, `dbswap use`, a time limit's end).
@functools.lru_cache(maxsize=256)
def count() -> int:
    with Session() as s:
        return int(s.scalar(sa.text("SELECT count(*) FROM items")))


@board.on_change
def forget(change: dbswap.Change) -> None:
    count.cache_clear()


print(board.active, labels(board.active), count())  # local's, cached now

other = dbswap.Switchboard.from_env()  # another process, as `dbswap use production` is
other.use("production", user="alice")
other.close()

print(board.active, labels(board.active), count())  # production's, never local's
board.use("local", user="alice")
print(board.active, labels(board.active), count())  # local's again
print(labels.cache_info().hits, "hit")  # local's labels came from the cache
board.close()
