"""The admin page ``/admin/configuration`` and its CSRF protection, through real HTTP."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

import dbswap
from dbswap.demo import create_app
from dbswap.fastapi import admin_router
from webhelpers import (
    ADMIN,
    PAGE,
    STATUS,
    SWITCH,
    USER,
    TestClient,
    admin_app,
    authorize_by_token,
    snapshot,
)

PASSWORD = "pw-for-page-tests-1"


@pytest.fixture
def board(sqlite_url: Callable[[str], str], tmp_path: Path) -> Iterator[dbswap.Switchboard]:
    board = dbswap.Switchboard(
        {
            "local": sqlite_url("local"),
            "production": sqlite_url("production"),
            "staging": "postgresql://app:Pw0rdStaging@127.0.0.1:1/staging",
        },
        runtime_dir=tmp_path / "rt",
    )
    yield board
    board.dispose()


def _row(html: str, target: str) -> str:
    match = re.search(rf'<tr data-target="{target}".*?</tr>', html, re.S)
    assert match, f"no row for {target}"
    return match.group(0)


def _token(html: str) -> str:
    match = re.search(r'<meta name="dbswap-csrf" content="([0-9a-f]{64})">', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def test_the_page_shows_the_active_target_every_target_and_the_history(
    board: dbswap.Switchboard,
) -> None:
    with TestClient(admin_app(board)) as client:
        client.post(SWITCH, json={"target": "staging"}, headers=ADMIN)  # refused: unreachable
        response = client.get(PAGE, headers=ADMIN)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert re.search(r'id="active-badge" data-target="local"\s+class="badge other">local<', html)
    for name, target in board.targets.items():
        row = _row(html, name)
        assert target.dialect in row
        assert f"<code>{target.masked_url}</code>" in row
    assert "Pw0rdStaging" not in html
    assert "reachable" in _row(html, "local") and "unreachable" not in _row(html, "local")
    assert "unreachable" in _row(html, "staging")
    assert re.search(r'<button[^>]*data-target="production"[^>]*data-production="true"', html)
    # Nothing to do on the active target: said to assistive technology, and still focusable.
    assert re.search(r'<button[^>]*data-target="local"[^>]*\s+aria-disabled="true">', html)
    history = html[html.index('id="history"') :]
    assert "staging" in history and "failed" in history and "alice" in history
    assert "window.confirm(" in html  # production asks first
    assert re.search(r'id="lock-message"\s+hidden>', html)  # shown if a lock comes later


def test_production_is_shown_as_a_red_badge(board: dbswap.Switchboard) -> None:
    with TestClient(admin_app(board)) as client:
        client.post(SWITCH, json={"useProduction": True}, headers=ADMIN)
        html = client.get(PAGE, headers=ADMIN).text
    assert re.search(r'data-target="production"\s+class="badge production">production<', html)
    assert re.search(r"\.badge\.production \{ background: var\(--prod\)", html)
    assert "--prod: #c62828" in html


def test_the_page_says_clearly_when_the_lock_is_on(
    sqlite_url: Callable[[str], str], tmp_path: Path
) -> None:
    board = dbswap.Switchboard(
        {"local": sqlite_url("l"), "production": sqlite_url("p")},
        runtime_dir=tmp_path / "rt",
        production_lock=True,
    )
    try:
        with TestClient(admin_app(board)) as client:
            html = client.get(PAGE, headers=ADMIN).text
    finally:
        board.dispose()
    assert re.search(r'id="lock-message".*Switching is locked.*DBSWAP_ENV=production', html, re.S)
    assert len(re.findall(r"<button[^>]*class=\"switch[^>]*\s+disabled>", html)) == 2


def test_nobody_is_redirected_to_the_login_or_refused_and_a_user_gets_403(
    board: dbswap.Switchboard,
) -> None:
    with TestClient(admin_app(board)) as client:
        anonymous = client.get(PAGE)
        assert anonymous.status_code == 401
        assert "text/html" in anonymous.headers["content-type"]
        assert "Authorization: Bearer" in anonymous.text
        user = client.get(PAGE, headers=USER)
        assert user.status_code == 403
        assert "bob is not an administrator" in user.text
        assert 'name="dbswap-csrf"' not in user.text
    with TestClient(admin_app(board, login_url="/login")) as client:
        redirect = client.get(PAGE, follow_redirects=False)
        assert redirect.status_code == 303
        assert redirect.headers["location"] == "/login?next=%2Fadmin%2Fconfiguration"


def test_the_page_forbids_framing_caching_and_foreign_scripts(board: dbswap.Switchboard) -> None:
    with TestClient(admin_app(board)) as client:
        response = client.get(PAGE, headers=ADMIN)
    csp = response.headers["content-security-policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", csp)
    assert nonce and f'<script nonce="{nonce.group(1)}"' in response.text
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("dbswap_csrf=")
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie


def test_the_page_links_to_the_routes_where_the_router_is_mounted(
    board: dbswap.Switchboard,
) -> None:
    app = FastAPI()
    app.include_router(admin_router(board, authorize=authorize_by_token), prefix="/ops")
    with TestClient(app) as client:
        html = client.get("/ops" + PAGE, headers=ADMIN).text
        assert client.get("/ops" + STATUS, headers=ADMIN).status_code == 200
    assert 'data-switch-url="/ops/api/admin/database/switch"' in html
    assert 'data-status-url="/ops/api/admin/database"' in html
    assert 'data-history-url="/ops/api/admin/database/history"' in html


# -- CSRF, with the demo's real cookie session -------------------------------------


@pytest.fixture
def browser(board: dbswap.Switchboard) -> Iterator[TestClient]:
    """A logged-in browser-like client (session cookie) on the demo app."""
    app = create_app(board, admin_password=PASSWORD, prepare=False)
    with TestClient(app) as client:
        login = client.post("/login", data={"password": PASSWORD}, follow_redirects=False)
        assert login.status_code == 303
        yield client


def _post(
    client: TestClient, headers: dict[str, str], body: bytes = b'{"target": "production"}'
) -> Any:
    return client.post(SWITCH, content=body, headers={"Content-Type": "application/json"} | headers)


def test_a_logged_in_browser_switches_with_the_pages_token(
    browser: TestClient, board: dbswap.Switchboard
) -> None:
    token = _token(browser.get(PAGE).text)
    response = _post(browser, {"X-CSRF-Token": token, "Origin": "http://testserver"})
    assert response.status_code == 200, response.text
    assert response.json()["target"] == "production"
    assert board.state.switched_by == "admin"


@pytest.mark.parametrize(
    ("case", "status", "phrase"),
    [
        ("no token", 403, "missing X-CSRF-Token"),
        ("wrong token", 403, "invalid X-CSRF-Token"),
        ("foreign origin", 403, "cross-origin request refused"),
        ("null origin", 403, "cross-origin request refused"),
        ("cross-site fetch", 403, "cross-site request refused"),
        ("token of another cookie", 403, "invalid X-CSRF-Token"),
        ("no cookie", 403, "dbswap_csrf cookie"),
        ("form body", 415, "application/json"),
    ],
)
def test_forged_browser_requests_are_refused_and_change_nothing(
    browser: TestClient, board: dbswap.Switchboard, case: str, status: int, phrase: str
) -> None:
    token = _token(browser.get(PAGE).text)
    headers = {"X-CSRF-Token": token}
    body = b'{"target": "production"}'
    if case == "no token":
        headers = {}
    elif case == "wrong token":
        headers["X-CSRF-Token"] = "0" * 64
    elif case == "foreign origin":
        headers["Origin"] = "http://evil.example"
    elif case == "null origin":
        headers["Origin"] = "null"
    elif case == "cross-site fetch":
        headers["Sec-Fetch-Site"] = "cross-site"
    elif case == "token of another cookie":
        browser.cookies.delete("dbswap_csrf")
        browser.cookies.set("dbswap_csrf", "A" * 43)
    elif case == "no cookie":
        browser.cookies.delete("dbswap_csrf")
    elif case == "form body":
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        body = b"target=production"
    before = snapshot(board)
    response = _post(browser, headers, body)
    assert response.status_code == status, response.text
    assert phrase in response.json()["message"]
    assert snapshot(board) == before
    assert board.active == "local"


def test_api_clients_with_an_authorization_header_need_no_csrf_token(
    board: dbswap.Switchboard,
) -> None:
    with TestClient(admin_app(board)) as client:
        response = client.post(SWITCH, json={"useProduction": True}, headers=ADMIN)
    assert response.status_code == 200
    assert board.active == "production"


def test_workers_without_a_csrf_secret_accept_each_others_tokens(
    sqlite_url: Callable[[str], str], tmp_path: Path
) -> None:
    """Two workers of one host (two boards, one runtime dir), no csrf_secret configured:
    a page served by one, its switch posted to the other, as a load balancer would."""
    urls = {"local": sqlite_url("local"), "production": sqlite_url("production")}

    def by_cookie(request: Any) -> str:
        if request.cookies.get("who") != "alice":
            raise dbswap.fastapi.NotAuthenticated("log in first")
        return "alice"

    def worker() -> tuple[dbswap.Switchboard, FastAPI]:
        board = dbswap.Switchboard(urls, runtime_dir=tmp_path / "rt")
        app = FastAPI()
        app.include_router(admin_router(board, authorize=by_cookie))
        return board, app

    (board_a, app_a), (board_b, app_b) = worker(), worker()
    key = tmp_path / "rt" / "csrf.key"
    assert len(key.read_bytes()) == 32 and key.stat().st_mode & 0o777 == 0o600
    with TestClient(app_a) as a, TestClient(app_b) as b:
        a.cookies.set("who", "alice")
        token = _token(a.get(PAGE).text)
        b.cookies.set("who", "alice")
        b.cookies.set("dbswap_csrf", a.cookies["dbswap_csrf"])
        response = _post(b, {"X-CSRF-Token": token, "Origin": "http://testserver"})
        assert response.status_code == 200, response.text
    assert board_a.active == board_b.active == "production"
    board_a.dispose()
    board_b.dispose()


def test_a_runtime_dir_that_cannot_hold_the_csrf_key_is_a_warning_not_a_failure(
    sqlite_url: Callable[[str], str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the runtime dir should be")
    board = dbswap.Switchboard(
        {"local": sqlite_url("local"), "production": sqlite_url("production")},
        runtime_dir=blocked,
    )
    with caplog.at_level("WARNING", logger="dbswap"):
        app = admin_app(board)
    assert any("same csrf_secret" in r.getMessage() for r in caplog.records)
    with TestClient(app) as client:
        assert client.get(STATUS, headers=ADMIN).status_code == 200


def test_processes_racing_to_make_the_csrf_key_all_get_the_same_one(tmp_path: Path) -> None:
    script = (
        "import sys, pathlib; from dbswap._csrf import shared_key; "
        "sys.stdout.write(shared_key(pathlib.Path(sys.argv[1])).hex())"
    )
    runtime = tmp_path / "rt"
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(runtime)], stdout=subprocess.PIPE)
        for _ in range(8)
    ]
    keys = {proc.communicate(timeout=60)[0] for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert len(keys) == 1 and len(next(iter(keys))) == 64
    assert sorted(p.name for p in runtime.iterdir()) == ["csrf.key"]  # no temp file left
