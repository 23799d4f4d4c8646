"""``dbswap.django``: the ORM follows the switch, pinned per request; admin views; command.

Django is configured once per run (``django_urls``, see ``djangohelpers``), with the project in
``tests/django_project`` (settings built by ``databases_from_env()``): ``local``
(the ``default`` alias) is a SQLite file, ``production`` a PostgreSQL
database, ``staging`` a SQLite file that lacks migrations. Each test gets a
fresh board (its own runtime dir) and fresh rows.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

import dbswap
import dbswap.django
from dbhelpers import labels, tables
from djangohelpers import (
    PROJECT,
    ROWS,
    create_pg_database,
    django_board,
    drop_pg_database,
    reset_rows,
)

pytestmark = pytest.mark.postgres

SWITCH, STATUS, HISTORY, PAGE = (
    "/api/admin/database/switch",
    "/api/admin/database",
    "/api/admin/database/history",
    "/admin/configuration",
)


@pytest.fixture(scope="module")
def urls(django_urls: dict[str, str]) -> dict[str, str]:
    return django_urls


@pytest.fixture
def board(urls: dict[str, str], tmp_path: Path) -> Iterator[dbswap.Switchboard]:
    with django_board(urls, tmp_path / "rt") as board:
        yield board


def _client(username: str | None = None) -> Any:
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    if username is not None:
        client.force_login(User.objects.db_manager("default").get(username=username))
    return client


def _token(html: str) -> str:
    match = re.search(r'<meta name="dbswap-csrf" content="([A-Za-z0-9]{64})">', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


@pytest.fixture
def staff() -> tuple[Any, str]:
    """alice, logged in, with the token the page gives her browser."""
    client = _client("alice")
    page = client.get(PAGE)
    assert page.status_code == 200, page.content
    return client, _token(page.content.decode())


def _switch(staff: tuple[Any, str], body: dict[str, Any]) -> Any:
    client, token = staff
    return client.post(
        SWITCH, json.dumps(body), content_type="application/json", headers={"X-CSRF-Token": token}
    )


def snapshot(board: dbswap.Switchboard) -> tuple[dbswap.State, bytes | None]:
    path = Path(board.runtime_dir) / "db-target.json"
    return board.state, path.read_bytes() if path.exists() else None


# -- the switch, end to end ----------------------------------------------------------


def test_a_switch_through_the_admin_api_changes_what_the_views_return(
    board: dbswap.Switchboard, staff: tuple[Any, str]
) -> None:
    app = _client()
    assert app.get("/items").json() == {"alias": "default", "labels": ["local-1"]}
    response = _switch(staff, {"useProduction": True})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["target"], body["previous"], body["generation"]) == ("production", "local", 1)
    assert body["hotSwap"] is True and body["requiresRestart"] is False
    assert app.get("/items").json() == {"alias": "production", "labels": ["prod-1", "prod-2"]}
    # alice exists only in "default": she can still see the state and switch back.
    status = staff[0].get(STATUS).json()
    assert status["target"] == "production" and status["switchedBy"] == "alice"
    back = _switch(staff, {"target": "local"})
    assert back.status_code == 200 and back.json()["generation"] == 2
    assert app.get("/items").json()["labels"] == ["local-1"]
    history = staff[0].get(HISTORY + "?limit=2").json()
    assert [e["to"] for e in history["entries"]] == ["local", "production"]


def test_a_request_in_flight_across_a_switch_writes_to_its_own_target(
    board: dbswap.Switchboard, urls: dict[str, str], staff: tuple[Any, str]
) -> None:
    """A real WSGI server: the request reads local, a switch commits, its write lands in local."""
    from django.core.wsgi import get_wsgi_application
    from shop import views

    views.GATE["reached"].clear()
    views.GATE["release"].clear()
    server = make_server("127.0.0.1", 0, get_wsgi_application(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    result: dict[str, Any] = {}
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        with httpx.Client(base_url=base, timeout=15) as http:
            worker = threading.Thread(target=lambda: result.update(http.post("/slow-add").json()))
            worker.start()
            assert views.GATE["reached"].wait(10)
            assert _switch(staff, {"target": "production"}).status_code == 200
            assert http.get("/items").json()["alias"] == "production"  # new requests follow
            views.GATE["release"].set()
            worker.join(15)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert result == {"alias": "default", "seen": ["local-1"]}
    assert labels(urls["local"]) == ["local-1", "written-in-flight"]
    assert labels(urls["production"]) == ["prod-1", "prod-2"]


def test_async_views_under_asgi_keep_their_pin_across_a_switch(
    board: dbswap.Switchboard, urls: dict[str, str]
) -> None:
    """Two requests interleaved on one event loop: each uses the target it began on."""
    from django.test import AsyncClient
    from shop import views

    async def scenario() -> tuple[Any, Any]:
        views.ASYNC_GATE.update(reached=asyncio.Event(), release=asyncio.Event())
        client = AsyncClient()
        slow = asyncio.ensure_future(client.post("/async-slow-add"))
        await asyncio.wait_for(views.ASYNC_GATE["reached"].wait(), 10)
        await asyncio.to_thread(board.use, "production", user="test")
        fresh = await client.get("/async-items")
        views.ASYNC_GATE["release"].set()
        return (await slow), fresh

    slow, fresh = asyncio.run(scenario())
    assert fresh.json() == {"alias": "production", "labels": ["prod-1", "prod-2"]}
    assert slow.json() == {"alias": "default", "seen": ["local-1"]}
    assert labels(urls["local"]) == ["local-1", "async-in-flight"]
    assert labels(urls["production"]) == ["prod-1", "prod-2"]


# -- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "body", "content_type", "status", "phrase"),
    [
        (None, b'{"target": "production"}', "application/json", 401, "log in"),
        ("bob", b'{"target": "production"}', "application/json", 403, "staff"),
        ("alice", b"{not json", "application/json", 400, "not valid JSON"),
        ("alice", b"[1]", "application/json", 422, "JSON object"),
        ("alice", b'{"target": true}', "application/json", 422, "must be a string"),
        ("alice", b'{"useProduction": "yes"}', "application/json", 422, "true or false"),
        ("alice", b"target=production", "application/x-www-form-urlencoded", 415, "JSON"),
        ("alice", b'{"target": "' + b"p" * 20000 + b'"}', "application/json", 413, "larger"),
        ("alice", b'{"target": "nowhere"}', "application/json", 404, "known targets"),
    ],
)
def test_refused_switches_change_nothing(
    board: dbswap.Switchboard,
    who: str | None,
    body: bytes,
    content_type: str,
    status: int,
    phrase: str,
) -> None:
    client = _client(who)
    # Authorization comes first: only alice needs (and has) a page token.
    token = _token(client.get(PAGE).content.decode()) if who == "alice" else "none"
    before = snapshot(board)
    response = client.post(SWITCH, body, content_type=content_type, headers={"X-CSRF-Token": token})
    assert response.status_code == status, response.content
    payload = response.json()
    assert payload["success"] is False and phrase in payload["message"]
    assert response.headers["Cache-Control"] == "no-store"
    assert snapshot(board) == before
    assert _client().get("/items").json()["alias"] == "default"


@pytest.mark.parametrize(
    ("case", "phrase"),
    [
        ("no token", "CSRF token missing"),
        ("wrong token", "incorrect"),
        ("foreign origin", "Origin checking failed"),
        ("no cookie", "CSRF cookie not set"),
    ],
)
def test_forged_browser_requests_are_refused_by_djangos_csrf_check(
    board: dbswap.Switchboard, staff: tuple[Any, str], case: str, phrase: str
) -> None:
    client, token = staff
    headers = {"X-CSRF-Token": token}
    if case == "no token":
        headers = {}
    elif case == "wrong token":
        headers["X-CSRF-Token"] = "a" * 64
    elif case == "foreign origin":
        headers["Origin"] = "http://evil.example"
    elif case == "no cookie":
        del client.cookies["csrftoken"]
    before = snapshot(board)
    response = client.post(
        SWITCH, b'{"target": "production"}', content_type="application/json", headers=headers
    )
    assert response.status_code == 403, response.content
    assert phrase in response.json()["message"]
    assert snapshot(board) == before


def test_the_production_lock_refuses_switches(urls: dict[str, str], tmp_path: Path) -> None:
    from django.db import connections

    from dbswap.django import set_board

    board = dbswap.Switchboard(urls, runtime_dir=tmp_path / "rt", production_lock=True)
    previous = set_board(board)
    from django.contrib.auth.models import User

    # Under the lock the control plane is production: the staff member must exist there.
    carol = User.objects.db_manager("production").create_user("carol", is_staff=True)
    try:
        reset_rows(urls["production"], ROWS["production"])
        client = _client()
        client.force_login(carol)
        token = _token(client.get(PAGE).content.decode())
        assert _client().get("/items").json()["alias"] == "production"
        response = client.post(
            SWITCH,
            b'{"target": "local"}',
            content_type="application/json",
            headers={"X-CSRF-Token": token},
        )
        assert response.status_code == 403 and response.json()["error"] == "locked"
        assert _client().get("/items").json()["alias"] == "production"
    finally:
        carol.delete()
        set_board(previous)
        connections.close_all()
        board.dispose()


def test_the_page_is_the_shared_template_and_anonymous_visitors_are_sent_to_log_in(
    board: dbswap.Switchboard, staff: tuple[Any, str]
) -> None:
    html = staff[0].get(PAGE).content.decode()
    assert 'id="active-badge" data-target="local"' in html
    assert 'data-switch-url="/api/admin/database/switch"' in html
    assert "Signed in as alice" in html
    anonymous = _client().get(PAGE)
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"] == "/admin/login/?next=/admin/configuration"
    refused = _client("bob").get(PAGE)
    assert refused.status_code == 403 and b"staff" in refused.content
    assert _client().get(SWITCH).status_code == 405  # never a 500


# -- read-only, schema guard, what Django cannot route ---------------------------------------


@pytest.mark.parametrize("target", ["production", "local"])
def test_a_read_only_switch_makes_the_server_refuse_the_apps_writes(
    board: dbswap.Switchboard, urls: dict[str, str], staff: tuple[Any, str], target: str
) -> None:
    response = _switch(staff, {"target": target, "readOnly": True})
    assert response.status_code == 200 and response.json()["readOnly"] is True
    app = _client()
    refused = app.post("/items/add", {"label": "sneaky"})
    assert refused.status_code == 409 and "read-only" in refused.json()["error"]
    assert labels(urls[target]) == ROWS[target]
    assert app.get("/items").json()["labels"] == ROWS[target]  # reads work
    assert _switch(staff, {"target": target, "readOnly": False}).status_code == 200
    assert app.post("/items/add", {"label": "allowed"}).status_code == 201
    assert labels(urls[target]) == [*ROWS[target], "allowed"]


def test_a_write_a_read_only_switch_refuses_is_a_409_never_a_500(
    board: dbswap.Switchboard, urls: dict[str, str], staff: tuple[Any, str]
) -> None:
    assert _switch(staff, {"target": "production", "readOnly": True}).status_code == 200
    app = _client()
    body = json.dumps({"label": "sneaky"})
    refused = app.post("/api/items", body, content_type="application/json")
    assert refused.status_code == 409
    answer = refused.json()
    assert (answer["error"], answer["preview"]) == ("read_only", False)
    assert "dbswap use production --writable" in answer["message"]
    assert labels(urls["production"]) == ROWS["production"]


def test_a_target_lacking_migrations_is_refused_unless_overridden(
    board: dbswap.Switchboard, staff: tuple[Any, str]
) -> None:
    before = snapshot(board)
    refused = _switch(staff, {"target": "staging"})
    assert refused.status_code == 409, refused.content
    body = refused.json()
    assert body["error"] == "schema_mismatch"
    assert "shop.0002_loan" in body["message"]
    assert "manage.py migrate --database=staging" in body["message"]
    assert snapshot(board) == before
    forced = _switch(staff, {"target": "staging", "ignoreSchema": True})
    assert forced.status_code == 200
    assert board.history(1)[0]["schema_check"] == "overridden"
    board.use("local", user="t")
    with pytest.raises(dbswap.django.MigrationsNotApplied, match="migrate --database=staging"):
        board.use("staging", user="t")
    assert board.active == "local"


def test_what_django_cannot_route_is_refused_while_pinned_elsewhere(
    board: dbswap.Switchboard, urls: dict[str, str]
) -> None:
    from dbswap.django import UnroutedQuery

    app = _client()
    assert app.get("/raw-default").json() == {"count": 1}  # on local, default is right
    board.use("production", user="test")
    with pytest.raises(UnroutedQuery, match=r"django\.db\.connection"):
        app.get("/raw-default")
    with pytest.raises(UnroutedQuery, match=r"atomic\(\) without using="):
        app.post("/atomic-default")
    assert labels(urls["production"]) == ROWS["production"]
    assert app.post("/atomic-routed").json() == {"alias": "production"}
    assert labels(urls["production"]) == [*ROWS["production"], "atomic"]


# -- the management command, migrations, the app's own tests ---------------------------------


def test_manage_py_dbswap_has_the_clis_commands_and_exit_codes(
    board: dbswap.Switchboard, capsys: pytest.CaptureFixture[str]
) -> None:
    from django.core.management import ManagementUtility

    def run(*args: str) -> int:
        with pytest.raises(SystemExit) as exited:
            ManagementUtility(["manage.py", "dbswap", *args]).execute()
        return int(exited.value.code or 0)

    assert run("use", "production", "--yes", "--user", "ops", "--json") == 0
    assert json.loads(capsys.readouterr().out)["target"] == "production"
    assert board.state.switched_by == "ops"
    assert run("status", "--json") == 0
    assert json.loads(capsys.readouterr().out)["target"] == "production"
    assert run("use", "nowhere", "--yes") == 1
    assert "unknown target 'nowhere'" in capsys.readouterr().err
    assert run("use", "--no-such-option") == 2
    assert run("check") == 1  # staging lacks migrations
    assert "!= code" in capsys.readouterr().out
    assert run("history", "-n", "1", "--json") == 0
    assert json.loads(capsys.readouterr().out)[0]["outcome"] == "refused"


def _manage(urls: dict[str, str], runtime: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_URL")}
    env |= {f"DATABASE_URL_{n.upper()}": u for n, u in urls.items()}
    env["DBSWAP_RUNTIME_DIR"] = str(runtime)
    return subprocess.run(
        [sys.executable, str(PROJECT / "manage.py"), *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_manage_py_migrate_under_dbswap_run_migrates_that_target_only(tmp_path: Path) -> None:
    """`dbswap run production -- manage.py migrate`: the pinned target is the default alias."""
    local = tmp_path / "fresh-local.db"
    local.touch()
    fresh = {"local": f"sqlite:///{local}", "production": create_pg_database()}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DBSWAP_"))}
    env |= {f"DATABASE_URL_{n.upper()}": u for n, u in fresh.items()}
    env["DBSWAP_RUNTIME_DIR"] = str(tmp_path / "rt")
    try:
        migrate = [sys.executable, str(PROJECT / "manage.py"), "migrate", "-v", "0"]
        done = subprocess.run(
            [sys.executable, "-m", "dbswap", "run", "production", "--yes", "--", *migrate],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr

        assert "django_migrations" in tables(fresh["production"])
        assert tables(fresh["local"]) == set()  # the default target was not touched
    finally:
        drop_pg_database(fresh["production"])


def test_migrations_run_against_a_chosen_target(tmp_path: Path, urls: dict[str, str]) -> None:
    """`manage.py migrate --database=production` migrates that target; then it passes the guard."""
    fresh = {"local": urls["local"], "production": create_pg_database()}
    try:
        board = dbswap.Switchboard(fresh, runtime_dir=tmp_path / "rt")
        board.schema_guard = dbswap.django.MigrationGuard(board.default_target)
        try:
            assert board.check("production")[0].schema_ok is False
            done = _manage(fresh, tmp_path / "rt", "migrate", "--database=production", "-v", "0")
            assert done.returncode == 0, done.stderr
            assert board.check("production")[0].schema_ok is True
            assert board.use("production", user="t").target == "production"
        finally:
            board.dispose()
    finally:
        drop_pg_database(fresh["production"])


def test_the_apps_own_test_suite_passes_with_the_router(
    tmp_path: Path, urls: dict[str, str]
) -> None:
    done = _manage(urls, tmp_path / "rt", "test", "shop", "--noinput", "-v", "1")
    assert done.returncode == 0, done.stderr
    assert "Ran 3 tests" in done.stderr and "OK" in done.stderr


def test_databases_from_env_maps_the_default_target_to_the_default_alias(
    tmp_path: Path,
) -> None:
    from dbswap.django import databases_from_env

    env = {
        "DATABASE_URL_LOCAL": "sqlite:///local.db",
        "DATABASE_URL_PRODUCTION": "postgresql+psycopg://app:S3cret@127.0.0.1:5432/shop?sslmode=disable",
        "DATABASE_URL_REPLICA": "mariadb://app:pw@127.0.0.1/shop",
    }
    databases = databases_from_env(env, tmp_path)
    assert list(databases) == ["default", "production", "replica"]
    assert databases["default"]["NAME"] == str(tmp_path / "local.db")
    assert databases["default"]["ENGINE"] == "django.db.backends.sqlite3"
    prod = databases["production"]
    assert (prod["ENGINE"], prod["NAME"], prod["USER"], prod["PASSWORD"]) == (
        "django.db.backends.postgresql",
        "shop",
        "app",
        "S3cret",
    )
    assert prod["OPTIONS"] == {"sslmode": "disable"}
    assert databases["replica"]["ENGINE"] == "django.db.backends.mysql"
    other = databases_from_env(env | {"DBSWAP_DEFAULT_TARGET": "production"}, tmp_path)
    assert other["default"]["NAME"] == "shop" and "local" in other
    with pytest.raises(dbswap.ConfigError, match="DBSWAP_DEFAULT_TARGET"):
        databases_from_env(env | {"DBSWAP_DEFAULT_TARGET": "nope"}, tmp_path)
