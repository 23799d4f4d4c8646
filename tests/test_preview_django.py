"""Personal previews in Django: ``DBSwapMiddleware`` pins a previewing admin's requests.

The project of ``tests/django_project`` (``django_urls``, see ``djangohelpers``):
``local`` (the ``default`` alias) is a SQLite file, ``production`` a PostgreSQL
database. alice is staff (an admin), bob is not. A preview is started with the
page's CSRF token, as the admin page does.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

import dbswap
import dbswap.django
from dbhelpers import labels
from dbswap._preview import COOKIE_NAME, Preview, Previews
from djangohelpers import django_board

pytestmark = pytest.mark.postgres

PREVIEW, STATUS, PAGE = "/api/admin/database/preview", "/api/admin/database", "/admin/configuration"


@pytest.fixture(scope="module")
def urls(django_urls: dict[str, str]) -> dict[str, str]:
    return django_urls


@pytest.fixture
def board(urls: dict[str, str], tmp_path: Path) -> Iterator[dbswap.Switchboard]:
    with django_board({k: v for k, v in urls.items() if k != "staging"}, tmp_path / "rt") as board:
        yield board


def _client(username: str | None = None) -> Any:
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    if username is not None:
        client.force_login(User.objects.db_manager("default").get(username=username))
    return client


def _start(client: Any, **body: Any) -> Any:
    page = client.get(PAGE)
    assert page.status_code == 200, page.content
    html = page.content.decode()
    assert 'data-preview-url="/api/admin/database/preview"' in html
    token = re.search(r'<meta name="dbswap-csrf" content="([A-Za-z0-9]{64})">', html)
    assert token is not None
    response = client.post(
        PREVIEW,
        json.dumps(body),
        content_type="application/json",
        headers={"X-CSRF-Token": token.group(1)},
    )
    assert response.status_code == 200, response.content
    return response


def _previews() -> Previews:
    from dbswap.django._preview import _previews

    return _previews()


def _cleared(response: Any) -> bool:
    morsel = response.cookies.get(COOKIE_NAME)
    return morsel is not None and morsel.value == "" and str(morsel["max-age"]) == "0"


def snapshot(board: dbswap.Switchboard) -> tuple[dbswap.State, bytes | None]:
    path = Path(board.runtime_dir) / "db-target.json"
    return board.state, path.read_bytes() if path.exists() else None


def test_a_preview_pins_only_its_admins_requests_and_switches_nothing(
    board: dbswap.Switchboard,
) -> None:
    before = snapshot(board)
    alice = _client("alice")
    no_token = alice.post(
        PREVIEW, json.dumps({"target": "production"}), content_type="application/json"
    )
    assert no_token.status_code == 403 and board.history(None) == []
    body = _start(alice, target="production").json()
    assert (body["target"], body["readOnly"], body["user"]) == ("production", True, "alice")
    assert alice.get("/items").json() == {"alias": "production", "labels": ["prod-1", "prod-2"]}
    # Her login was made on local: the app does not take it on production (anonymous).
    assert alice.get("/whoami").json() == {"user": None, "alias": "production"}
    assert alice.get(STATUS).json()["target"] == "local"
    assert alice.get(PREVIEW).json()["preview"]["target"] == "production"
    assert _client().get("/items").json()["alias"] == "default"
    assert _client("bob").get("/items").json()["alias"] == "default"
    assert snapshot(board) == before and board.active == "local"

    stopped = alice.delete(PREVIEW)
    assert stopped.status_code == 200 and stopped.json()["stopped"] is True
    assert _cleared(stopped)
    assert alice.get("/items").json()["alias"] == "default"
    assert alice.get("/whoami").json() == {"user": "alice", "alias": "default"}  # kept
    assert snapshot(board) == before
    assert [(e["outcome"], e["user"], e["to"], e["generation"]) for e in board.history(None)] == [
        ("preview-ended", "alice", "production", None),
        ("preview", "alice", "production", None),
    ]


def test_production_previews_refuse_writes_unless_asked_otherwise(
    board: dbswap.Switchboard, urls: dict[str, str]
) -> None:
    alice = _client("alice")
    _start(alice, target="production")
    refused = alice.post("/items/add", {"label": "sneaky"})
    assert refused.status_code == 409 and "read-only" in refused.json()["error"]
    assert labels(urls["production"]) == ["prod-1", "prod-2"]
    _start(alice, target="production", readOnly=False)
    assert alice.post("/items/add", {"label": "allowed"}).json() == {"alias": "production"}
    assert labels(urls["production"]) == ["prod-1", "prod-2", "allowed"]
    assert labels(urls["local"]) == ["local-1"]


def test_two_clients_under_load_each_land_on_their_own_target(
    board: dbswap.Switchboard, urls: dict[str, str]
) -> None:
    """A previewing admin and an ordinary client, 100 requests each at once: 0 wrong rows."""
    from django.core.wsgi import get_wsgi_application
    from django.db import connections

    alice = _client("alice")
    _start(alice, target="production", readOnly=False)
    cookies = {
        "admin": {k: alice.cookies[k].value for k in ("sessionid", COOKIE_NAME)},
        "other": {},
    }
    expected = {"admin": "production", "other": "default"}
    before = snapshot(board)
    connections.close_all()
    server = make_server("127.0.0.1", 0, get_wsgi_application(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    wrong: list[tuple[str, int, object]] = []
    barrier = threading.Barrier(2)

    def run(name: str) -> None:
        base = f"http://127.0.0.1:{server.server_port}"
        with httpx.Client(base_url=base, cookies=cookies[name], timeout=30) as http:
            barrier.wait()
            for n in range(100):
                if n % 2:
                    seen = http.get("/items").json()["alias"]
                else:
                    seen = http.post("/items/add", data={"label": f"{name}-{n}"}).json()["alias"]
                if seen != expected[name]:
                    wrong.append((name, n, seen))

    try:
        workers = [threading.Thread(target=run, args=(name,)) for name in expected]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
        assert not any(worker.is_alive() for worker in workers)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert wrong == []
    production, local = labels(urls["production"]), labels(urls["local"])
    assert sorted(x for x in production if "-" in x and not x.startswith("prod")) == sorted(
        f"admin-{n}" for n in range(0, 100, 2)
    )
    assert sorted(x for x in local if x != "local-1") == sorted(
        f"other-{n}" for n in range(0, 100, 2)
    )
    assert snapshot(board) == before and board.active == "local"


FORGED: dict[str, Callable[[Previews, str], str]] = {
    "tampered signature": lambda p, real: real[:-2] + ("AA" if not real.endswith("AA") else "BB"),
    "expired": lambda p, real: p.sign(Preview("alice", "production", True, time.time() - 1)),
    "another admin's": lambda p, real: p.sign(
        Preview("carol", "production", True, time.time() + 600)
    ),
    "unknown target": lambda p, real: p.sign(Preview("alice", "nowhere", True, time.time() + 600)),
}


@pytest.mark.parametrize("kind", list(FORGED))
def test_a_forged_expired_or_foreign_cookie_is_ignored_and_cleared(
    board: dbswap.Switchboard, kind: str
) -> None:
    alice = _client("alice")
    real = _start(alice, target="production").cookies[COOKIE_NAME].value
    before = snapshot(board), board.history(None)
    alice.cookies[COOKIE_NAME] = FORGED[kind](_previews(), real)
    response = alice.get("/items")
    assert response.json()["alias"] == "default" and _cleared(response)
    assert (snapshot(board), board.history(None)) == before


def test_a_cookie_copied_to_a_non_admins_browser_does_nothing(board: dbswap.Switchboard) -> None:
    alice = _client("alice")
    real = _start(alice, target="production").cookies[COOKIE_NAME].value
    for other in (_client("bob"), _client()):
        other.cookies[COOKIE_NAME] = real
        response = other.get("/items")
        assert response.json()["alias"] == "default" and _cleared(response)
    assert alice.get("/items").json()["alias"] == "production"


def test_under_asgi_an_async_view_of_a_previewing_admin_reads_the_preview(
    board: dbswap.Switchboard,
) -> None:
    """process_view runs in a thread under ASGI: its pin still reaches the async view."""
    import asyncio

    from django.test import AsyncClient

    alice = _client("alice")
    _start(alice, target="production")
    cookies = {k: alice.cookies[k].value for k in ("sessionid", COOKIE_NAME)}

    async def scenario() -> tuple[Any, Any]:
        admin, anybody = AsyncClient(), AsyncClient()
        for key, value in cookies.items():
            admin.cookies[key] = value
        return await admin.get("/async-items"), await anybody.get("/async-items")

    mine, theirs = asyncio.run(scenario())
    assert mine.json() == {"alias": "production", "labels": ["prod-1", "prod-2"]}
    assert theirs.json() == {"alias": "default", "labels": ["local-1"]}


def test_a_write_a_read_only_preview_refuses_is_a_409_advising_a_writable_preview(
    board: dbswap.Switchboard, urls: dict[str, str]
) -> None:
    """The view does not catch ``ReadOnlyTarget``: the middleware answers 409, never 500,
    in JSON for a JSON client and as a page for a browser's form."""
    from html import unescape

    alice = _client("alice")
    _start(alice, target="production")
    body = json.dumps({"label": "sneaky"})
    refused = alice.post("/api/items", body, content_type="application/json")
    assert refused.status_code == 409
    answer = refused.json()
    assert (answer["error"], answer["target"], answer["preview"]) == (
        "read_only",
        "production",
        True,
    )
    assert "your preview of 'production' is read-only" in answer["message"]
    assert '"readOnly": false' in answer["message"] and "--writable" not in answer["message"]
    page = alice.post("/api/items", {"label": "sneaky"}, headers={"Accept": "text/html"})
    assert page.status_code == 409 and page["Content-Type"].startswith("text/html")
    assert "your preview of 'production' is read-only" in unescape(page.content.decode())
    assert labels(urls["production"]) == ["prod-1", "prod-2"]
    assert labels(urls["local"]) == ["local-1"]
