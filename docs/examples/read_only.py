"""A read-only switch: the database server itself refuses every write."""

import sqlalchemy as sa

from dbswap import ReadOnlyTarget, Switchboard

board = Switchboard.from_env()
Session = board.sessionmaker()

board.use("production", read_only=True)  # or DBSWAP_READONLY=production makes it the default
with Session() as s:
    try:
        s.execute(sa.text("DELETE FROM items"))  # refused by the server: nothing deleted
    except ReadOnlyTarget as refused:
        print("refused:", refused)
    print(s.scalar(sa.text("SELECT count(*) FROM items")), "rows still there")

board.use("production", read_only=False)  # a real switch (generation + 1), audited
print(board.state.generation, board.read_only)
board.use("local")  # as it was: the next example starts on local
board.close()
