"""Property-based fuzz of the admin API: no 5xx, and a refused request changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dbswap
from dbswap.fastapi import admin_router
from webhelpers import ADMIN, HISTORY, SWITCH, TestClient, admin_app, snapshot

FUZZ = settings(
    max_examples=55,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
names = st.sampled_from(["local", "production", " Production ", "LOCAL", "staging", ""])
bodies = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(["useProduction", "target", "force"]), json_values, max_size=3),
    st.fixed_dictionaries({"target": names | st.text(max_size=80)}),
    st.fixed_dictionaries({"useProduction": st.booleans() | scalars}),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-json",
        "multipart/form-data",
        "application/problem+json",
    ]
)
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dbswap.Switchboard]:
    import sqlite3

    base = tmp_path_factory.mktemp("fuzz")
    urls = {}
    for name in ("local", "production"):
        sqlite3.connect(base / f"{name}.db").close()
        urls[name] = f"sqlite:///{base / name}.db"
    board = dbswap.Switchboard(urls, runtime_dir=base / "rt")
    yield board
    board.dispose()


@pytest.fixture(scope="module")
def client(board: dbswap.Switchboard) -> Iterator[TestClient]:
    with TestClient(admin_app(board)) as client:
        yield client


def _check(board: dbswap.Switchboard, response: Any, before: object) -> None:
    assert response.status_code < 500, response.text
    body = response.json()
    if response.status_code == 200:
        assert body["success"] is True and board.active == body["target"]
    else:
        assert body["success"] is False and body["message"]
        assert snapshot(board) == before


@FUZZ
@given(body=bodies)
def test_arbitrary_json_bodies(client: TestClient, board: dbswap.Switchboard, body: Any) -> None:
    before = snapshot(board)
    raw = json.dumps(body).encode()  # Python's JSON: NaN and Infinity included
    headers = ADMIN | {"Content-Type": "application/json"}
    _check(board, client.post(SWITCH, content=raw, headers=headers), before)


@FUZZ
@given(raw=st.binary(max_size=300), content_type=content_types)
def test_arbitrary_bytes(
    client: TestClient, board: dbswap.Switchboard, raw: bytes, content_type: str
) -> None:
    before = snapshot(board)
    headers = ADMIN | {"Content-Type": content_type}
    _check(board, client.post(SWITCH, content=raw, headers=headers), before)


@FUZZ
@given(
    params=st.lists(
        st.tuples(st.sampled_from(["limit", "LIMIT", "offset", "limit[]"]), st.text(max_size=12)),
        max_size=3,
    )
)
def test_arbitrary_history_queries(
    client: TestClient, board: dbswap.Switchboard, params: list[tuple[str, str]]
) -> None:
    before = snapshot(board)
    response = client.get(HISTORY, params=params, headers=ADMIN)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        assert isinstance(response.json()["entries"], list)
    assert snapshot(board) == before


@settings(FUZZ, max_examples=40)
@given(
    origin=st.none() | st.sampled_from(["http://testserver", "http://evil.example"]) | header_text,
    token=st.none() | header_text,
    cookie=st.none() | header_text,
    site=st.none() | st.sampled_from(["same-origin", "cross-site", "same-site", "none"]),
)
def test_a_cookie_session_without_the_pages_token_never_switches(
    board: dbswap.Switchboard,
    origin: str | None,
    token: str | None,
    cookie: str | None,
    site: str | None,
) -> None:
    """Even with a logged-in browser session, forged CSRF headers never switch."""

    def logged_in(request: Request) -> str:
        return "mallory-session"  # every request is an authenticated browser

    app = FastAPI()
    app.include_router(admin_router(board, authorize=logged_in))
    headers = {"Content-Type": "application/json"}
    for name, value in (("Origin", origin), ("X-CSRF-Token", token), ("Sec-Fetch-Site", site)):
        if value is not None:
            headers[name] = value
    before = snapshot(board)
    with TestClient(app) as client:
        if cookie is not None:
            client.cookies.set("dbswap_csrf", cookie)
        response = client.post(SWITCH, json={"useProduction": True}, headers=headers)
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "csrf"
    assert snapshot(board) == before
