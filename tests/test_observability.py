"""Logs, spans and metrics of switches; the target a Core connection is on.

In process, on SQLite files: one ``dbswap.switch`` record per attempt (caplog),
OpenTelemetry spans (the SDK's in-memory exporter), prometheus-client samples
read from a registry of the test's own. ``tests/test_prometheus.py`` scrapes
the same metrics with a real Prometheus server, under gunicorn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry, generate_latest

import dbswap
import dbswap.metrics

PASSWORD = "S3cretPw9"
UNREACHABLE = f"postgresql://app:{PASSWORD}@127.0.0.1:1/nothing"  # refused at once


@pytest.fixture
def board(sqlite_url: Callable[[str], str], tmp_path: Path) -> Iterator[dbswap.Switchboard]:
    board = dbswap.Switchboard(
        {
            "local": sqlite_url("local"),
            "production": sqlite_url("production"),
            "reporting": UNREACHABLE,
        },
        runtime_dir=tmp_path / "rt",
    )
    yield board
    board.close()


@pytest.fixture
def registry(board: dbswap.Switchboard) -> CollectorRegistry:
    registry = CollectorRegistry()
    board.enable_metrics(registry)
    return registry


@pytest.fixture
def spans(board: dbswap.Switchboard) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    board.enable_tracing(tracer_provider=provider)
    return exporter


def remove(board: dbswap.Switchboard, name: str) -> None:
    database = board.targets[name].sa_url.database
    assert database is not None
    os.remove(database)


def switch_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "dbswap.switch"]


# -- logs ----------------------------------------------------------------------------


def test_every_switch_attempt_is_one_record_with_its_fields(
    board: dbswap.Switchboard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dbswap")
    board.use("production", user="alice")
    board.use("production", user="alice")
    with pytest.raises(dbswap.UnknownTarget):
        board.use("nowhere", user="bob")
    remove(board, "local")
    with pytest.raises(dbswap.TargetUnavailable):
        board.use("local", user="carol", read_only=True)

    ok, noop, refused, failed = switch_records(caplog)
    assert (ok.levelno, noop.levelno, refused.levelno, failed.levelno) == (
        logging.INFO,
        logging.INFO,
        logging.WARNING,
        logging.WARNING,
    )
    fields = {
        key: getattr(ok, key)
        for key in (
            "dbswap_outcome",
            "dbswap_target",
            "dbswap_previous",
            "dbswap_generation",
            "dbswap_user",
            "dbswap_reason",
            "dbswap_mode",
            "dbswap_read_only",
        )
    }
    assert fields == {
        "dbswap_outcome": "ok",
        "dbswap_target": "production",
        "dbswap_previous": "local",
        "dbswap_generation": 1,
        "dbswap_user": "alice",
        "dbswap_reason": None,
        "dbswap_mode": "read-write",
        "dbswap_read_only": False,
    }
    assert isinstance(ok.dbswap_duration_ms, float) and ok.dbswap_duration_ms > 0
    assert ok.getMessage() == "switch local -> production: ok"
    assert (noop.dbswap_outcome, noop.dbswap_generation) == ("noop", 1)
    assert (refused.dbswap_outcome, refused.dbswap_target) == ("refused", "nowhere")
    assert refused.dbswap_reason == "unknown target" and refused.dbswap_mode is None
    assert (failed.dbswap_outcome, failed.dbswap_mode, failed.dbswap_user) == (
        "failed",
        "read-only",
        "carol",
    )
    assert "does not exist" in failed.dbswap_reason

    # dbswap.audit keeps the audit file's JSON line, one per attempt: the same facts, as text.
    audit = [json.loads(r.getMessage()) for r in caplog.records if r.name == "dbswap.audit"]
    assert [line["outcome"] for line in audit] == ["ok", "noop", "refused", "failed"]
    assert not any(
        hasattr(r, "dbswap_outcome") for r in caplog.records if r.name != "dbswap.switch"
    )


def test_the_records_are_masked(
    board: dbswap.Switchboard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dbswap")
    with pytest.raises(dbswap.TargetUnavailable):
        board.use("reporting", user="alice", timeout=2)
    (record,) = switch_records(caplog)
    assert record.dbswap_outcome == "failed" and record.dbswap_reason
    shown = json.dumps({k: v for k, v in vars(record).items() if k.startswith("dbswap_")})
    assert PASSWORD not in shown and PASSWORD not in record.getMessage()


def test_a_dbswap_run_line_is_not_a_switch_record(
    board: dbswap.Switchboard, caplog: pytest.LogCaptureFixture, registry: CollectorRegistry
) -> None:
    caplog.set_level(logging.INFO, logger="dbswap")
    board.record_run("production", "alembic", "alice")
    board.record_run("production", "alembic", "alice", exit_code=0, duration=0.5)
    assert switch_records(caplog) == []
    assert [r.name for r in caplog.records] == ["dbswap.audit", "dbswap.audit"]
    for outcome in ("run-started", "run"):
        assert registry.get_sample_value("dbswap_switches_total", {"outcome": outcome}) is None


# -- spans ---------------------------------------------------------------------------


def test_a_switch_is_one_span_with_its_health_check_as_a_child(
    board: dbswap.Switchboard, spans: InMemorySpanExporter
) -> None:
    board.use("production", user="alice", read_only=True)
    check, switch = spans.get_finished_spans()
    assert (switch.name, check.name) == ("dbswap.switch", "dbswap.health_check")
    assert switch.instrumentation_scope is not None
    assert switch.instrumentation_scope.name == "dbswap"
    assert check.parent is not None and check.parent.span_id == switch.context.span_id
    assert dict(switch.attributes or {}) == {
        "dbswap.outcome": "ok",
        "dbswap.target": "production",
        "dbswap.previous_target": "local",
        "dbswap.generation": 1,
        "dbswap.mode": "read-only",
    }
    assert switch.status.status_code == StatusCode.UNSET
    attributes = dict(check.attributes or {})
    assert attributes["dbswap.target"] == "production" and attributes["db.system"] == "sqlite"
    assert attributes["dbswap.ok"] is True and attributes["dbswap.latency_ms"] >= 0

    spans.clear()
    board.use("production", read_only=True)  # already there: a span, no check
    (noop,) = spans.get_finished_spans()
    assert noop.attributes is not None and noop.attributes["dbswap.outcome"] == "noop"


def test_a_failed_switch_records_its_error_on_both_spans(
    board: dbswap.Switchboard, spans: InMemorySpanExporter
) -> None:
    with pytest.raises(dbswap.TargetUnavailable):
        board.use("reporting", timeout=2)
    check, switch = spans.get_finished_spans()
    assert check.status.status_code == StatusCode.ERROR
    assert switch.status.status_code == StatusCode.ERROR
    assert switch.attributes is not None and switch.attributes["dbswap.outcome"] == "failed"
    (event,) = switch.events
    assert event.name == "exception" and event.attributes is not None
    assert event.attributes["exception.type"].endswith("TargetUnavailable")
    for span in (check, switch):
        shown = json.dumps(
            [span.status.description, dict(span.attributes or {})]
            + [dict(e.attributes or {}) for e in span.events]
        )
        assert PASSWORD not in shown


def test_tracing_turned_off_makes_no_span(
    board: dbswap.Switchboard, spans: InMemorySpanExporter
) -> None:
    board.enable_tracing(False)
    board.use("production")
    assert spans.get_finished_spans() == ()


def test_board_check_and_refusals_are_traced_too(
    board: dbswap.Switchboard, spans: InMemorySpanExporter
) -> None:
    board.check("local")
    with pytest.raises(dbswap.UnknownTarget):
        board.use("nowhere")
    check, refused = spans.get_finished_spans()
    assert check.name == "dbswap.health_check" and check.parent is None
    assert refused.attributes is not None and refused.attributes["dbswap.outcome"] == "refused"
    assert refused.status.status_code == StatusCode.ERROR


def run_python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | env,
    )


def test_nothing_is_imported_unless_asked_and_opentelemetry_may_be_missing(
    tmp_path: Path,
) -> None:
    """Installed but unused: no import. Missing: switches work, and asking says what to install."""
    setup = f"""
        import sys
        import sqlalchemy as sa
        import dbswap
        urls = {{"local": "sqlite:///{tmp_path}/l.db", "production": "sqlite:///{tmp_path}/p.db"}}
        for url in urls.values():
            sa.create_engine(url).connect().close()
        env = {{f"DATABASE_URL_{{k.upper()}}": v for k, v in urls.items()}}
        env["DBSWAP_RUNTIME_DIR"] = "{tmp_path}/rt"
    """
    unused = run_python(
        setup
        + """
        board = dbswap.Switchboard.from_env(env)
        board.use("production")
        with board.sessionmaker()() as s:
            s.execute(sa.text("SELECT 1"))
        board.check()
        try:
            board.use("nowhere")  # a WARNING record, for apps that configured logging
        except dbswap.UnknownTarget:
            pass
        print(sorted(m for m in ("opentelemetry", "prometheus_client") if m in sys.modules))
        """,
        tmp_path,
    )
    assert unused.returncode == 0, unused.stderr
    assert unused.stdout.strip() == "[]"
    assert unused.stderr == ""  # unconfigured logging prints no switch record

    missing = run_python(
        setup
        + """
        sys.modules["opentelemetry"] = None  # as in an install without opentelemetry-api
        board = dbswap.Switchboard.from_env(env)
        print(board.use("production").target)
        try:
            dbswap.Switchboard.from_env(env | {"DBSWAP_TRACING": "1"})
        except dbswap.ConfigError as exc:
            print(exc)
        """,
        tmp_path,
    )
    assert missing.returncode == 0, missing.stderr
    assert missing.stdout.splitlines() == [
        "production",
        "tracing needs opentelemetry-api: pip install 'dbswap[otel]'",
    ]


def test_spans_follow_an_app_that_uses_opentelemetry_itself(tmp_path: Path) -> None:
    """The default: once the app has imported OpenTelemetry, switches go to its provider."""
    done = run_python(
        f"""
        import sqlalchemy as sa
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import dbswap

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        urls = {{"local": "sqlite:///{tmp_path}/l.db", "production": "sqlite:///{tmp_path}/p.db"}}
        for url in urls.values():
            sa.create_engine(url).connect().close()
        board = dbswap.Switchboard(urls, runtime_dir="{tmp_path}/rt")
        with trace.get_tracer("app").start_as_current_span("request"):
            board.use("production")
        print(" ".join(span.name for span in exporter.get_finished_spans()))
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["dbswap.health_check", "dbswap.switch", "request"]


# -- metrics -------------------------------------------------------------------------


async def select_one_async(board: dbswap.Switchboard) -> Any:
    """One async session's statement; the target its connection is labelled with."""
    async with board.async_sessionmaker()() as session:
        await session.execute(sa.text("SELECT 1"))
        conn = await session.connection()
        target = conn.info["dbswap_target"]
    await board.adispose()
    return target


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_switches_are_counted_by_outcome_and_timed(
    board: dbswap.Switchboard, registry: CollectorRegistry
) -> None:
    for outcome in ("ok", "noop", "refused", "failed"):  # every series from the start
        assert sample(registry, "dbswap_switches_total", outcome=outcome) == 0
    board.use("production")
    board.use("production")
    with pytest.raises(dbswap.UnknownTarget):
        board.use("nowhere")
    with pytest.raises(dbswap.TargetUnavailable):
        board.use("reporting", timeout=2)
    counts = {
        o: sample(registry, "dbswap_switches_total", outcome=o)
        for o in ("ok", "noop", "refused", "failed")
    }
    assert counts == {"ok": 1, "noop": 1, "refused": 1, "failed": 1}
    assert sample(registry, "dbswap_switch_duration_seconds_count", outcome="ok") == 1
    assert sample(registry, "dbswap_switch_duration_seconds_sum", outcome="ok") > 0
    checks = {
        (t, o): sample(registry, "dbswap_health_check_duration_seconds_count", target=t, outcome=o)
        for t, o in (("production", "ok"), ("reporting", "failed"))
    }
    assert checks == {("production", "ok"): 1, ("reporting", "failed"): 1}


def test_the_gauges_show_the_active_target_mode_generation_and_lock(
    board: dbswap.Switchboard, registry: CollectorRegistry
) -> None:
    def active() -> list[tuple[str, str]]:
        return [
            (t, m)
            for t in board.targets
            for m in ("read-write", "read-only")
            if sample(registry, "dbswap_active_target", target=t, mode=m) == 1
        ]

    assert active() == [("local", "read-write")]
    assert sample(registry, "dbswap_generation") == 0
    board.use("production", read_only=True)
    assert active() == [("production", "read-only")]
    assert sample(registry, "dbswap_active_target", target="local", mode="read-write") == 0
    assert sample(registry, "dbswap_generation") == 1
    assert sample(registry, "dbswap_locked") == 0
    age = sample(registry, "dbswap_state_age_seconds")
    assert age is not None and 0 <= age < 1


def test_another_process_switching_shows_within_a_second(
    board: dbswap.Switchboard, registry: CollectorRegistry, sqlite_url: Callable[[str], str]
) -> None:
    """The gauges follow the shared state without an event here: the refresh thread."""
    other = dbswap.Switchboard(
        {name: t.url for name, t in board.targets.items()}, runtime_dir=board.runtime_dir
    )
    try:
        other.use("production")
    finally:
        other.close()
    deadline = time.monotonic() + 5
    while sample(registry, "dbswap_generation") != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sample(registry, "dbswap_active_target", target="production", mode="read-write") == 1


def test_the_production_lock_shows_as_locked(
    tmp_path: Path, sqlite_url: Callable[[str], str]
) -> None:
    board = dbswap.Switchboard(
        {"local": sqlite_url("local"), "production": sqlite_url("production")},
        runtime_dir=tmp_path / "rt",
        production_lock=True,
    )
    try:
        registry = CollectorRegistry()
        board.enable_metrics(registry)
        assert sample(registry, "dbswap_locked") == 1
        assert sample(registry, "dbswap_active_target", target="production", mode="read-write") == 1
    finally:
        board.close()


def test_sessions_are_counted_per_target(
    board: dbswap.Switchboard, registry: CollectorRegistry
) -> None:
    Session = board.sessionmaker()
    for _ in range(3):  # the fast path
        with Session() as s:
            s.execute(sa.text("SELECT 1"))
    with Session(expire_on_commit=False) as s:  # arguments: the slow path
        s.execute(sa.text("SELECT 1"))
        s.close()
        s.execute(sa.text("SELECT 1"))  # used again after close(): pinned again
    board.use("production")
    with board.session_class() as s:
        s.execute(sa.text("SELECT 1"))
    asyncio.run(select_one_async(board))
    dbswap.metrics.exposition(board)  # sessions are added up once a second, and before this
    assert sample(registry, "dbswap_sessions_total", target="local") == 5
    assert sample(registry, "dbswap_sessions_total", target="production") == 2
    assert sample(registry, "dbswap_sessions_total", target="reporting") == 0


def test_off_sessions_carry_no_counter_and_on_then_off_again(board: dbswap.Switchboard) -> None:
    Session = board.sessionmaker()
    assert Session.class_._dbswap_count is None  # the hot path's one check finds None
    registry = CollectorRegistry()
    board.enable_metrics(registry)
    assert Session.class_._dbswap_count is not None
    assert board.enable_metrics(registry) is board._observer.metrics  # idempotent
    Session().close()
    dbswap.metrics.disable(board)
    assert Session.class_._dbswap_count is None
    Session().close()
    assert sample(registry, "dbswap_sessions_total", target="local") == 1


def test_every_metric_is_dbswaps_and_none_holds_a_url_or_a_secret(
    board: dbswap.Switchboard, registry: CollectorRegistry
) -> None:
    with pytest.raises(dbswap.TargetUnavailable):
        board.use("reporting", timeout=2)
    board.use("production")
    with board.sessionmaker()() as s:
        s.execute(sa.text("SELECT 1"))
    text = generate_latest(registry).decode()
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert names and all(name.startswith("dbswap_") for name in names), names
    assert "://" not in text and PASSWORD not in text and str(board.runtime_dir) not in text
    labels = {
        part.split("=")[0]
        for line in text.splitlines()
        if "{" in line and not line.startswith("#")
        for part in line[line.index("{") + 1 : line.index("}")].split(",")
    }
    assert labels <= {"target", "outcome", "mode", "le"}
    body, content_type = dbswap.metrics.exposition(board)
    assert content_type.startswith("text/plain") and b"dbswap_active_target" in body


def test_dbswap_metrics_and_tracing_come_from_the_environment(
    sqlite_url: Callable[[str], str], tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL_LOCAL": sqlite_url("local"),
        "DATABASE_URL_PRODUCTION": sqlite_url("production"),
        "DBSWAP_RUNTIME_DIR": str(tmp_path / "rt"),
    }
    board = dbswap.Switchboard.from_env(env | {"DBSWAP_METRICS": "1", "DBSWAP_TRACING": "on"})
    try:
        assert board._observer.metrics is not None
        assert board._observer.tracing.enabled is True
    finally:
        dbswap.metrics.disable(board)
        board.close()
    off = dbswap.Switchboard.from_env(env | {"DBSWAP_METRICS": "0", "DBSWAP_TRACING": "0"})
    assert off._observer.metrics is None and off._observer.tracing.enabled is False
    off.close()
    with pytest.raises(dbswap.ConfigError, match="DBSWAP_METRICS must be 1 or 0"):
        dbswap.Switchboard.from_env(env | {"DBSWAP_METRICS": "maybe"})


# -- a Core connection knows its target ----------------------------------------------


def test_a_core_connection_tells_which_target_it_is_on(board: dbswap.Switchboard) -> None:
    def info() -> tuple[Any, Any]:
        with board.engine.connect() as conn:
            return conn.info["dbswap_target"], conn.info["dbswap_read_only"]

    assert info() == ("local", False)
    board.use("production")
    assert info() == ("production", False)
    board.use("production", read_only=True)
    assert info() == ("production", True)
    board.use("local")
    assert info() == ("local", False)  # a pooled connection from before, still labelled
    with board.sessionmaker()() as s:
        assert s.connection().info["dbswap_target"] == s.dbswap_target == "local"
    assert asyncio.run(select_one_async(board)) == "local"


def test_flask_sqlalchemy_sessions_are_counted_too(
    board: dbswap.Switchboard, registry: CollectorRegistry
) -> None:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    from dbswap.flask import DBSwap, Session

    db = SQLAlchemy(session_options={"class_": Session})
    app = Flask(__name__)
    DBSwap(app, db=db, board=board)

    @app.get("/")
    def read() -> str:
        return str(db.session.execute(sa.text("SELECT 1")).scalar())

    client = app.test_client()
    for _ in range(2):
        assert client.get("/").status_code == 200
    dbswap.metrics.exposition(board)
    assert sample(registry, "dbswap_sessions_total", target="local") == 2
