"""``python -m bench._hosts_sim``: simulated hosts for ``bench.hosts``, in one process.

Each simulated host is a runtime dir with its relay (``dbswap._relay``): a
``RelayedStore`` that follows Redis and copies each state to its runtime dir.
When a host's copy holds a generation, its ``time.time()`` is recorded. The
process prints ``ready`` once every host has its relay, then answers each
``cpu`` line on stdin with its CPU time so far, and any other line with the
stamps as JSON: ``{host: {generation: seen}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dbswap._relay import RelayedStore
from dbswap._state import State


class StampedStore(RelayedStore):
    """A host's relay that notes when its copy got each generation."""

    def __init__(self, url: str, runtime_dir: Path) -> None:
        self.seen: dict[int, float] = {}
        super().__init__(url, runtime_dir)

    def _copy(self, state: State) -> None:
        super()._copy(state)
        self.seen.setdefault(state.generation, time.time())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--hosts", type=int, required=True)
    parser.add_argument("--first", type=int, default=0)
    args = parser.parse_args()
    stores = {
        f"h{i}": StampedStore(args.url, args.base / f"h{i}")
        for i in range(args.first, args.first + args.hosts)
    }
    relays = sum(store._relay is not None for store in stores.values())
    print(f"ready {relays}", flush=True)
    for line in sys.stdin:  # "cpu": this process's CPU time so far; anything else: the end
        if line.strip() != "cpu":
            break
        print(repr(time.process_time()), flush=True)
    print(json.dumps({name: store.seen for name, store in stores.items()}), flush=True)
    for store in stores.values():
        store.close()


if __name__ == "__main__":
    main()
