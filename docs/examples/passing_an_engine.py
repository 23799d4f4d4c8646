"""Scripts and tests that are handed an engine: give them board.engine, which follows."""

import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from dbswap import Switchboard

board = Switchboard.from_env()  # DATABASE_URL_LOCAL, DATABASE_URL_PRODUCTION
engine = board.engine  # one object for the process's life: each connect() takes the active target
Session = board.session_class  # in place of sqlalchemy.orm.Session: Session(engine) is pinned


def count(engine) -> int:  # Core code that takes an engine: unchanged
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM items")).scalar_one())


def labels(engine) -> list[str]:  # ORM code doing Session(engine): only its import changed
    with Session(engine) as session:
        return list(session.scalars(sa.text("SELECT label FROM items ORDER BY id")))


make_session = sessionmaker(engine, class_=Session)  # a sessionmaker made once, likewise

print(count(engine), labels(engine))  # local's
board.use("production", user="alice")
print(count(engine), labels(engine))  # production's: the same engine object followed
with make_session() as s:
    print(s.dbswap_target)
with board.engine_for("local").connect() as conn:  # one target's own Engine, for fixtures
    print(conn.info["dbswap_target"], count(conn.engine))  # it never follows
board.use("local", user="alice")
board.close()
