"""``python -m bench._observe``: one observer process of the propagation benchmark.

It builds a Switchboard on the shared state (the runtime dir's file store,
or ``RedisStateStore(url)`` with ``--redis``), prints ``ready <generation>``,
then polls ``board.generation`` and records when it first sees each new
generation (``time.time()``, the clock the switching process stamps with).
It stops after ``--switches`` new generations or ``--seconds``, whichever
comes first, and prints one JSON line: ``{"start": g0, "seen": [[g, t], ...]}``.
Between two reads it sleeps ``--pause`` seconds: with several observers on
two cores, a pure spin would measure the scheduler rather than dbswap.
Target URLs come from ``DBSWAP_BENCH_TARGETS`` (JSON), never from argv.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from dbswap import Switchboard
from dbswap._state import StateStore

TARGETS_ENV = "DBSWAP_BENCH_TARGETS"
MAX_POLLS = 50_000_000  # a bound on the loop, beside the deadline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runtime-dir", required=True)
    parser.add_argument("--redis", default=None, help="redis://...?prefix=...; default: file")
    parser.add_argument("--switches", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--pause", type=float, default=0.0001)
    args = parser.parse_args(argv)
    store: StateStore | None = None
    if args.redis:
        from dbswap._redis_state import RedisStateStore

        store = RedisStateStore(args.redis)
    board = Switchboard(
        json.loads(os.environ[TARGETS_ENV]), runtime_dir=args.runtime_dir, store=store
    )
    try:
        start = last = board.generation
        print(f"ready {start}", flush=True)
        seen: list[tuple[int, float]] = []
        goal, deadline = start + args.switches, time.monotonic() + args.seconds
        polls = 0
        while last < goal and polls < MAX_POLLS and time.monotonic() < deadline:
            generation = board.generation
            if generation != last:
                seen.append((generation, time.time()))
                last = generation
            polls += 1
            if args.pause > 0:
                time.sleep(args.pause)
        print(json.dumps({"start": start, "seen": seen, "polls": polls}), flush=True)
    finally:
        board.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
