"""The admin JSON API of ``dbswap.fastapi``: every route and status code, through real HTTP."""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI, HTTPException, Request

import dbswap
from dbswap.fastapi import admin_router
from webhelpers import (
    ADMIN,
    HISTORY,
    PAGE,
    STATUS,
    SWITCH,
    USER,
    TestClient,
    admin_app,
    authorize_by_token,
    live_server,
    snapshot,
)

SECRET_PASSWORD = "S3cretPw9"
BLOB_TOKEN = "vercel_blob_rw_Zq81xYsecretT0ken"


@pytest.fixture
def board(sqlite_url: Callable[[str], str], tmp_path: Path) -> Iterator[dbswap.Switchboard]:
    board = dbswap.Switchboard(
        {"local": sqlite_url("local"), "production": sqlite_url("production")},
        runtime_dir=tmp_path / "rt",
    )
    yield board
    board.dispose()


@pytest.fixture
def client(board: dbswap.Switchboard) -> Iterator[TestClient]:
    with TestClient(admin_app(board)) as client:
        yield client


def test_status_reports_the_active_target_and_every_target(
    client: TestClient, board: dbswap.Switchboard
) -> None:
    """GET /api/admin/database has the seed's fields plus every target, masked."""
    response = client.get(STATUS, headers=ADMIN)
    assert response.status_code == 200
    body = response.json()
    assert body["target"] == "local"
    assert body["useProduction"] is False
    assert body["locked"] is False
    assert body["generation"] == 0
    assert body["switchedAt"] is None and body["switchedBy"] is None
    targets = {t["name"]: t for t in body["targets"]}
    assert set(targets) == {"local", "production"}
    assert targets["production"]["production"] is True
    assert targets["local"]["production"] is False
    assert targets["local"]["dialect"] == "sqlite"
    assert targets["local"]["url"] == board.targets["local"].masked_url
    assert response.headers["cache-control"] == "no-store"


def test_the_seeds_use_production_body_switches_there_and_back(
    client: TestClient, board: dbswap.Switchboard
) -> None:
    """{"useProduction": true} goes to production, false back to the default target."""
    response = client.post(SWITCH, json={"useProduction": True}, headers=ADMIN)
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert (body["target"], body["previous"], body["generation"]) == ("production", "local", 1)
    assert body["hotSwap"] is True and body["requiresRestart"] is False
    assert isinstance(body["durationMs"], float) and body["durationMs"] >= 0
    assert board.active == "production"
    status = client.get(STATUS, headers=ADMIN).json()
    assert status["useProduction"] is True and status["switchedBy"] == "alice"
    assert status["switchedAt"] is not None

    back = client.post(SWITCH, json={"useProduction": False}, headers=ADMIN).json()
    assert (back["target"], back["previous"], back["generation"]) == ("local", "production", 2)
    assert board.active == "local"


def test_a_target_can_be_named_and_the_name_is_normalised(
    client: TestClient, board: dbswap.Switchboard
) -> None:
    response = client.post(SWITCH, json={"target": "  Production "}, headers=ADMIN)
    assert response.status_code == 200
    assert response.json()["target"] == "production"
    assert board.active == "production"


def test_switching_to_the_active_target_succeeds_without_a_new_generation(
    client: TestClient, board: dbswap.Switchboard
) -> None:
    client.post(SWITCH, json={"useProduction": True}, headers=ADMIN)
    before = snapshot(board)
    body = client.post(SWITCH, json={"target": "production"}, headers=ADMIN).json()
    assert body["success"] is True and body["changed"] is False
    assert body["generation"] == 1
    assert snapshot(board) == before


BAD_BODIES = [
    # (raw body, content type, status, a phrase the message must contain)
    (b"{not json", "application/json", 400, "not valid JSON"),
    (b"", "application/json", 400, "not valid JSON"),
    (b"\xff\xfe\x00garbage", "application/json", 400, "not valid JSON"),
    (b"[1, 2]", "application/json", 422, "JSON object, not an array"),
    (b'"production"', "application/json", 422, "JSON object, not a string"),
    (b"null", "application/json", 422, "JSON object, not null"),
    (b"{}", "application/json", 422, "exactly one of"),
    (b'{"useProduction": true, "target": "local"}', "application/json", 422, "exactly one of"),
    (b'{"useProduction": "yes"}', "application/json", 422, "true or false, not a string"),
    (b'{"useProduction": 1}', "application/json", 422, "true or false, not a number"),
    (b'{"useProduction": null}', "application/json", 422, "true or false, not null"),
    (b'{"target": 7}', "application/json", 422, "must be a string"),
    (b'{"target": ["production"]}', "application/json", 422, "must be a string"),
    (b'{"target": "   "}', "application/json", 422, "must name a target"),
    (b'{"target": "' + b"p" * 500 + b'"}', "application/json", 422, "must name a target"),
    (b'{"useProduction": true, "force": true}', "application/json", 422, "unexpected field"),
    (b"[" * 100_000, "application/json", 413, "larger than"),
    (b"[" * 10_000, "application/json", 400, "not valid JSON"),
    (b"useProduction=true", "application/x-www-form-urlencoded", 415, "application/json"),
    (b'{"useProduction": true}', "text/plain", 415, "application/json"),
    (b'{"useProduction": true}', "", 415, "application/json"),
]


@pytest.mark.parametrize(("raw", "content_type", "status", "phrase"), BAD_BODIES)
def test_bad_bodies_are_refused_with_what_is_expected_and_change_nothing(
    client: TestClient,
    board: dbswap.Switchboard,
    raw: bytes,
    content_type: str,
    status: int,
    phrase: str,
) -> None:
    before = snapshot(board)
    headers = ADMIN | ({"Content-Type": content_type} if content_type else {})
    response = client.post(SWITCH, content=raw, headers=headers)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert phrase in body["message"]
    assert '{"useProduction": true|false} or {"target": "<name>"}' in body["message"]
    assert snapshot(board) == before
    assert board.active == "local"


def test_an_unknown_target_is_404_listing_the_known_ones(
    client: TestClient, board: dbswap.Switchboard
) -> None:
    before = snapshot(board)
    response = client.post(SWITCH, json={"target": "staging"}, headers=ADMIN)
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "unknown_target"
    assert body["knownTargets"] == ["local", "production"]
    assert "local, production" in body["message"]
    assert snapshot(board) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", STATUS), ("POST", SWITCH), ("GET", HISTORY)],
)
def test_nobody_is_401_and_a_plain_user_is_403_on_every_route(
    client: TestClient, board: dbswap.Switchboard, method: str, path: str
) -> None:
    before = snapshot(board)
    body = {"useProduction": True}
    anonymous = client.request(method, path, json=body)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "not_authenticated"
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    wrong = client.request(method, path, json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    user = client.request(method, path, json=body, headers=USER)
    assert user.status_code == 403
    assert user.json()["message"] == "bob is not an administrator"
    assert snapshot(board) == before


def test_authorize_may_be_async_or_raise_http_exception(board: dbswap.Switchboard) -> None:
    async def authorize(request: Request) -> str:
        role = request.headers.get("x-role")
        if role is None:
            raise HTTPException(status_code=401, detail="who are you?")
        if role != "admin":
            raise HTTPException(status_code=403, detail="admins only")
        return "carol"

    app = FastAPI()
    app.include_router(admin_router(board, authorize=authorize))
    with TestClient(app) as client:
        assert client.get(STATUS).status_code == 401
        assert client.get(STATUS).json()["message"] == "who are you?"
        assert client.get(STATUS, headers={"X-Role": "dj"}).status_code == 403
        # No Authorization header: a cookie-less, header-less client is a browser for CSRF.
        response = client.post(SWITCH, json={"useProduction": True}, headers={"X-Role": "admin"})
        assert response.status_code == 403
        assert response.json()["error"] == "csrf"
    assert board.active == "local"


def _on_loop() -> bool:
    """Whether this thread is running an event loop (False in a threadpool thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("server", ["testclient", "uvicorn"])
def test_a_sync_authorize_runs_in_the_threadpool_never_on_the_event_loop(
    board: dbswap.Switchboard, server: str
) -> None:
    """A plain ``def`` authorize may block: every route calls it off the loop's thread."""
    calls: list[tuple[int, bool]] = []

    def authorize(request: Request) -> str:
        calls.append((threading.get_ident(), _on_loop()))
        return authorize_by_token(request)

    app = FastAPI()
    app.include_router(admin_router(board, authorize=authorize))

    @app.get("/loop-thread")
    async def loop_thread() -> int:
        return threading.get_ident()

    def exercise(http: httpx.Client | TestClient) -> tuple[int, list[int]]:
        loop_ident: int = http.get("/loop-thread").json()
        statuses = [
            http.get(STATUS, headers=ADMIN).status_code,
            http.post(SWITCH, json={"useProduction": True}, headers=ADMIN).status_code,
            http.get(HISTORY, headers=ADMIN).status_code,
            http.get(PAGE, headers=ADMIN).status_code,
            http.get(STATUS).status_code,  # refused from the thread: still a clean 401
            http.get(PAGE, headers=USER).status_code,
        ]
        return loop_ident, statuses

    if server == "testclient":
        with TestClient(app) as client:
            loop_ident, statuses = exercise(client)
    else:
        with live_server(app) as base, httpx.Client(base_url=base) as http:
            loop_ident, statuses = exercise(http)
    assert statuses == [200, 200, 200, 200, 401, 403]
    assert board.active == "production"
    assert len(calls) == 6
    for ident, on_loop in calls:
        assert on_loop is False
        assert ident != loop_ident


def test_an_async_authorize_is_awaited_on_the_loop_and_a_sync_one_may_return_one(
    board: dbswap.Switchboard,
) -> None:
    """``async def`` (or an async ``__call__``, or a partial of one) runs on the loop, as before;
    a plain function that returns a coroutine runs off the loop, its coroutine on it."""
    calls: list[tuple[str, bool]] = []

    async def checked(request: Request, label: str) -> str:
        calls.append((label, _on_loop()))
        return authorize_by_token(request)

    async def async_def(request: Request) -> str:
        return await checked(request, "async def")

    class AsyncCall:
        async def __call__(self, request: Request) -> str:
            return await checked(request, "async __call__")

    def returns_a_coroutine(request: Request) -> Awaitable[str]:
        calls.append(("sync part", _on_loop()))
        return checked(request, "its coroutine")

    authorizers: list[Callable[[Request], str | Awaitable[str]]] = [
        async_def,
        AsyncCall(),
        functools.partial(checked, label="partial"),
        returns_a_coroutine,
    ]
    for authorize in authorizers:
        app = FastAPI()
        app.include_router(admin_router(board, authorize=authorize))
        with TestClient(app) as client:
            assert client.get(STATUS, headers=ADMIN).json()["target"] == "local"
            assert client.get(STATUS, headers=USER).status_code == 403
    assert calls == [
        ("async def", True),
        ("async def", True),
        ("async __call__", True),
        ("async __call__", True),
        ("partial", True),
        ("partial", True),
        ("sync part", False),
        ("its coroutine", True),
        ("sync part", False),
        ("its coroutine", True),
    ]


def test_the_production_lock_is_403_with_its_reason(
    sqlite_url: Callable[[str], str], tmp_path: Path
) -> None:
    board = dbswap.Switchboard(
        {"local": sqlite_url("l"), "production": sqlite_url("p")},
        runtime_dir=tmp_path / "rt",
        production_lock=True,
    )
    try:
        with TestClient(admin_app(board)) as client:
            status = client.get(STATUS, headers=ADMIN).json()
            assert status["locked"] is True and status["target"] == "production"
            assert "DBSWAP_ENV=production" in status["lockReason"]
            before = snapshot(board)
            for body in ({"useProduction": False}, {"target": "local"}):
                response = client.post(SWITCH, json=body, headers=ADMIN)
                assert response.status_code == 403
                assert response.json()["error"] == "locked"
                assert "DBSWAP_ENV=production" in response.json()["reason"]
            assert snapshot(board) == before
            assert board.active == "production"
    finally:
        board.dispose()


def test_an_unreachable_target_is_503_and_the_active_target_is_unchanged(
    sqlite_url: Callable[[str], str], tmp_path: Path
) -> None:
    board = dbswap.Switchboard(
        {
            "local": sqlite_url("l"),
            "production": f"postgresql://app:{SECRET_PASSWORD}@127.0.0.1:1/prod",
        },
        runtime_dir=tmp_path / "rt",
    )
    try:
        with TestClient(admin_app(board)) as client:
            before = snapshot(board)
            response = client.post(SWITCH, json={"useProduction": True}, headers=ADMIN)
            assert response.status_code == 503
            body = response.json()
            assert body["error"] == "target_unavailable"
            assert body["active"] == "local"
            assert "production" in body["message"] and "still 'local'" in body["message"]
            assert SECRET_PASSWORD not in response.text
            assert snapshot(board) == before
            assert board.active == "local"
            entry = client.get(HISTORY, headers=ADMIN).json()["entries"][0]
            assert entry["outcome"] == "failed" and entry["to"] == "production"
    finally:
        board.dispose()


def test_history_lists_every_attempt_newest_first(client: TestClient) -> None:
    client.post(SWITCH, json={"useProduction": True}, headers=ADMIN)
    client.post(SWITCH, json={"target": "nowhere"}, headers=ADMIN)
    client.post(SWITCH, json={"useProduction": False}, headers=ADMIN)
    entries = client.get(HISTORY, headers=ADMIN).json()["entries"]
    assert [(e["to"], e["outcome"]) for e in entries] == [
        ("local", "ok"),
        ("nowhere", "refused"),
        ("production", "ok"),
    ]
    assert all(e["user"] == "alice" for e in entries)
    limited = client.get(HISTORY, params={"limit": 2}, headers=ADMIN).json()
    assert limited["limit"] == 2 and len(limited["entries"]) == 2
    assert limited["entries"][0]["to"] == "local"


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=-1",
        "limit=abc",
        "limit=1.5",
        "limit=",
        "limit=1001",
        "limit=99999999999",
        "limit=%00",
        "limit=%D9%A1",
        "limit=1&limit=2",
    ],
)
def test_a_bad_history_limit_is_422_not_500(client: TestClient, query: str) -> None:
    response = client.get(f"{HISTORY}?{query}", headers=ADMIN)
    assert response.status_code == 422
    assert "limit must be a whole number from 1 to 1000" in response.json()["message"]


def test_the_openapi_schema_documents_the_json_routes(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) >= {STATUS, SWITCH, HISTORY}
    assert PAGE not in paths
    switch = paths[SWITCH]["post"]
    body_schema = switch["requestBody"]["content"]["application/json"]["schema"]
    options = {"readOnly", "ignoreSchema", "forSeconds", "thenTarget", "wait"}
    assert [set(s["properties"]) for s in body_schema["oneOf"]] == [
        {"useProduction", *options},
        {"target", *options},
    ]
    assert {"200", "401", "403", "404", "422", "503"} <= set(switch["responses"])
    limit = paths[HISTORY]["get"]["parameters"][0]
    assert limit["name"] == "limit" and limit["schema"]["maximum"] == 1000


def test_a_real_uvicorn_server_serves_every_route(
    board: dbswap.Switchboard,
) -> None:
    """The same contract over a real socket: status, switch, refusals, history."""
    with live_server(admin_app(board)) as base, httpx.Client(base_url=base) as http:
        assert http.get(STATUS, headers=ADMIN).json()["target"] == "local"
        assert http.get(STATUS).status_code == 401
        assert http.post(SWITCH, json={"useProduction": True}, headers=USER).status_code == 403
        bad = http.post(SWITCH, content=b"{", headers=ADMIN | {"Content-Type": "application/json"})
        assert bad.status_code == 400
        assert http.post(SWITCH, json={"target": "x"}, headers=ADMIN).status_code == 404
        assert board.active == "local"
        ok = http.post(SWITCH, json={"useProduction": True}, headers=ADMIN)
        assert ok.status_code == 200 and ok.json()["generation"] == 1
        assert board.active == "production"
        assert http.get(f"{HISTORY}?limit=x", headers=ADMIN).status_code == 422
        assert http.get(HISTORY, headers=ADMIN).json()["entries"][0]["outcome"] == "ok"
        assert http.post(SWITCH, json={"useProduction": False}, headers=ADMIN).status_code == 200
    assert board.active == "local"


@pytest.mark.postgres
def test_no_secret_appears_in_any_response(
    pg_url: Callable[[str], str], sqlite_url: Callable[[str], str], tmp_path: Path
) -> None:
    """DB passwords, a per-target token and the admin token appear in no body or page."""
    production = sa.make_url(pg_url("secret_prod")).set(password=SECRET_PASSWORD)
    targets = [
        dbswap.Target("local", sqlite_url("local"), {"BLOB_READ_WRITE_TOKEN": "blob_local_T0k3n"}),
        dbswap.Target(
            "production",
            production.render_as_string(hide_password=False),
            {"BLOB_READ_WRITE_TOKEN": BLOB_TOKEN},
        ),
        dbswap.Target("broken", f"postgresql+psycopg://app:{SECRET_PASSWORD}x@127.0.0.1:1/nope"),
    ]
    board = dbswap.Switchboard(targets, runtime_dir=tmp_path / "rt")
    secrets = [SECRET_PASSWORD, BLOB_TOKEN, "blob_local_T0k3n", ADMIN["Authorization"][7:]]
    try:
        with TestClient(admin_app(board)) as client:
            responses = [
                client.get(STATUS, headers=ADMIN),
                client.post(SWITCH, json={"target": "production"}, headers=ADMIN),
                client.post(SWITCH, json={"target": "broken"}, headers=ADMIN),
                client.post(
                    SWITCH, content=b"{", headers=ADMIN | {"Content-Type": "application/json"}
                ),
                client.get(HISTORY, headers=ADMIN),
                client.get(PAGE, headers=ADMIN),
                client.post(SWITCH, json={"useProduction": False}, headers=ADMIN),
                client.get(STATUS),
            ]
        assert [r.status_code for r in responses] == [200, 200, 503, 400, 200, 200, 200, 401]
        assert "unreachable" in responses[5].text
        for response in responses:
            for secret in secrets:
                assert secret not in response.text, (response.request.url, secret)
            for value in response.headers.values():
                assert SECRET_PASSWORD not in value and BLOB_TOKEN not in value
        assert json.loads(responses[0].text)["targets"][1]["url"].count("***") == 1
    finally:
        board.dispose()
