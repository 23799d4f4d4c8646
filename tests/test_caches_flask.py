"""Flask-Caching follows the switch: a value cached on one target is never served on another.

A real Flask app with Flask-SQLAlchemy and Flask-Caching (``SimpleCache``, in the
process; ``RedisCache`` on the machine's Redis), and no cache code of dbswap's:
``DBSwap(app)`` keys the caches, whether ``Cache`` was initialised before it or
after. ``local`` is a SQLite file, ``production`` a PostgreSQL database, each
with table ``items``. Switches are made by the real CLI in another process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, request
from flask_caching import Cache
from flask_sqlalchemy import SQLAlchemy

import dbswap
from dbhelpers import seed
from dbswap.flask import DBSwap, Forbidden, NotAuthenticated, Session

pytestmark = pytest.mark.postgres

ALICE = {"Authorization": "Bearer alice-cache-t0ken"}
PREVIEW = "/api/admin/database/preview"
PATHS = ("/view", "/memoized", "/low-level")
LOCAL = {"target": "local", "labels": ["local-1"]}
PRODUCTION = {"target": "production", "labels": ["prod-1", "prod-2"]}


def authorize() -> str:
    if request.headers.get("Authorization") == ALICE["Authorization"]:
        return "alice"
    if "Authorization" in request.headers:
        raise Forbidden()
    raise NotAuthenticated()


def make_app(board: dbswap.Switchboard, config: dict[str, Any], cache_first: bool) -> Flask:
    db = SQLAlchemy(session_options={"class_": Session})
    cache = Cache(config=config)
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "flask-cache-secret-0123456789"
    if cache_first:
        cache.init_app(app)
    DBSwap(app, db=db, board=board, authorize=authorize)
    if not cache_first:
        cache.init_app(app)

    def read() -> dict[str, Any]:
        rows = db.session.scalars(sa.text("SELECT label FROM items ORDER BY id"))
        return {"target": db.session().dbswap_target, "labels": list(rows)}

    @cache.memoize(300)
    def memoized() -> dict[str, Any]:
        return read()

    @app.get("/view")
    @cache.cached(300)
    def view() -> dict[str, Any]:
        return read()

    @app.get("/memoized")
    def memo() -> dict[str, Any]:
        return memoized()

    @app.get("/low-level")
    def low_level() -> dict[str, Any]:
        found = cache.get("labels")
        if found is None:
            found = read()
            cache.set("labels", found)
        return dict(found)

    return app


@pytest.fixture
def urls(sqlite_url: Callable[[str], str], pg_url: Callable[[str], str]) -> dict[str, str]:
    result = {"local": sqlite_url("local"), "production": pg_url("production")}
    seed(result["local"], ["local-1"])
    seed(result["production"], ["prod-1", "prod-2"])
    return result


@pytest.fixture
def board(urls: dict[str, str], tmp_path: Path) -> Iterator[dbswap.Switchboard]:
    board = dbswap.Switchboard(urls, runtime_dir=tmp_path / "rt")
    yield board
    board.dispose()


BACKENDS = {
    "simple": lambda: {"CACHE_TYPE": "SimpleCache"},
    "redis": lambda: {
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": "redis://127.0.0.1:6379/0",
        "CACHE_KEY_PREFIX": f"dbswap-test-{uuid.uuid4().hex[:8]}-",
    },
}


@pytest.fixture(
    params=[
        ("simple", True),
        ("simple", False),
        pytest.param(("redis", False), marks=pytest.mark.redis),
    ],
    ids=["simple-cache-first", "simple-dbswap-first", "redis"],
)
def app(request: pytest.FixtureRequest, board: dbswap.Switchboard) -> Iterator[Flask]:
    backend, cache_first = request.param
    app = make_app(board, BACKENDS[backend](), cache_first)
    yield app
    with app.app_context():
        for cache in app.extensions["cache"].values():
            cache.clear()


def cli(board: dbswap.Switchboard, urls: dict[str, str], *args: str) -> None:
    """``dbswap ARGS`` in another process, on the board's runtime dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DBSWAP_"))}
    env |= {
        "DATABASE_URL_LOCAL": urls["local"],
        "DATABASE_URL_PRODUCTION": urls["production"],
        "DBSWAP_RUNTIME_DIR": str(board.runtime_dir),
        "DBSWAP_TEST_GUARD": os.environ.get("DBSWAP_TEST_GUARD", ""),
    }
    done = subprocess.run(
        [sys.executable, "-m", "dbswap", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def reset(url: str, labels: list[str]) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM items"))
            for i, label in enumerate(labels, start=1):
                conn.execute(sa.text("INSERT INTO items VALUES (:i, :l)"), {"i": i, "l": label})
    finally:
        engine.dispose()


def test_a_value_cached_on_local_is_never_served_on_production_and_comes_back_on_local(
    app: Flask, board: dbswap.Switchboard, urls: dict[str, str]
) -> None:
    client = app.test_client()
    for path in PATHS:
        assert client.get(path).get_json() == LOCAL  # cached now, while local is active

    cli(board, urls, "use", "production", "--yes")
    for path in PATHS:
        assert client.get(path).get_json() == PRODUCTION, path
    reset(urls["production"], ["prod-1", "prod-2", "prod-3"])
    for path in PATHS:  # production's own values are cached: the cache still works
        assert client.get(path).get_json() == PRODUCTION, path

    cli(board, urls, "use", "local")
    for path in PATHS:  # local's cached values, never production's
        assert client.get(path).get_json() == LOCAL, path


def test_an_admins_preview_reads_the_previewed_targets_cache_and_leaves_the_others(
    app: Flask, board: dbswap.Switchboard, urls: dict[str, str]
) -> None:
    visitor, alice = app.test_client(), app.test_client()
    for path in PATHS:
        assert visitor.get(path).get_json() == LOCAL  # cached while local is active

    started = alice.post(PREVIEW, json={"target": "production"}, headers=ALICE)
    assert started.status_code == 200, started.text
    for path in PATHS:
        assert alice.get(path, headers=ALICE).get_json() == PRODUCTION, path
        assert visitor.get(path).get_json() == LOCAL, path  # the preview's stays hers
    assert board.active == "local"

    reset(urls["local"], ["local-1", "local-2"])
    assert alice.delete(PREVIEW, headers=ALICE).status_code == 200
    for path in PATHS:
        assert alice.get(path, headers=ALICE).get_json() == LOCAL, path
