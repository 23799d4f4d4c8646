"""Keep-alive browsers on several servers at once, interleaved request by request.

This machine's speed drifts by tens of percent within a second, so the servers
are not loaded in turn, phase after phase: each client keeps one keep-alive
``http.client`` connection, and one cookie jar, per server (so Django's
session middleware finds the visitor's session there, as a browser's would),
and sends its requests in rounds: one request to every server, in a shuffled
order, all for the same page; the pages go round (the index, which writes
the session, the book list, a book's page). A drift therefore weighs on every
server alike, and every server sees the same mix of pages.

``tick``, if given, is called on the calling thread at ``offset + k * every``
seconds (the switches). Requests that begin before ``warmup`` seconds are
not timed (failures count everywhere). Every loop is bounded in time.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie

PAGES = ("index", "list", "detail")
BOOKS = 20  # the seeded books have ids 1..BOOKS in every database
JOIN_TIMEOUT = 30.0  # seconds; a client waits at most its socket timeout (10 s)
MAX_ROUNDS = 1_000_000  # per client: a bound beside the clock

Tick = Callable[[int], None]
"""Called with 0, 1, 2, ...: the k-th event of the run."""


@dataclass
class Sample:
    page: str
    seconds: float
    round: tuple[int, int]  # (client, round): the same for every server's request of a round


@dataclass
class Load:
    """What every server answered: timed samples, and counts over the whole run."""

    samples: dict[str, list[Sample]]
    ok: dict[str, int]
    failed: dict[str, int]
    seconds: float = 0.0  # of the timed part
    ticks: list[float] = field(default_factory=list)  # seconds each tick() took


def _path(page: str, n: int) -> str:
    if page == "index":
        return "/catalog/"
    if page == "list":
        return "/catalog/books/"
    return f"/catalog/book/{1 + n % BOOKS}"


class Browser:
    """One keep-alive connection and its cookies (set, replaced and deleted as sent)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def get(self, path: str) -> bool:
        """Whether ``GET path`` answered 200 (a transport error: reconnect, False)."""
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        try:
            self.conn.request("GET", path, headers=headers if self.cookies else {})
            response = self.conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            return False
        for header in response.msg.get_all("Set-Cookie") or ():
            for name, morsel in SimpleCookie(header).items():
                if morsel.value and morsel["max-age"] != "0":
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        return response.status == 200

    def close(self) -> None:
        self.conn.close()


def run(
    ports: Mapping[str, int],
    *,
    seconds: float,
    warmup: float,
    clients: int,
    tick: Tick | None = None,
    every: float = 1.0,
    offset: float = 0.5,
) -> Load:
    """``clients`` closed-loop browsers on every server, ``warmup + seconds`` in all."""
    names = list(ports)
    load = Load({n: [] for n in names}, dict.fromkeys(names, 0), dict.fromkeys(names, 0))
    lock = threading.Lock()
    stop = threading.Event()
    barrier = threading.Barrier(clients + 1)
    started = timed = 0.0  # set before the barrier releases the clients

    def client(index: int) -> None:
        browsers = {name: Browser(port) for name, port in ports.items()}
        samples: dict[str, list[Sample]] = {n: [] for n in names}
        ok, failed = dict.fromkeys(names, 0), dict.fromkeys(names, 0)
        order = list(names)
        shuffle = random.Random(index).shuffle
        try:
            barrier.wait(JOIN_TIMEOUT)
        except threading.BrokenBarrierError:
            stop.set()
        for n in range(MAX_ROUNDS):
            if stop.is_set():
                break
            page = PAGES[(n + index) % len(PAGES)]  # the clients are not in step
            path = _path(page, n // len(PAGES) + index)
            shuffle(order)
            for name in order:
                sent = time.perf_counter()
                good = browsers[name].get(path)
                elapsed = time.perf_counter() - sent
                if not good:
                    failed[name] += 1
                    continue
                ok[name] += 1
                if sent >= timed and not stop.is_set():  # after the stop: not timed
                    samples[name].append(Sample(page, elapsed, (index, n)))
        for browser in browsers.values():
            browser.close()
        with lock:
            for name in names:
                load.samples[name] += samples[name]
                load.ok[name] += ok[name]
                load.failed[name] += failed[name]

    threads = [
        threading.Thread(target=client, args=(i,), name=f"bench-browser-{i}")
        for i in range(clients)
    ]
    try:
        for thread in threads:
            thread.start()
        started = time.perf_counter()
        timed = started + warmup
        barrier.wait(JOIN_TIMEOUT)
        k = 0
        while tick is not None and offset + k * every < warmup + seconds:  # a fixed cadence
            time.sleep(max(0.0, started + offset + k * every - time.perf_counter()))
            before = time.perf_counter()
            tick(k)
            load.ticks.append(time.perf_counter() - before)
            k += 1
        time.sleep(max(0.0, started + warmup + seconds - time.perf_counter()))
        load.seconds = time.perf_counter() - started - warmup
    finally:
        stop.set()  # whatever happened, every client ends
        for thread in threads:
            thread.join(JOIN_TIMEOUT)
    return load
