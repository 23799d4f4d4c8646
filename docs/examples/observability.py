"""Metrics and traces of switches: prometheus-client and OpenTelemetry, both optional."""

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest

from dbswap import Switchboard

board = Switchboard.from_env()
registry = CollectorRegistry()  # or None: prometheus-client's default registry
board.enable_metrics(registry)  # or DBSWAP_METRICS=1; pip install 'dbswap[metrics]'

exporter = InMemorySpanExporter()  # your app's exporter (OTLP...) in real life
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
board.enable_tracing(tracer_provider=provider)  # or DBSWAP_TRACING=1; pip install 'dbswap[otel]'

board.use("production", user="alice")
print([span.name for span in exporter.get_finished_spans()])  # the check, then the switch
metrics = generate_latest(registry).decode()
print([line for line in metrics.splitlines() if line.startswith("dbswap_switches_total")])
board.use("local")  # as it was: the next example starts on local
board.close()
