"""A switch that ends on its own: to production for a while, then back."""

import time
from datetime import timedelta

from dbswap import Switchboard

board = Switchboard.from_env()

board.use("production", user="alice", for_=timedelta(minutes=15))  # or for_=900 (seconds)
print(board.time_limit)  # TimeLimit(expires_at=..., return_to='local', seconds_left=..., ...)
board.use("production", for_=timedelta(minutes=30))  # again: a new end, 30 min from now
board.use("production")  # without for_: no limit any more
print(board.time_limit)  # None

board.use("local")
board.use("production", for_=2)  # two seconds, for this example
time.sleep(2.5)
print(board.active)  # local: the first look after the end made the return (audited "expired")
print([e["outcome"] for e in board.history(3)])
board.close()
