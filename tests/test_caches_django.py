"""Django's cache follows the switch: a value cached on one target is never served on another.

The project of ``tests/django_project`` (``django_urls``, see ``djangohelpers``):
``local`` (the ``default`` alias) is a SQLite file, ``production`` a PostgreSQL
database, and Django's default cache (``LocMemCache``: the project configures
none). ``/cached-items`` caches a query with the low-level API
(``cache.get_or_set``), ``/cached-page`` is a whole page under ``cache_page``.
The project has no cache code of dbswap's: ``INSTALLED_APPS`` keys the caches.
Switches are made by the real CLI in another process, as an operator would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dbswap
from djangohelpers import django_board, reset_rows

pytestmark = pytest.mark.postgres

PREVIEW, PAGE = "/api/admin/database/preview", "/admin/configuration"
CACHED = ("/cached-items", "/cached-page")
LOCAL = {"alias": "default", "labels": ["local-1"]}
PRODUCTION = {"alias": "production", "labels": ["prod-1", "prod-2"]}


@pytest.fixture(scope="module")
def urls(django_urls: dict[str, str]) -> dict[str, str]:
    return django_urls


@pytest.fixture
def board(urls: dict[str, str], tmp_path: Path) -> Iterator[dbswap.Switchboard]:
    from django.core.cache import caches

    targets = {k: v for k, v in urls.items() if k != "staging"}
    with django_board(targets, tmp_path / "rt") as board:
        for cache in caches.all():
            cache.clear()  # LocMemCache lives as long as the process: start empty
        yield board
    for cache in caches.all():
        cache.clear()


def _client(username: str | None = None) -> Any:
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    if username is not None:
        client.force_login(User.objects.db_manager("default").get(username=username))
    return client


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


def test_a_value_cached_on_local_is_never_served_on_production_and_comes_back_on_local(
    board: dbswap.Switchboard, urls: dict[str, str]
) -> None:
    app = _client()
    for path in CACHED:
        assert app.get(path).json() == LOCAL  # cached now, while local is active

    cli(board, urls, "use", "production", "--yes")
    for path in CACHED:
        assert app.get(path).json() == PRODUCTION, path
    reset_rows(urls["production"], ["prod-1", "prod-2", "prod-3"])
    for path in CACHED:  # production's own values are cached: the cache still works
        assert app.get(path).json() == PRODUCTION, path

    cli(board, urls, "use", "local")
    for path in CACHED:  # local's cached values, never production's
        assert app.get(path).json() == LOCAL, path


def _start_preview(client: Any, target: str) -> None:
    page = client.get(PAGE)
    assert page.status_code == 200, page.content
    token = re.search(
        r'<meta name="dbswap-csrf" content="([A-Za-z0-9]{64})">', page.content.decode()
    )
    assert token is not None
    response = client.post(
        PREVIEW,
        json.dumps({"target": target}),
        content_type="application/json",
        headers={"X-CSRF-Token": token.group(1)},
    )
    assert response.status_code == 200, response.content


def test_an_admins_preview_reads_the_previewed_targets_cache_and_leaves_the_others(
    board: dbswap.Switchboard, urls: dict[str, str]
) -> None:
    visitor, alice = _client(), _client("alice")
    for path in CACHED:
        assert visitor.get(path).json() == LOCAL  # cached while local is active

    _start_preview(alice, "production")
    for path in CACHED:
        assert alice.get(path).json() == PRODUCTION, path  # never local's cached value
        assert visitor.get(path).json() == LOCAL, path  # and the preview's stays hers
    assert board.active == "local"

    reset_rows(urls["local"], ["local-1", "local-2"])
    alice.delete(PREVIEW)
    for path in CACHED:
        assert alice.get(path).json() == LOCAL, path  # local's cached value again


def test_sessions_and_shared_caches_follow_the_settings(board: dbswap.Switchboard) -> None:
    """Cached sessions are keyed per target when logins are bound to their target, and
    shared by every target when identity is (a login then holds on every target); the
    aliases of DBSWAP_SHARED_CACHES are shared."""
    from django.core.cache import cache, caches
    from django.test import override_settings

    import dbswap.django

    def keys(key: str, of: Any = cache) -> set[str]:
        found = set()
        for target in ("local", "production"):
            with dbswap.django.pinned(target):
                found.add(of.make_key(key))
        return found

    session = "django.contrib.sessions.cacheabc123"
    assert keys("prices") == {"@local:1:prices", "@production:1:prices"}
    assert len(keys(session)) == 2
    with override_settings(DBSWAP_SHARED_IDENTITY=True):
        assert len(keys("prices")) == 2 and len(keys(session)) == 1
    with override_settings(DBSWAP_SHARED_CACHES=["default"]):
        assert keys("prices", caches.create_connection("default")) == {":1:prices"}
