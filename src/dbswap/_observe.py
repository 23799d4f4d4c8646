"""What a board reports besides its audit file: a log record per switch attempt, spans, metrics.

The board calls in here at three points, none of them on a session's hot path:
every audit line (``ObservedAuditLog.record``), every ``use()``
(``observed_switch``) and every health check (``observed_check``). Log records
are always made; spans (``_tracing``, OpenTelemetry) and metrics
(``dbswap.metrics``, prometheus-client) only when on, and their libraries are
imported only then. Sessions reach the metrics through one class attribute of
their own (``PinnedSession._dbswap_count``), set when metrics are enabled.

Which logger carries what:

- ``dbswap.switch``: one record per switch attempt (and per ``recovered``,
  ``restored`` or ``expired`` line), its fields as ``dbswap_*`` attributes (``extra``), for
  structlog and JSON handlers. INFO, WARNING when refused or failed.
- ``dbswap.audit`` (``_audit.py``): the audit file's JSON line as the message,
  ``dbswap run`` lines included, for whoever ships the trail as text.
- ``dbswap``: dbswap's own warnings and errors.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar, cast

from . import _tracing
from ._audit import AuditLog
from ._errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from ._health import Health
    from ._switchboard import Switchboard
    from ._targets import Target
    from .metrics import BoardMetrics

logger = logging.getLogger("dbswap")
switch_logger = logging.getLogger("dbswap.switch")
# For apps that configure logging: without a handler anywhere, Python would print the
# WARNING ones on stderr, beside the error the caller (the CLI) already reports.
switch_logger.addHandler(logging.NullHandler())

F = TypeVar("F", bound=Callable[..., Any])
SessionCounter = Callable[[str], None]

_ATTEMPTS_OK = frozenset({"ok", "noop", "recovered", "restored", "expired"})  # INFO; else WARNING
# Lines about a commit the running use() did not make: an event of its span, not its fields.
_NOT_ATTEMPTS = frozenset({"recovered", "restored", "expired"})
_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})
# The span of the use() running in this context, which its audit line annotates.
_switch_span: ContextVar[Span | None] = ContextVar("dbswap_switch_span", default=None)


def mode_of(read_only: object) -> str:
    return "read-only" if read_only else "read-write"


class Observer:
    """One board's instrumentation settings: metrics (None: off) and tracing."""

    def __init__(self) -> None:
        self.metrics: BoardMetrics | None = None
        self.tracing = _tracing.TracingSettings()

    @property
    def count_session(self) -> SessionCounter | None:
        """What pinned sessions call with their target (None when metrics are off)."""
        return self.metrics.count_session if self.metrics is not None else None

    def recorded(self, entry: Mapping[str, Any]) -> None:
        """An audit line was written: log it, annotate the running switch's span, count it."""
        if entry.get("outcome") in ("run-started", "run", "preview", "preview-ended"):
            return  # not switches: their lines are on dbswap.audit only
        try:
            _log(entry)
            span = _switch_span.get()
            if span is not None:
                _tracing.annotate(span, entry, entry.get("outcome") in _NOT_ATTEMPTS)
            if self.metrics is not None:
                self.metrics.recorded(entry)
        except Exception as exc:  # instrumentation must never change what a switch does
            logger.warning("instrumenting a switch failed: %s", type(exc).__name__)

    def committed(self) -> None:
        """A state was committed (after its audit line): the gauges show it."""
        if self.metrics is not None:
            try:
                self.metrics.refresh()
            except Exception as exc:  # instrumentation must never change what a switch does
                logger.warning("instrumenting a switch failed: %s", type(exc).__name__)

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.stop()


class ObservedAuditLog(AuditLog):
    """The audit log, telling the board's observer about every line it writes."""

    def __init__(self, *args: Any, observer: Observer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.observer = observer

    def record(self, **fields: Any) -> dict[str, Any]:
        entry = super().record(**fields)
        self.observer.recorded(entry)
        return entry


def _log(entry: Mapping[str, Any]) -> None:
    """One record on ``dbswap.switch``; the entry is the audit line: masked, printable."""
    outcome = entry.get("outcome")
    level = logging.INFO if outcome in _ATTEMPTS_OK else logging.WARNING
    if not switch_logger.isEnabledFor(level):
        return
    read_only = entry.get("read_only")
    reason = entry.get("reason")
    switch_logger.log(
        level,
        "switch %s -> %s: %s%s",
        entry.get("from") or "-",
        entry.get("to"),
        outcome,
        f" ({reason})" if reason else "",
        extra={
            "dbswap_outcome": outcome,
            "dbswap_target": entry.get("to"),
            "dbswap_previous": entry.get("from"),
            "dbswap_generation": entry.get("generation"),
            "dbswap_duration_ms": entry.get("duration_ms"),
            "dbswap_user": entry.get("user"),
            "dbswap_reason": reason,
            "dbswap_read_only": read_only,
            "dbswap_mode": mode_of(read_only) if read_only is not None else None,
        },
    )


def observed_switch(use: F) -> F:
    """``Switchboard.use`` inside a ``dbswap.switch`` span, when tracing is on."""

    @functools.wraps(use)
    def traced_use(board: Switchboard, *args: Any, **kwargs: Any) -> Any:
        tracer = board._observer.tracing.tracer()
        if tracer is None:
            return use(board, *args, **kwargs)
        with tracer.start_as_current_span("dbswap.switch") as span:
            token = _switch_span.set(span)
            try:
                return use(board, *args, **kwargs)
            finally:
                _switch_span.reset(token)

    return cast(F, traced_use)


def observed_check(check: F) -> F:
    """``Switchboard._check`` timed for the metrics, in a ``dbswap.health_check`` span."""

    @functools.wraps(check)
    def observed(board: Switchboard, target: Target, *args: Any, **kwargs: Any) -> Health:
        observer = board._observer
        tracer = observer.tracing.tracer()
        started = time.perf_counter()
        if tracer is None:
            health: Health = check(board, target, *args, **kwargs)
        else:
            with _tracing.health_span(tracer, target) as span:
                health = check(board, target, *args, **kwargs)
                _tracing.health_outcome(span, health)
        if observer.metrics is not None:
            observer.metrics.checked(target.name, health.ok, time.perf_counter() - started)
        return health

    return cast(F, observed)


def configure_from_env(board: Switchboard, env: Mapping[str, str]) -> None:
    """``DBSWAP_METRICS`` and ``DBSWAP_TRACING``, for ``Switchboard.from_env()``."""
    metrics, tracing = _flag(env, "DBSWAP_METRICS"), _flag(env, "DBSWAP_TRACING")
    try:
        if tracing is not None:
            board.enable_tracing(tracing)
        if metrics:
            try:
                board.enable_metrics()
            except ImportError:
                raise ConfigError(
                    "DBSWAP_METRICS=1 needs prometheus-client: pip install 'dbswap[metrics]'"
                ) from None
    except BaseException:
        board.close()  # its state store may run a thread: nothing of it may outlive the error
        raise


def _flag(env: Mapping[str, str], name: str) -> bool | None:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return None
    if raw in _TRUE or raw in _FALSE:
        return raw in _TRUE
    raise ConfigError(f"{name} must be 1 or 0 (true/false, yes/no, on/off), not {raw[:20]!r}")
