"""How fast other processes see a switch: observer processes, file store vs Redis.

For each store, ``observers`` processes (``bench._observe``) build their own
Switchboard on the shared state and poll ``board.generation``. This process
switches back and forth ``switches`` times, one switch per store every
``spacing`` seconds, the stores interleaved (rotated order) so both see the
same machine; it stamps ``time.time()`` just before each ``use()``. The
latency of one (observer, switch) is ``seen - start``; the same-run
baselines are that switch's own ``use()`` duration and health check.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

from dbswap._redis_state import RedisStateStore

from ._databases import redis_forget
from ._server import REPO
from ._workspace import Workspace
from .switching import TimedBoard

TARGETS = ("production", "local")
READY_TIMEOUT = 60.0  # seconds for the observers to import dbswap and read the state
RESULT_TIMEOUT = 30.0  # seconds for them to report once the switches are done


@dataclass
class Propagation:
    """One store's figures, in seconds; one latency per (observer, switch) seen."""

    kind: str
    observers: int
    switches: int
    latencies: list[float] = field(default_factory=list)  # seen - just before use()
    ratios: list[float] = field(default_factory=list)  # latency / that switch's use() duration
    after_return: list[float] = field(default_factory=list)  # seen - use() returned (< 0: before)
    durations: list[float] = field(default_factory=list)  # use(), per switch
    checks: list[float] = field(default_factory=list)  # its health check, per switch
    missed: int = 0  # (observer, switch) pairs not seen as such (skipped, or timed out)


@dataclass
class _Side:
    kind: str
    board: TimedBoard
    redis_url: str | None  # with its unique ?prefix=, or None for the file store
    redis_base: str | None  # the same without the prefix
    prefix: str | None
    observers: list[subprocess.Popen[str]] = field(default_factory=list)
    # generation -> (time.time() before use(), time.time() after, use() seconds)
    stamps: dict[int, tuple[float, float, float]] = field(default_factory=dict)


def measure(
    ws: Workspace,
    urls: dict[str, str],
    stores: dict[str, str | None],
    *,
    observers: int,
    switches: int,
    spacing: float,
) -> dict[str, Propagation]:
    """``stores`` maps a name to None (the file store) or a Redis URL (a prefix is added)."""
    sides: list[_Side] = []
    try:
        for kind, redis_url in stores.items():
            sides.append(_side(ws, urls, kind, redis_url))
        for side in sides:
            for name in ("production", "local"):  # both targets warm, a state committed
                side.board.use(name, user="bench")
            side.board.check_times.clear()
        seconds = READY_TIMEOUT + switches * spacing * 4 + RESULT_TIMEOUT
        for side in sides:
            side.observers = [
                _observer(ws, urls, side, switches, seconds) for _ in range(observers)
            ]
        ready_by = time.monotonic() + READY_TIMEOUT
        for side in sides:
            for process in side.observers:
                _ready(process, ready_by)
        _switch(sides, switches, spacing)
        return {side.kind: _collect(side, observers, switches) for side in sides}
    finally:
        for side in sides:
            _end(side)


def _side(ws: Workspace, urls: dict[str, str], kind: str, redis_url: str | None) -> _Side:
    runtime_dir = ws.runtime_dir(f"propagation-{kind}")
    if redis_url is None:
        return _Side(kind, TimedBoard(urls, runtime_dir=runtime_dir), None, None, None)
    prefix = f"dbswap-bench-{uuid.uuid4().hex[:12]}"
    url = f"{redis_url}{'&' if '?' in redis_url else '?'}prefix={prefix}"
    board = TimedBoard(urls, runtime_dir=runtime_dir, store=RedisStateStore(url))
    return _Side(kind, board, url, redis_url, prefix)


def _observer(
    ws: Workspace, urls: dict[str, str], side: _Side, switches: int, seconds: float
) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "bench._observe", "--runtime-dir", str(side.board.runtime_dir)]
    command += ["--switches", str(switches), "--seconds", f"{seconds:.1f}"]
    if side.redis_url is not None:
        command += ["--redis", side.redis_url]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DBSWAP_"))}
    env["DBSWAP_BENCH_TARGETS"] = json.dumps(urls)  # not in argv: URLs may hold passwords
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with (ws.disk / f"observer-{side.kind}.log").open("ab") as log:
        return subprocess.Popen(
            command,
            cwd=ws.disk,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )


def _ready(process: subprocess.Popen[str], by: float) -> None:
    """Wait for the observer's ``ready`` line (it has read the state); bounded in time."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(max(0.0, by - time.monotonic())):
            raise RuntimeError("an observer process was not ready in time")
    line = process.stdout.readline()
    if not line.startswith("ready "):
        raise RuntimeError(f"an observer process failed to start (exit {process.poll()})")


def _switch(sides: list[_Side], switches: int, spacing: float) -> None:
    """One switch per store per tick, ticks ``spacing`` apart, stores in rotated order."""
    began = time.perf_counter()
    for i in range(switches):
        shift = i % len(sides)
        for side in sides[shift:] + sides[:shift]:
            start = time.time()
            clock = time.perf_counter()
            result = side.board.use(TARGETS[i % 2], user="bench")
            duration = time.perf_counter() - clock
            side.stamps[result.generation] = (start, time.time(), duration)
        time.sleep(max(0.0, began + (i + 1) * spacing - time.perf_counter()))


def _collect(side: _Side, observers: int, switches: int) -> Propagation:
    figures = Propagation(side.kind, observers, switches)
    figures.durations = [d for _, _, d in side.stamps.values()]
    figures.checks = list(side.board.check_times)
    for process in side.observers:
        assert process.stdout is not None
        process.wait(timeout=RESULT_TIMEOUT)  # its output, one short line, fits in the pipe
        lines = process.stdout.read().strip().splitlines()
        if process.returncode != 0 or not lines:
            raise RuntimeError(f"an observer process failed (exit {process.returncode})")
        seen = {int(g): float(t) for g, t in json.loads(lines[-1])["seen"]}
        for generation, (start, returned, duration) in side.stamps.items():
            if generation not in seen:
                figures.missed += 1
                continue
            latency = seen[generation] - start
            figures.latencies.append(latency)
            figures.ratios.append(latency / duration)
            figures.after_return.append(seen[generation] - returned)
    return figures


def _end(side: _Side) -> None:
    """Observers ended (killed by their pid if still running), board closed, keys deleted."""
    for process in side.observers:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=RESULT_TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()
    side.board.close()
    if side.redis_base is not None and side.prefix is not None:
        redis_forget(side.redis_base, side.prefix)
