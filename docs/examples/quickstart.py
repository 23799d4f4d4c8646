"""Switch a database under a running board: sessions, Core, and the switch itself."""

import sqlalchemy as sa

from dbswap import Switchboard

board = Switchboard.from_env()  # DATABASE_URL_LOCAL, DATABASE_URL_PRODUCTION, ...
Session = board.sessionmaker()  # a real SQLAlchemy sessionmaker; its sessions are pinned

with Session() as s:  # reads local
    print(s.dbswap_target, s.scalars(sa.text("SELECT label FROM items")).all())

board.use("production", user="alice")  # health check first, then commit: every process follows

with Session() as s:  # reads production
    print(s.dbswap_target, s.scalars(sa.text("SELECT label FROM items")).all())

with board.engine.connect() as conn:  # Core: board.engine follows the board too
    print(conn.execute(sa.text("SELECT count(*) FROM items")).scalar())

board.use("local", user="alice")
board.close()
