"""Switch a database under a running board: sessions, Core, and the switch itself."""

import sqlalchemy as sa

from dbswap import Switchboard

# Two SQLite files to try it on; an app calls Switchboard.from_env() (DATABASE_URL_LOCAL, ...)
board = Switchboard({"local": "sqlite:///local.db", "production": "sqlite:///production.db"})
for name in board.targets:  # a table `items` in each database, with a row that names it
    with board.engine_for(name).begin() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS items (label VARCHAR(50) UNIQUE)"))
        conn.execute(sa.text("INSERT OR IGNORE INTO items VALUES (:label)"), {"label": f"{name}-1"})
Session = board.sessionmaker()  # a real SQLAlchemy sessionmaker; its sessions are pinned

with Session() as s:  # reads local
    print(s.dbswap_target, s.scalars(sa.text("SELECT label FROM items")).all())

board.use("production", user="alice")  # health check first, then commit: every process follows

with Session() as s:  # reads production
    print(s.dbswap_target, s.scalars(sa.text("SELECT label FROM items")).all())

with board.engine.connect() as conn:  # Core: board.engine follows the board too
    print(conn.info["dbswap_target"], conn.execute(sa.text("SELECT count(*) FROM items")).scalar())

board.use("local", user="alice")
board.close()
