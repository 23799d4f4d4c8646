"""``admin_router(token_page=True)``: the page is a shell without data; the token opens the API.

What the page's script does with the token is driven in a real browser by
``test_token_page_browser.py``; here, real HTTP checks what the server sends.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Request

import dbswap
from dbswap.fastapi import admin_router
from webhelpers import (
    ADMIN,
    ADMIN_TOKEN,
    HISTORY,
    PAGE,
    STATUS,
    SWITCH,
    USER,
    TestClient,
    admin_app,
    authorize_by_token,
)


@pytest.fixture
def board(sqlite_url: Callable[[str], str], tmp_path: Path) -> Iterator[dbswap.Switchboard]:
    board = dbswap.Switchboard(
        {
            "local": sqlite_url("local"),
            "production": sqlite_url("production"),
            "qa_orchid": sqlite_url("qa_orchid"),
        },
        runtime_dir=tmp_path / "rt",
    )
    yield board
    board.dispose()


def test_the_token_page_holds_no_data_and_is_served_without_credentials(
    board: dbswap.Switchboard, tmp_path: Path
) -> None:
    asked: list[str | None] = []

    def authorize(request: Request) -> str:
        asked.append(request.url.path)
        return authorize_by_token(request)

    app = FastAPI()
    app.include_router(admin_router(board, authorize=authorize, token_page=True))
    with TestClient(app) as client:
        # Something worth leaking: a target, its file, a switch by alice at a given time.
        assert client.post(SWITCH, json={"target": "qa_orchid"}, headers=ADMIN).status_code == 200
        state = board.state
        assert state.switched_at is not None and state.switched_by == "alice"
        asked.clear()
        for headers in ({}, {"Authorization": "Bearer nope"}, USER, ADMIN):
            page = client.get(PAGE, headers=headers)
            assert page.status_code == 200
            html = page.text
            assert 'id="token-form"' in html and 'type="password"' in html
            for secret in ("qa_orchid", "alice", str(tmp_path), "sqlite", state.switched_at):
                assert secret not in html
            assert ADMIN_TOKEN not in html
            # The token lives in sessionStorage only, never in a cookie or localStorage.
            assert "sessionStorage" in html
            assert "localStorage" not in html and "document.cookie" not in html
            assert "set-cookie" not in page.headers
            # The same strict policy as the cookie page: only nonce'd code, no inline handler.
            csp = page.headers["content-security-policy"]
            nonce = re.search(r"script-src 'nonce-([^']+)'", csp)
            assert nonce and f"style-src 'nonce-{nonce.group(1)}'" in csp
            assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
            scripts = re.findall(r"<script\b[^>]*>", html)
            assert scripts and all(f'nonce="{nonce.group(1)}"' in tag for tag in scripts)
            styles = re.findall(r"<style\b[^>]*>", html)
            assert styles and all(f'nonce="{nonce.group(1)}"' in tag for tag in styles)
            assert not re.search(r"<[^>]*\son[a-z]+\s*=", html)
            assert page.headers["cache-control"] == "no-store"
            assert page.headers["x-frame-options"] == "DENY"
        assert asked == []  # the shell never asked who was there

        # The API behind it still wants the token, page or no page.
        assert client.get(STATUS).status_code == 401
        assert client.get(HISTORY).status_code == 401
        assert client.post(SWITCH, json={"target": "local"}).status_code == 401
        assert client.get(STATUS, headers=USER).status_code == 403
        assert client.post(SWITCH, json={"target": "local"}, headers=USER).status_code == 403
        assert board.active == "qa_orchid"
        assert client.get(STATUS, headers=ADMIN).json()["target"] == "qa_orchid"
        # A bearer request needs no CSRF token: exactly what the page's script sends.
        assert client.post(SWITCH, json={"target": "local"}, headers=ADMIN).status_code == 200
    assert board.active == "local"


def test_the_token_page_uses_the_routes_urls_under_a_prefix(board: dbswap.Switchboard) -> None:
    app = FastAPI()
    router = admin_router(board, authorize=authorize_by_token, token_page=True, home_url="/ops/")
    app.include_router(router, prefix="/ops")
    with TestClient(app) as client:
        html = client.get("/ops" + PAGE).text
        assert f'data-status-url="/ops{STATUS}"' in html
        assert f'data-switch-url="/ops{SWITCH}"' in html
        assert f'data-history-url="/ops{HISTORY}"' in html
        assert '<a href="/ops/">' in html
        assert client.get("/ops" + STATUS, headers=ADMIN).json()["target"] == "local"
        assert client.get(PAGE).status_code == 404


def test_without_the_option_the_page_still_needs_credentials(board: dbswap.Switchboard) -> None:
    with TestClient(admin_app(board)) as client:
        anonymous = client.get(PAGE)
        assert anonymous.status_code == 401 and 'id="token-form"' not in anonymous.text
        page = client.get(PAGE, headers=ADMIN)
        assert page.status_code == 200 and "qa_orchid" in page.text
        assert 'id="token-form"' not in page.text


def test_a_token_page_takes_no_login_url(board: dbswap.Switchboard) -> None:
    with pytest.raises(dbswap.ConfigError, match="login_url"):
        admin_router(board, authorize=authorize_by_token, token_page=True, login_url="/login")
