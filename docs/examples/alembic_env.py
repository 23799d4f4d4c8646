"""Alembic's env.py for an app on dbswap: migrations run through the app's own board.

Under `dbswap run production -- alembic upgrade head` the board is pinned to
production; otherwise it migrates the active target.
"""

from alembic import context

from dbswap import Switchboard

board = Switchboard.from_env()
with board.engine.connect() as connection:  # dbswap run's target, or the active one
    context.configure(connection=connection)  # target_metadata=Base.metadata for autogenerate
    with context.begin_transaction():
        context.run_migrations()
board.close()
