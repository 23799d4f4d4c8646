"""A background job (Celery, RQ, a plain worker): one session per job, the target from it."""

import sqlalchemy as sa
from sqlalchemy.orm import scoped_session

from dbswap import Switchboard

board = Switchboard.from_env()  # in a worker: DBSWAP_RUNTIME_DIR must be an absolute path
Session = board.sessionmaker()
ScopedSession = scoped_session(board.sessionmaker())


def count_items(job_id: int) -> str:
    """The job's body: a session of its own, opened when the job starts."""
    with Session() as s:
        count = s.scalar(sa.text("SELECT count(*) FROM items"))
        return f"job {job_id}: {count} items on {s.dbswap_target}"  # say where it ran


def count_items_scoped(job_id: int) -> str:
    """With a scoped_session, remove() at the end of every job, whatever happened."""
    try:
        count = ScopedSession.scalar(sa.text("SELECT count(*) FROM items"))
        return f"job {job_id}: {count} items on {ScopedSession().dbswap_target}"
    finally:
        ScopedSession.remove()  # else the next job reuses this session and its target


print(count_items(1))
print(count_items_scoped(2))
board.use("production")
print(count_items(3))  # the next job follows the switch
print(count_items_scoped(4))
board.use("local")  # as it was: the next example starts on local
board.close()
