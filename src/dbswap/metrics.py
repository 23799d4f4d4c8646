"""Prometheus metrics of a board (``pip install 'dbswap[metrics]'``: prometheus-client).

Off by default. On with ``board.enable_metrics()`` (or ``enable(board)``),
``DBSWAP_METRICS=1`` for ``Switchboard.from_env()``, or an adapter's
``metrics=True``. The metrics live in prometheus-client's default registry
unless another is given, so an app that already exposes that registry
exposes them too; ``exposition(board)`` is what dbswap's own routes serve.

Under gunicorn (several processes), set ``PROMETHEUS_MULTIPROC_DIR`` for every
process before they start, and mark dead workers in ``child_exit`` (see the
README): counters and histograms then add up across processes, and each gauge
says how its values combine (``multiprocess_mode``). A thread per process keeps
the gauges current (once a second), so every process's view reaches the files,
not only that of the process answering the scrape.

Labels carry target names, outcomes and modes only: never a URL or a secret.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

try:
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        generate_latest,
    )
    from prometheus_client.multiprocess import MultiProcessCollector
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"dbswap.metrics needs prometheus-client ({exc.name} is not installed): "
        "pip install 'dbswap[metrics]'"
    ) from None

from ._observe import mode_of

if TYPE_CHECKING:
    from ._switchboard import Switchboard

__all__ = ["CONTENT_TYPE_LATEST", "BoardMetrics", "disable", "enable", "exposition"]

REFRESH_SECONDS = 1.0  # how stale a process's gauges may be
MODES = ("read-write", "read-only")
OUTCOMES = ("ok", "noop", "refused", "failed")  # shown at 0 from the start; others when seen
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_NO_DURATION = frozenset({"recovered", "restored"})  # lines about an earlier commit


class _Families:
    """The metric objects of one registry (a name may be registered once per registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.active = Gauge(
            "dbswap_active_target",
            "1 for the target and mode sessions created now use, else 0",
            ["target", "mode"],
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.generation = Gauge(
            "dbswap_generation",
            "Generation of the committed state (one more per committed switch)",
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.locked = Gauge(
            "dbswap_locked",
            "1 while the production lock (DBSWAP_ENV=production) refuses every switch",
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.state_age = Gauge(
            "dbswap_state_age_seconds",
            "Seconds since this process last confirmed the shared state (worst live process)",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.switches = Counter(
            "dbswap_switches",
            "Switch attempts by outcome (one per audit line, dbswap run excepted)",
            ["outcome"],
            registry=registry,
        )
        self.switch_seconds = Histogram(
            "dbswap_switch_duration_seconds",
            "Duration of use(), health check included, by outcome",
            ["outcome"],
            registry=registry,
            buckets=SECONDS_BUCKETS,
        )
        self.check_seconds = Histogram(
            "dbswap_health_check_duration_seconds",
            "Duration of health checks (switches, board.check(), readiness) by target and outcome",
            ["target", "outcome"],
            registry=registry,
            buckets=SECONDS_BUCKETS,
        )
        self.sessions = Counter(
            "dbswap_sessions",
            "Sessions pinned, by target (a closed session used again pins again)",
            ["target"],
            registry=registry,
        )


_families: dict[int, tuple[CollectorRegistry, _Families]] = {}
_families_lock = threading.Lock()


def _families_of(registry: CollectorRegistry) -> _Families:
    with _families_lock:
        known = _families.get(id(registry))
        if known is None or known[0] is not registry:
            known = _families[id(registry)] = (registry, _Families(registry))
        return known[1]


class _SessionCounter:
    """Called by every pinned session with its target; ``flush()`` adds the counts up.

    A session only advances an ``itertools.count`` (~50 ns, atomic under the GIL);
    prometheus-client's ``inc()`` (~0.5 us, more in multiprocess mode) runs in
    ``flush()``, once a second and before every exposition.
    """

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._counts: dict[str, itertools.count[int]] = {}
        # Per target: (sessions already added to the counter, next() calls made by flush())
        self._flushed: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def __call__(self, target: str) -> None:
        count = self._counts.get(target)
        if count is None:
            count = self._counts.setdefault(target, itertools.count())
        next(count)

    def flush(self) -> None:
        with self._lock:
            for target, count in list(self._counts.items()):
                added, own = self._flushed.get(target, (0, 0))
                sessions = next(count) - own  # next() returns every call made before it
                if sessions > added:
                    self._counter.labels(target=target).inc(sessions - added)
                self._flushed[target] = (sessions, own + 1)


class BoardMetrics:
    """One board's metrics, in ``registry``. Made by ``enable()``."""

    def __init__(self, board: Switchboard, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._families = families = _families_of(registry)
        self._board = weakref.ref(board)
        self._targets = tuple(board.targets)
        self._confirmed = time.monotonic()
        self.count_session = _SessionCounter(families.sessions)
        for target in self._targets:  # every series exists from the start, at 0
            families.sessions.labels(target=target)
        for outcome in OUTCOMES:
            families.switches.labels(outcome=outcome)
        self.refresh()

    def recorded(self, entry: Mapping[str, Any]) -> None:
        """An audit line: count its outcome and time the attempt. (The gauges follow the
        state: a commit refreshes them, right after its line, and the thread each second.)"""
        outcome = str(entry.get("outcome"))
        self._families.switches.labels(outcome=outcome).inc()
        duration = entry.get("duration_ms")
        if outcome not in _NO_DURATION and isinstance(duration, (int, float)):
            self._families.switch_seconds.labels(outcome=outcome).observe(duration / 1000)

    def checked(self, target: str, ok: bool, seconds: float) -> None:
        outcome = "ok" if ok else "failed"
        self._families.check_seconds.labels(target=target, outcome=outcome).observe(seconds)

    def refresh(self) -> None:
        """Add up the sessions, and set the gauges from the board's state as this process
        sees it now (the refresh thread does this every second)."""
        self.count_session.flush()
        board = self._board()
        if board is None:
            return
        families = self._families
        try:
            state = board.state  # reads the shared state when due: that is confirming it
            confirmed = board.state_problem is None
            locked = board.lock_reason is not None
        except Exception:  # e.g. Redis down and no state known yet: the age grows
            families.state_age.set(time.monotonic() - self._confirmed)
            return
        now = time.monotonic()
        if confirmed:
            self._confirmed = now
        active = (state.target, mode_of(state.read_only))
        for target in self._targets:
            for mode in MODES:
                families.active.labels(target=target, mode=mode).set(
                    1 if (target, mode) == active else 0
                )
        families.generation.set(state.generation)
        families.locked.set(1 if locked else 0)
        families.state_age.set(now - self._confirmed)

    def start(self) -> None:
        _refresher.add(self)

    def stop(self) -> None:
        _refresher.discard(self)


def enable(board: Switchboard, registry: CollectorRegistry | None = None) -> BoardMetrics:
    """Turn ``board``'s metrics on, in ``registry`` (default: prometheus-client's ``REGISTRY``).

    Idempotent for the same registry. Sessions count from now on.
    """
    registry = REGISTRY if registry is None else registry
    observer = board._observer
    current = observer.metrics
    if current is not None and current.registry is registry:
        return current
    if current is not None:
        current.stop()
    metrics = BoardMetrics(board, registry)
    observer.metrics = metrics
    _set_session_counter(board, metrics.count_session)
    metrics.start()
    return metrics


def disable(board: Switchboard) -> None:
    """Turn ``board``'s metrics off (the series already exported stay in the registry)."""
    observer = board._observer
    _set_session_counter(board, None)
    if observer.metrics is not None:
        observer.metrics.stop()
        observer.metrics.count_session.flush()  # the sessions counted so far stay counted
        observer.metrics = None


def _set_session_counter(board: Switchboard, counter: Callable[[str], None] | None) -> None:
    # On the board's pinned classes; the classes made from them (class_=...) inherit it.
    for cls in board._session_classes:
        if cls is not None:
            cls._dbswap_count = counter


def exposition(board: Switchboard | None = None) -> tuple[bytes, str]:
    """The text a ``/metrics`` route answers, and its content type.

    ``board``'s gauges are refreshed first. With ``PROMETHEUS_MULTIPROC_DIR``
    set, the values of every process (prometheus-client's MultiProcessCollector);
    else ``board``'s registry (default: ``REGISTRY``).
    """
    metrics = board._observer.metrics if board is not None else None
    if metrics is not None:
        metrics.refresh()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # prometheus-client's own variable
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = metrics.registry if metrics is not None else REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Refresher:
    """One daemon thread per process refreshes every enabled board's gauges."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: weakref.WeakSet[BoardMetrics] = weakref.WeakSet()
        self._thread: threading.Thread | None = None

    def add(self, metrics: BoardMetrics) -> None:
        with self._lock:
            self._metrics.add(metrics)
            self._start()

    def discard(self, metrics: BoardMetrics) -> None:
        with self._lock:
            self._metrics.discard(metrics)

    def _start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        thread = threading.Thread(target=self._run, name="dbswap-metrics", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # interpreter shutdown: gauges refresh on events and scrapes only
            return
        self._thread = thread

    def _run(self) -> None:
        while True:
            time.sleep(REFRESH_SECONDS)
            with self._lock:
                every = list(self._metrics)
                if not every:
                    self._thread = None
                    return
            for metrics in every:
                with contextlib.suppress(Exception):  # a board torn down meanwhile: go on
                    metrics.refresh()

    def _after_fork_in_child(self) -> None:
        # A worker forked from a master that had enabled metrics: its own thread, its own files.
        self._lock = threading.Lock()
        self._thread = None
        if len(self._metrics):
            self._start()


_refresher = _Refresher()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_refresher._after_fork_in_child)
