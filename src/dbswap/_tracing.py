"""OpenTelemetry spans: ``dbswap.switch`` per ``use()``, ``dbswap.health_check`` per check.

dbswap imports OpenTelemetry only when told to trace (``board.enable_tracing()``,
``DBSWAP_TRACING=1``), or when the app has imported it already (then the spans
go to the app's tracer provider, and cost next to nothing without an SDK).
Without ``opentelemetry-api`` installed, nothing happens and nothing is imported.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from ._health import Health
    from ._targets import Target

TRACER_NAME = "dbswap"
_API = "opentelemetry.trace"


class TracingSettings:
    """``enabled``: True, False, or None (trace when the app has imported OpenTelemetry)."""

    def __init__(self) -> None:
        self.enabled: bool | None = None
        self.provider: TracerProvider | None = None
        self._tracer: Tracer | None = None

    def set(self, enabled: bool, provider: TracerProvider | None = None) -> None:
        if enabled:
            try:
                import opentelemetry.trace  # noqa: F401  (fails early, with the fix)
            except ImportError:
                raise ConfigError(
                    "tracing needs opentelemetry-api: pip install 'dbswap[otel]'"
                ) from None
        self.enabled, self.provider, self._tracer = enabled, provider, None

    def tracer(self) -> Tracer | None:
        """The tracer to use now, or None (tracing off: no import, no span)."""
        if self.enabled is False or (self.enabled is None and _API not in sys.modules):
            return None
        tracer = self._tracer
        if tracer is None:
            from opentelemetry import trace

            from . import __version__

            # A proxy while the app has set no provider: it follows one set later.
            provider = self.provider or trace.get_tracer_provider()
            tracer = self._tracer = provider.get_tracer(TRACER_NAME, __version__)
        return tracer


def annotate(span: Span, entry: Mapping[str, Any], other_commit: bool) -> None:
    """The switch span gets its audit line's fields (masked there); the line of a commit
    it did not make, written during it (``recovered``, ``expired``), is an event of it."""
    attributes = {
        "dbswap.outcome": entry.get("outcome"),
        "dbswap.target": entry.get("to"),
        "dbswap.previous_target": entry.get("from"),
        "dbswap.generation": entry.get("generation"),
        "dbswap.reason": entry.get("reason"),
    }
    if entry.get("read_only") is not None:
        attributes["dbswap.mode"] = "read-only" if entry["read_only"] else "read-write"
    shown = {key: value for key, value in attributes.items() if value is not None}
    if other_commit:
        span.add_event(f"dbswap.{entry.get('outcome')}", shown)
    else:
        span.set_attributes(shown)


@contextmanager
def health_span(tracer: Tracer, target: Target) -> Iterator[Span]:
    attributes = {"dbswap.target": target.name, "db.system": target.dialect}
    with tracer.start_as_current_span("dbswap.health_check", attributes=attributes) as span:
        yield span


def health_outcome(span: Span, health: Health) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("dbswap.ok", health.ok)
    if health.latency_ms is not None:
        span.set_attribute("dbswap.latency_ms", health.latency_ms)
    if not health.ok:  # the reason is one masked line (see _health)
        span.set_status(Status(StatusCode.ERROR, health.error or "health check failed"))
