"""``python -m bench._cpu_follower``: a process that follows a Redis state, for ``bench.hosts``.

``--mode relayed``: a worker of a host whose relay is another process (it reads
the host's copy, as ``Switchboard.from_env`` wires it); ``--mode direct``: a
process with its own subscription (``RedisStateStore``, each process for itself).
It opens one session (so it follows), prints ``ready``, then answers each
``cpu`` line on stdin with its process CPU time so far (``time.process_time()``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from dbswap import Switchboard
from dbswap._redis_state import RedisStateStore
from dbswap._relay import RelayedStore
from dbswap._state import StateStore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("relayed", "direct"), required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--runtime", type=Path, required=True)
    parser.add_argument("--targets", required=True)  # JSON: name -> URL
    args = parser.parse_args()
    store: StateStore = (
        RelayedStore(args.url, args.runtime)
        if args.mode == "relayed"
        else RedisStateStore(args.url, cache_dir=args.runtime)
    )
    board = Switchboard(json.loads(args.targets), runtime_dir=args.runtime, store=store)
    with board.sessionmaker()() as session:
        session.execute(sa.text("SELECT 1"))
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "cpu":
            print(f"{time.process_time()!r} {board.generation}", flush=True)
    board.close()


if __name__ == "__main__":
    main()
