"""``GET /healthz/database`` in every adapter, and the metrics routes beside it.

200 ``{"target", "ok": true}`` while the active target answers, 503 with a
generic reason once its SQLite file is gone or its PostgreSQL database dropped;
the answer is cached, so a storm of probes makes one or two checks (counted
with the health-check metric); no answer holds a URL, a path or a secret.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from flask import Flask
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

import dbswap
from dbhelpers import PG_ADMIN
from dbswap.fastapi import ops_router
from dbswap.flask import DBSwap
from webhelpers import live_server

READY = "/healthz/database"
PASSWORD = "S3cretPw9"


@pytest.fixture
def board(sqlite_url: Callable[[str], str], tmp_path: Path) -> Iterator[dbswap.Switchboard]:
    board = dbswap.Switchboard(
        {
            "local": sqlite_url("local"),
            "production": sqlite_url("production"),
            "reporting": f"postgresql://app:{PASSWORD}@127.0.0.1:1/reports",
        },
        runtime_dir=tmp_path / "rt",
    )
    yield board
    board.close()


@pytest.fixture
def registry(board: dbswap.Switchboard) -> CollectorRegistry:
    """The board's metrics in a registry of this test's own: they count the checks."""
    registry = CollectorRegistry()
    board.enable_metrics(registry)
    return registry


def checks(registry: CollectorRegistry, target: str = "local", outcome: str = "ok") -> int:
    value = registry.get_sample_value(
        "dbswap_health_check_duration_seconds_count", {"target": target, "outcome": outcome}
    )
    return int(value or 0)


def remove_file(board: dbswap.Switchboard, name: str) -> None:
    database = board.targets[name].sa_url.database
    assert database is not None
    os.remove(database)


def assert_says_nothing_secret(body: Any, board: dbswap.Switchboard) -> None:
    text = str(body)
    assert "://" not in text and PASSWORD not in text and str(board.runtime_dir.parent) not in text


def fastapi_app(board: dbswap.Switchboard, **options: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(ops_router(board, **options))
    return app


# -- FastAPI ---------------------------------------------------------------------------


def test_fastapi_answers_200_then_503_once_the_file_is_gone(
    board: dbswap.Switchboard, registry: CollectorRegistry
) -> None:
    with TestClient(fastapi_app(board, cache_seconds=0)) as client:
        response = client.get(READY)
        assert response.status_code == 200
        assert response.json() == {"target": "local", "ok": True}
        assert response.headers["cache-control"] == "no-store"
        remove_file(board, "local")
        response = client.get(READY)
        assert response.status_code == 503
        body = response.json()
        assert body == {
            "target": "local",
            "ok": False,
            "reason": "the active database did not answer its check",
        }
        assert_says_nothing_secret(body, board)
        board.use("production")  # a healthy target again: ready again, without waiting
        assert client.get(READY).json() == {"target": "production", "ok": True}
    assert (checks(registry, "local", "ok"), checks(registry, "local", "failed")) == (1, 1)


def test_fastapi_caches_the_answer(board: dbswap.Switchboard, registry: CollectorRegistry) -> None:
    with TestClient(fastapi_app(board, cache_seconds=60)) as client:
        assert client.get(READY).status_code == 200
        remove_file(board, "local")
        assert client.get(READY).status_code == 200  # the cached answer, no new check
        assert checks(registry) == 1


def test_a_storm_of_probes_makes_one_or_two_checks(
    board: dbswap.Switchboard, registry: CollectorRegistry
) -> None:
    """200 concurrent probes over real HTTP: all answered, the database checked once or twice."""

    async def storm(url: str) -> list[int]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
            responses = await asyncio.gather(*(client.get(READY) for _ in range(200)))
        return [r.status_code for r in responses]

    with live_server(fastapi_app(board, cache_seconds=2)) as url:
        statuses = asyncio.run(storm(url))
    assert statuses == [200] * 200
    assert 1 <= checks(registry) <= 2


@pytest.mark.postgres
def test_fastapi_answers_503_once_the_postgresql_database_is_dropped(
    pg_url: Callable[[str], str], tmp_path: Path
) -> None:
    url = pg_url("ready")
    board = dbswap.Switchboard(
        {"local": url, "production": f"sqlite:///{tmp_path / 'p.db'}"},
        runtime_dir=tmp_path / "rt",
    )
    try:
        with TestClient(fastapi_app(board, cache_seconds=0)) as client:
            assert client.get(READY).json() == {"target": "local", "ok": True}
            admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                name = sa.make_url(url).database
                conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            admin.dispose()
            response = client.get(READY)
            assert response.status_code == 503
            assert_says_nothing_secret(response.json(), board)
            assert "dbswap_" not in response.text  # not even the database's name
    finally:
        board.close()


def test_fastapi_serves_the_metrics_only_when_asked(
    board: dbswap.Switchboard, registry: CollectorRegistry
) -> None:
    with TestClient(fastapi_app(board)) as client:
        assert client.get("/metrics").status_code == 404
    with TestClient(fastapi_app(board, metrics=True, readiness=False)) as client:
        assert client.get(READY).status_code == 404
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert 'dbswap_active_target{mode="read-write",target="local"} 1.0' in response.text
        assert_says_nothing_secret(response.text, board)
    assert board._observer.metrics is not None
    assert board._observer.metrics.registry is registry  # kept where the app put them


def test_the_demo_serves_readiness_and_metrics(tmp_path: Path) -> None:
    from dbswap.demo import create_app, demo_board

    board = demo_board(tmp_path / "demo", environ={})
    try:
        with TestClient(create_app(board, admin_password="pw")) as client:
            assert client.get(READY).json() == {"target": "local", "ok": True}
            metrics = client.get("/metrics")
            assert metrics.status_code == 200 and "dbswap_sessions_total" in metrics.text
    finally:
        dbswap.metrics.disable(board)
        board.close()


# -- Flask -----------------------------------------------------------------------------


def flask_app(board: dbswap.Switchboard, **options: Any) -> Flask:
    app = Flask(__name__)
    DBSwap(app, board=board, **options)
    return app


def test_flask_answers_200_then_503_and_caches(
    board: dbswap.Switchboard, registry: CollectorRegistry
) -> None:
    client = flask_app(board, readiness=True, readiness_cache=0).test_client()
    response = client.get(READY)
    assert (response.status_code, response.get_json()) == (200, {"target": "local", "ok": True})
    remove_file(board, "local")
    response = client.get(READY)
    assert response.status_code == 503 and response.get_json()["ok"] is False
    assert_says_nothing_secret(response.get_data(as_text=True), board)

    sqlite3.connect(board.targets["local"].sa_url.database or "").close()  # back, empty
    cached = flask_app(board, readiness=True, readiness_cache=60).test_client()
    assert cached.get(READY).status_code == 200
    remove_file(board, "local")
    assert cached.get(READY).status_code == 200  # cached
    assert checks(registry, "local", "ok") == 2 and checks(registry, "local", "failed") == 1


def test_flask_serves_the_metrics_only_when_asked(
    board: dbswap.Switchboard, registry: CollectorRegistry
) -> None:
    off = flask_app(board).test_client()
    assert off.get(READY).status_code == 404 and off.get("/metrics").status_code == 404
    client = flask_app(board, metrics=True, metrics_path="/ops/metrics").test_client()
    board.use("production")
    response = client.get("/ops/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'dbswap_switches_total{outcome="ok"} 1.0' in text
    assert_says_nothing_secret(text, board)


# -- Django ----------------------------------------------------------------------------


@pytest.fixture
def django_board(
    django_urls: dict[str, str], board: dbswap.Switchboard
) -> Iterator[dbswap.Switchboard]:
    from dbswap.django import set_board

    set_board(board)
    yield board
    set_board(None)


def django_settings(**values: Any) -> Any:
    from django.test import override_settings

    return override_settings(**values)


@pytest.mark.postgres
def test_django_answers_200_then_503_and_caches(
    django_board: dbswap.Switchboard, registry: CollectorRegistry
) -> None:
    from django.test import Client

    client = Client()
    assert client.get(READY).status_code == 404  # off by default
    with django_settings(DBSWAP_READINESS=True, DBSWAP_READINESS_CACHE=0):
        response = client.get(READY)
        assert (response.status_code, response.json()) == (200, {"target": "local", "ok": True})
        remove_file(django_board, "local")
        response = client.get(READY)
        assert response.status_code == 503
        assert_says_nothing_secret(response.content.decode(), django_board)
    assert checks(registry, "local", "failed") == 1


@pytest.mark.postgres
def test_django_caches_the_answer_and_serves_metrics_behind_a_setting(
    django_board: dbswap.Switchboard, registry: CollectorRegistry
) -> None:
    from django.test import Client

    from dbswap.django import _ops

    _ops._readiness_of = None  # a fresh cache for this board and these settings
    client = Client()
    assert client.get("/metrics").status_code == 404
    with django_settings(DBSWAP_READINESS=True, DBSWAP_READINESS_CACHE=60, DBSWAP_METRICS=True):
        assert client.get(READY).status_code == 200
        remove_file(django_board, "local")
        assert client.get(READY).status_code == 200  # cached
        metrics = client.get("/metrics")
    _ops._readiness_of = None
    assert metrics.status_code == 200 and metrics["Content-Type"].startswith("text/plain")
    assert checks(registry) == 1
    assert_says_nothing_secret(metrics.content.decode(), django_board)
