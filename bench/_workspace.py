"""What every suite shares: the sizes of this run, scratch directories, boards to dispose."""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dbswap import Switchboard

from ._databases import Postgres, seed

B = TypeVar("B", bound=Switchboard)


@dataclass(frozen=True)
class Sizes:
    rounds: int  # paired rounds per comparison
    batch_seconds: float  # how long one batch of one variant lasts
    micro_rounds: int
    micro_batch_seconds: float
    switches: int  # use() calls per switch-latency row
    http_switches: int
    restarts: int  # restart-vs-switch trials
    timeline_seconds: float
    profile_sessions: int
    fleet_clients: int  # keep-alive HTTP clients on the gunicorn fleet
    fleet_rounds: int  # rounds of (steady, switching) phases
    fleet_seconds: float  # one load phase
    observers: int  # observer processes per state store
    propagation_switches: int  # switches per state store
    targets: tuple[int, ...] = (2, 10, 50)
    threads: tuple[int, ...] = (1, 4, 16)
    fleet_workers: int = 4  # gunicorn gthread workers...
    fleet_threads: int = 8  # ...and threads per worker
    propagation_spacing: float = 0.03  # seconds between two switches of one store
    cli_rounds: int = 21  # fresh processes per CLI command (and as many for the baseline)
    hosts: int = 1000  # simulated hosts on one Redis (bench.hosts)...
    host_processes: int = (
        100  # ...ten per process: a real relay is alone in its process (40 made the GIL the tail)
    )
    host_switches: int = 10  # switches they all follow
    host_spacing: float = 2.0  # seconds between two of them: each is measured, not a backlog
    cpu_switches: int = 100  # switches a follower's CPU is measured over (h.follower.cpu)...
    cpu_spacing: float = 0.05  # ...this far apart: per-switch CPU well above the idle's noise


FULL = Sizes(
    rounds=121,
    batch_seconds=0.02,
    micro_rounds=31,
    micro_batch_seconds=0.015,
    switches=200,
    http_switches=100,
    restarts=15,
    timeline_seconds=1.5,
    profile_sessions=5000,
    fleet_clients=16,
    fleet_rounds=40,  # short phases, many rounds: this machine's load swings phase to phase
    fleet_seconds=1.0,
    observers=4,
    propagation_switches=50,
)
QUICK = Sizes(
    rounds=3,
    batch_seconds=0.003,
    micro_rounds=3,
    micro_batch_seconds=0.002,
    switches=6,
    http_switches=4,
    restarts=1,
    timeline_seconds=0.3,
    profile_sessions=100,
    fleet_clients=4,
    fleet_rounds=1,
    fleet_seconds=0.75,
    observers=1,
    propagation_switches=6,
    cli_rounds=2,
    hosts=20,
    host_processes=2,
    host_switches=3,
    host_spacing=0.2,
    cpu_switches=5,
)


def wait_until(done: Callable[[], bool], at_least: float, at_most: float) -> None:
    """Sleep ``at_least`` seconds, then on until ``done()``; never past ``at_most``."""
    started = time.perf_counter()
    time.sleep(at_least)
    while not done() and time.perf_counter() - started < at_most:
        time.sleep(0.005)


@dataclass
class Timeline:
    """Per-operation latency around one switch, for the plot (times relative to the request)."""

    title: str
    starts: list[float]  # seconds, relative to the switch request
    latencies: list[float]  # seconds
    targets: list[str]
    requested: float = 0.0
    returned: float = 0.0
    source: str = ""
    destination: str = ""


@dataclass
class Workspace:
    sizes: Sizes
    disk: Path  # runtime dirs: state + audit log, on a real disk like an app's .runtime
    fast: Path  # SQLite files, on tmpfs when there is one
    postgres: Postgres | None
    postgres_reason: str
    notes: list[str] = field(default_factory=list)
    timelines: list[Timeline] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    _boards: list[Switchboard] = field(default_factory=list)
    _pg_urls: dict[str, str] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def runtime_dir(self, name: str) -> Path:
        return self.disk / f"rt-{name}-{next(self._ids)}"

    def board(self, urls: Mapping[str, str], name: str, **kw: Any) -> Switchboard:
        """A board with its own runtime dir on disk; disposed by ``close()``."""
        return self.board_of(Switchboard, urls, name, **kw)

    def board_of(
        self,
        cls: type[B],
        urls: Mapping[str, str],
        name: str,
        runtime_dir: Path | None = None,
        **kw: Any,
    ) -> B:
        """Same, for a Switchboard subclass (an instrumented or prototype board)."""
        board = cls(urls, runtime_dir=runtime_dir or self.runtime_dir(name), **kw)
        self._boards.append(board)
        return board

    def pg_urls(self) -> dict[str, str]:
        """Two seeded PostgreSQL databases, ``local`` and ``production``, shared by suites."""
        if self.postgres is None:
            raise RuntimeError(self.postgres_reason)
        if not self._pg_urls:
            for name in ("local", "production"):
                url = self.postgres.create(name)
                seed(url)
                self._pg_urls[name] = url
        return dict(self._pg_urls)

    def close(self) -> None:
        for board in self._boards:
            board.dispose()
        self._boards.clear()
        try:
            if self.postgres is not None:
                self.postgres.close()
        finally:
            shutil.rmtree(self.fast, ignore_errors=True)
            shutil.rmtree(self.disk, ignore_errors=True)
