"""Closed-loop HTTP load on the fleet, with or without a switch every 100 ms.

Adapted from ``tests/test_fleet.py::run_load``: ``clients`` threads, each on
its own keep-alive ``http.client`` connection, send ``GET /read`` back to
back; a switcher posts ``/switch`` on a fixed 100 ms cadence, each switch on
its own thread, so a slow switch never delays the next one. Every loop is
bounded in time; a phase never lasts more than ``seconds`` plus the time
to join its threads.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field

from ._gunicorn import request

SWITCH_EVERY = 0.1  # seconds
TARGETS = ("production", "local")
JOIN_TIMEOUT = 30.0  # seconds; a client waits at most its socket timeout (10 s)
MAX_REQUESTS = 1_000_000  # per client and phase: a bound beside the clock


@dataclass
class Phase:
    """What one load phase did; ``seconds`` is from the start barrier to the stop."""

    switching: bool
    seconds: float = 0.0
    ok: int = 0  # 200 answers, all of them (correctness counts every request)
    counted: int = 0  # 200 answers completed before the phase ended (throughput)
    failed: int = 0
    wrong_target: int = 0  # 200 answers whose label is not the pinned target's
    switches: int = 0
    switch_failed: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests

    @property
    def per_second(self) -> float:
        return self.counted / self.seconds if self.seconds > 0 else 0.0


def run_phase(port: int, seconds: float, clients: int, switching: bool, rid: str) -> Phase:
    """``clients`` readers for ``seconds``; request ids are ``{rid}-{client}-{n}``."""
    phase = Phase(switching)
    lock = threading.Lock()
    stop = threading.Event()
    barrier = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        latencies: list[float] = []
        ok = counted = failed = wrong = n = 0
        try:
            barrier.wait(JOIN_TIMEOUT)
        except threading.BrokenBarrierError:
            stop.set()
        while not stop.is_set() and n < MAX_REQUESTS:
            n += 1
            started = time.perf_counter()
            try:
                conn.request("GET", f"/read?rid={rid}-{index}-{n}")
                response = conn.getresponse()
                body = json.loads(response.read())
                good = response.status == 200
                wrong += int(good and body["label"] != body["pinned"])
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                good = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            if good:
                ok += 1
                if not stop.is_set():  # in-flight answers after the stop do not count
                    counted += 1
                    latencies.append(time.perf_counter() - started)
            else:
                failed += 1
        conn.close()
        with lock:
            phase.ok += ok
            phase.counted += counted
            phase.failed += failed
            phase.wrong_target += wrong
            phase.latencies += latencies

    def switch(target: str) -> None:
        try:
            request(port, f"/switch?target={target}", "POST")
            key = "switches"
        except (OSError, http.client.HTTPException, RuntimeError, ValueError):
            key = "switch_failed"
        with lock:
            setattr(phase, key, getattr(phase, key) + 1)

    threads = [
        threading.Thread(target=client, args=(i,), name=f"bench-client-{i}") for i in range(clients)
    ]
    switchers: list[threading.Thread] = []
    try:
        for thread in threads:
            thread.start()
        barrier.wait(JOIN_TIMEOUT)
        started = time.perf_counter()
        for tick in range(int(seconds / SWITCH_EVERY + 1e-9)):  # a fixed cadence
            time.sleep(max(0.0, started + (tick + 1) * SWITCH_EVERY - time.perf_counter()))
            if switching:
                worker = threading.Thread(target=switch, args=(TARGETS[tick % 2],), daemon=True)
                worker.start()
                switchers.append(worker)
        time.sleep(max(0.0, started + seconds - time.perf_counter()))
        phase.seconds = time.perf_counter() - started
    finally:
        stop.set()  # whatever happened, every client ends
        for thread in threads + switchers:
            thread.join(JOIN_TIMEOUT)
    return phase
