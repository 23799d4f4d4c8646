"""Run one block of code against one target, without switching anybody else."""

import sqlalchemy as sa

from dbswap import Switchboard

board = Switchboard.from_env()
Session = board.sessionmaker()

with board.pinned("production"), Session() as s:  # this thread (or asyncio task) only
    print("inside:", s.dbswap_target, s.scalar(sa.text("SELECT count(*) FROM items")))

with Session() as s:  # the shared target never moved
    print("after:", s.dbswap_target)
board.close()
