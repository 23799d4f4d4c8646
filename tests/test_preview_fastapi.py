"""Personal previews in FastAPI: ``PreviewMiddleware`` and ``/api/admin/database/preview``.

``local`` is a SQLite file, ``production`` a PostgreSQL database; both have a
table ``tagged`` whose rows say which client wrote them. alice and carol are
admins (bearer tokens, or a ``who`` cookie standing in for a cookie session),
bob is not. A preview pins only its admin's requests; everybody else, the
state file and its generation stay where they are.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

import dbswap
from dbswap._preview import COOKIE_NAME, Preview, Previews
from dbswap.fastapi import (
    Forbidden,
    NotAuthenticated,
    PreviewMiddleware,
    admin_router,
    current_preview,
)
from webhelpers import STATUS, TestClient, live_server, snapshot

pytestmark = pytest.mark.postgres

PREVIEW = "/api/admin/database/preview"
SECRET = "preview-test-secret-0123456789abcdef"
ALICE = {"Authorization": "Bearer alice-t0ken"}
CAROL = {"Authorization": "Bearer carol-t0ken"}
BOB = {"Authorization": "Bearer bob-t0ken"}
TOKENS = {ALICE["Authorization"]: "alice", CAROL["Authorization"]: "carol"}

METADATA = sa.MetaData()
TAGGED = sa.Table(
    "tagged",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("client", sa.String(20), nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
)


def authorize(request: Request) -> str:
    header = request.headers.get("authorization")
    if header is None:
        who = request.cookies.get("who")  # stands in for a cookie session: CSRF applies
        if who in ("alice", "carol"):
            return who
        raise NotAuthenticated()
    if header in TOKENS:
        return TOKENS[header]
    if header == BOB["Authorization"]:
        raise Forbidden("bob is not an administrator")
    raise NotAuthenticated("unknown token")


def make_app(board: dbswap.Switchboard) -> FastAPI:
    Session = board.sessionmaker()
    AsyncSessionLocal = board.async_sessionmaker()
    app = FastAPI()
    app.include_router(admin_router(board, authorize=authorize, csrf_secret=SECRET))
    app.add_middleware(PreviewMiddleware, board=board, authorize=authorize, csrf_secret=SECRET)

    @app.get("/tagged")
    def read(request: Request, client: str) -> dict[str, Any]:
        with Session() as s:
            count = s.scalar(sa.select(sa.func.count()).where(TAGGED.c.client == client))
            preview = current_preview(request)
            return {
                "target": s.dbswap_target,
                "readOnly": s.dbswap_read_only,
                "count": count,
                "preview": preview.target if preview else None,
            }

    @app.post("/tagged")
    def write(body: dict[str, Any]) -> Any:
        with Session() as s:
            try:
                s.execute(TAGGED.insert().values(client=body["client"], n=body["n"]))
                s.commit()
            except dbswap.ReadOnlyTarget as exc:
                return JSONResponse({"error": str(exc)}, status_code=409)
            return {"target": s.dbswap_target}

    @app.get("/async-tagged")
    async def read_async() -> dict[str, Any]:
        async with AsyncSessionLocal() as s:
            rows = await s.scalar(sa.select(sa.func.count()).select_from(TAGGED))
            assert isinstance(s, AsyncSession)
            return {"target": s.sync_session.dbswap_target, "rows": rows}  # type: ignore[attr-defined]

    @app.get("/active")
    def active() -> dict[str, str]:
        return {"active": board.active}

    return app


@pytest.fixture
def urls(sqlite_url: Callable[[str], str], pg_url: Callable[[str], str]) -> dict[str, str]:
    result = {"local": sqlite_url("local"), "production": pg_url("production")}
    for url in result.values():
        engine = sa.create_engine(url)
        METADATA.create_all(engine)
        engine.dispose()
    return result


@pytest.fixture
def board(urls: dict[str, str], tmp_path: Path) -> Iterator[dbswap.Switchboard]:
    board = dbswap.Switchboard(urls, runtime_dir=tmp_path / "rt")
    yield board
    board.dispose()


@pytest.fixture
def client(board: dbswap.Switchboard) -> Iterator[TestClient]:
    with TestClient(make_app(board)) as client:
        yield client


def rows(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.select(TAGGED.c.client, sa.func.count()).group_by(TAGGED.c.client)
            return {client: count for client, count in conn.execute(query)}
    finally:
        engine.dispose()


def start(client: TestClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    response = client.post(PREVIEW, json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response


def cleared(response: httpx.Response) -> bool:
    """Whether the response makes the browser forget the preview cookie."""
    return any(
        value.startswith(f"{COOKIE_NAME}=;") and "Max-Age=0" in value
        for value in response.headers.get_list("set-cookie")
    )


# -- what a preview is ------------------------------------------------------------------


def test_a_preview_pins_only_its_admins_requests_and_switches_nothing(
    client: TestClient, board: dbswap.Switchboard, urls: dict[str, str]
) -> None:
    before = snapshot(board)
    response = start(client, ALICE, target="production")
    body = response.json()
    assert body["success"] is True
    assert (body["target"], body["readOnly"], body["user"]) == ("production", True, "alice")
    assert (body["activeTarget"], body["generation"], body["forSeconds"]) == ("local", 0, 900)
    assert 899 <= body["secondsLeft"] <= 900
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    for attribute in ("HttpOnly", "Max-Age=900", "Path=/", "SameSite=strict"):
        assert attribute in cookie, cookie

    # alice's requests (sync and async sessions) read production, read-only.
    mine = client.get("/tagged", params={"client": "x"}, headers=ALICE).json()
    assert mine == {"target": "production", "readOnly": True, "count": 0, "preview": "production"}
    assert client.get("/async-tagged", headers=ALICE).json()["target"] == "production"
    assert client.get("/active", headers=ALICE).json() == {"active": "production"}
    # The admin routes still show what everybody uses, and she sees her preview there.
    assert client.get(STATUS, headers=ALICE).json()["target"] == "local"
    state = client.get(PREVIEW, headers=ALICE).json()
    assert state["preview"]["target"] == "production" and state["activeTarget"] == "local"

    # Everybody else: local, whoever they are.
    with TestClient(client.app) as other:
        assert other.get("/tagged", params={"client": "x"}).json()["target"] == "local"
        assert other.get("/active").json() == {"active": "local"}
        assert other.get(PREVIEW, headers=CAROL).json()["preview"] is None
    assert board.active == "local"
    assert snapshot(board) == before  # state file bytes and generation unchanged

    stopped = client.delete(PREVIEW, headers=ALICE)
    assert stopped.status_code == 200, stopped.text
    assert stopped.json() == {
        "success": True,
        "stopped": True,
        "target": "production",
        "activeTarget": "local",
        "generation": 0,
    }
    assert cleared(stopped)
    assert client.get("/tagged", params={"client": "x"}, headers=ALICE).json()["target"] == "local"
    assert snapshot(board) == before

    ended, started = board.history(2)
    assert started["outcome"] == "preview" and ended["outcome"] == "preview-ended"
    for entry in (started, ended):
        assert (entry["user"], entry["from"], entry["to"]) == ("alice", "local", "production")
        assert entry["generation"] is None and entry["read_only"] is True
    assert started["for_seconds"] == 900 and started["expires_at"] == body["expiresAt"]


def test_production_previews_refuse_writes_unless_asked_otherwise(
    client: TestClient, urls: dict[str, str]
) -> None:
    start(client, ALICE, target="production")
    refused = client.post("/tagged", json={"client": "alice", "n": 1}, headers=ALICE)
    assert refused.status_code == 409 and "read-only" in refused.json()["error"]
    assert rows(urls["production"]) == {} and rows(urls["local"]) == {}

    writable = start(client, ALICE, target="production", readOnly=False).json()
    assert writable["readOnly"] is False
    written = client.post("/tagged", json={"client": "alice", "n": 2}, headers=ALICE)
    assert written.json() == {"target": "production"}
    assert rows(urls["production"]) == {"alice": 1} and rows(urls["local"]) == {}


def test_two_clients_under_load_each_land_on_their_own_target(
    board: dbswap.Switchboard, urls: dict[str, str]
) -> None:
    """A previewing admin and an ordinary client, 100 requests each at once: 0 wrong rows."""
    before = snapshot(board)
    with live_server(make_app(board)) as base:
        with httpx.Client(base_url=base, timeout=30) as setup:
            response = setup.post(
                PREVIEW, json={"target": "production", "readOnly": False}, headers=ALICE
            )
            assert response.status_code == 200, response.text
            cookie = response.cookies[COOKIE_NAME]
        clients = {
            "admin": ({**ALICE}, {COOKIE_NAME: cookie}, "production"),
            "other": ({}, {}, "local"),
        }
        wrong: list[tuple[str, int, object]] = []
        barrier = threading.Barrier(len(clients))

        def run(name: str) -> None:
            headers, cookies, expected = clients[name]
            with httpx.Client(base_url=base, headers=headers, cookies=cookies, timeout=30) as http:
                barrier.wait()
                for n in range(100):
                    if n % 2:
                        seen = http.get("/tagged", params={"client": name}).json()["target"]
                    else:
                        seen = http.post("/tagged", json={"client": name, "n": n}).json()["target"]
                    if seen != expected:
                        wrong.append((name, n, seen))

        threads = [threading.Thread(target=run, args=(name,)) for name in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(thread.is_alive() for thread in threads)
    assert wrong == []
    assert rows(urls["production"]) == {"admin": 50}
    assert rows(urls["local"]) == {"other": 50}
    assert snapshot(board) == before and board.active == "local"
    assert [e["outcome"] for e in board.history(5)] == ["preview"]


# -- cookies that do nothing ---------------------------------------------------------------


FORGED: dict[str, Callable[[Previews, str], str]] = {
    # name -> how to make the cookie from a real one of alice's
    "tampered signature": lambda p, real: real[:-2] + ("AA" if not real.endswith("AA") else "BB"),
    "tampered target": lambda p, real: (
        p.sign(Preview("alice", "production", False, time.time() + 600)).split(".")[0]
        + "."
        + real.split(".")[1]
    ),
    "expired": lambda p, real: p.sign(Preview("alice", "production", True, time.time() - 1)),
    "another admin's": lambda p, real: p.sign(
        Preview("carol", "production", True, time.time() + 600)
    ),
    "unknown target": lambda p, real: p.sign(Preview("alice", "staging", True, time.time() + 600)),
    "another key": lambda p, real: Previews(p.board, "another-secret-0123456789").sign(
        Preview("alice", "production", True, time.time() + 600)
    ),
    "garbage": lambda p, real: "not-a-cookie",
    "huge": lambda p, real: "A" * 3000 + "." + real.split(".")[1],
}


@pytest.mark.parametrize("kind", list(FORGED))
def test_a_forged_expired_or_foreign_cookie_is_ignored_and_cleared(
    client: TestClient, board: dbswap.Switchboard, kind: str
) -> None:
    real = start(client, ALICE, target="production").cookies[COOKIE_NAME]
    client.cookies.clear()
    before = snapshot(board), board.history(None)
    cookie = FORGED[kind](Previews(board, SECRET), real)
    client.cookies.set(COOKIE_NAME, cookie)
    response = client.get("/tagged", params={"client": "x"}, headers=ALICE)
    assert response.json()["target"] == "local", kind
    assert cleared(response), response.headers
    client.cookies.set(COOKIE_NAME, cookie)
    assert client.get(PREVIEW, headers=ALICE).json()["preview"] is None
    assert (snapshot(board), board.history(None)) == before  # nothing changed, nothing audited


def test_a_cookie_copied_to_another_admins_browser_does_nothing(client: TestClient) -> None:
    carols = start(client, CAROL, target="production").cookies[COOKIE_NAME]

    def read_with_carols_cookie(headers: dict[str, str]) -> httpx.Response:
        client.cookies.clear()
        client.cookies.set(COOKIE_NAME, carols)
        return client.get("/tagged", params={"client": "x"}, headers=headers)

    as_alice = read_with_carols_cookie(ALICE)
    assert as_alice.json()["target"] == "local" and cleared(as_alice)
    nobody = read_with_carols_cookie({})
    assert nobody.json()["target"] == "local" and cleared(nobody)
    as_carol = read_with_carols_cookie(CAROL)
    assert as_carol.json()["target"] == "production" and not cleared(as_carol)


def test_a_preview_ends_by_itself(client: TestClient, board: dbswap.Switchboard) -> None:
    # 2 s, not 1: the test client's cookie jar counts whole seconds, so a Max-Age=1 cookie
    # set late in a second lapses at the next one, before the preview does.
    cookie = start(client, ALICE, target="production", forSeconds=2).cookies[COOKIE_NAME]
    assert (
        client.get("/tagged", params={"client": "x"}, headers=ALICE).json()["target"]
        == "production"
    )
    time.sleep(2.2)
    after = client.get("/tagged", params={"client": "x"}, headers=ALICE)
    assert after.json()["target"] == "local"  # the browser dropped it (Max-Age=1)...
    client.cookies.set(COOKIE_NAME, cookie)
    kept = client.get("/tagged", params={"client": "x"}, headers=ALICE)
    assert kept.json()["target"] == "local" and cleared(kept)  # ...and the server ignores it
    assert board.active == "local" and board.generation == 0


# -- the API's refusals ----------------------------------------------------------------------

REFUSALS: list[tuple[dict[str, str], bytes, str, int, str]] = [
    # (headers, body, content type, status, a phrase of the message)
    ({}, b'{"target": "production"}', "application/json", 401, "log in"),
    (BOB, b'{"target": "production"}', "application/json", 403, "bob is not"),
    (ALICE, b'{"target": "production"}', "text/plain", 415, "JSON"),
    (ALICE, b"{nope", "application/json", 400, "not valid JSON"),
    (ALICE, b'["production"]', "application/json", 422, "JSON object"),
    (ALICE, b'{"target": "production", "forSeconds": 3601}', "application/json", 422, "1 to 3600"),
    (ALICE, b'{"target": "production", "forSeconds": 0}', "application/json", 422, "1 to 3600"),
    (ALICE, b'{"target": "production", "forSeconds": 1e400}', "application/json", 422, "1 to 3600"),
    (ALICE, b'{"target": "production", "forSeconds": "15m"}', "application/json", 422, "number"),
    (ALICE, b'{"target": "production", "readOnly": "yes"}', "application/json", 422, "readOnly"),
    (ALICE, b'{"target": 7}', "application/json", 422, "'target' must name"),
    (ALICE, b'{"target": "production", "stop": true}', "application/json", 422, "alone"),
    (ALICE, b'{"target": "production", "user": "bob"}', "application/json", 422, "unexpected"),
    (ALICE, b'{"target": "staging"}', "application/json", 404, "known targets: local, production"),
]


@pytest.mark.parametrize(("headers", "body", "content_type", "status", "phrase"), REFUSALS)
def test_refused_requests_change_nothing_and_say_why(
    client: TestClient,
    board: dbswap.Switchboard,
    headers: dict[str, str],
    body: bytes,
    content_type: str,
    status: int,
    phrase: str,
) -> None:
    before = snapshot(board), board.history(None)
    response = client.post(PREVIEW, content=body, headers={**headers, "Content-Type": content_type})
    assert response.status_code == status, response.text
    assert phrase in response.json()["message"]
    assert COOKIE_NAME not in response.cookies
    assert (snapshot(board), board.history(None)) == before


def test_a_browser_needs_the_pages_token_to_start_and_its_own_origin_to_stop(
    client: TestClient, board: dbswap.Switchboard
) -> None:
    client.cookies.set("who", "alice")  # a cookie session: the CSRF checks apply
    no_token = client.post(PREVIEW, json={"target": "production"})
    assert no_token.status_code == 403 and no_token.json()["error"] == "csrf"
    page = client.get("/admin/configuration")
    token = page.text.split('name="dbswap-csrf" content="')[1].split('"')[0]
    cross = client.post(
        PREVIEW,
        json={"target": "production"},
        headers={"X-CSRF-Token": token, "Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    assert board.history(None) == []
    ok = client.post(PREVIEW, json={"target": "production"}, headers={"X-CSRF-Token": token})
    assert ok.status_code == 200, ok.text
    assert 'data-preview-url="/api/admin/database/preview"' in page.text
    assert client.get("/tagged", params={"client": "x"}).json()["target"] == "production"
    refused = client.delete(PREVIEW, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert client.get("/tagged", params={"client": "x"}).json()["target"] == "production"
    stopped = client.post(PREVIEW, json={"stop": True}, headers={"Origin": "http://testserver"})
    assert stopped.status_code == 200 and stopped.json()["stopped"] is True
    assert client.get("/tagged", params={"client": "x"}).json()["target"] == "local"
    assert [e["outcome"] for e in board.history(None)] == ["preview-ended", "preview"]


def test_an_unreachable_target_starts_no_preview(urls: dict[str, str], tmp_path: Path) -> None:
    broken = {**urls, "staging": f"sqlite:///{tmp_path / 'missing' / 'staging.db'}"}
    board = dbswap.Switchboard(broken, runtime_dir=tmp_path / "rt")
    try:
        with TestClient(make_app(board)) as client:
            response = client.post(PREVIEW, json={"target": "staging"}, headers=ALICE)
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "target_unavailable"
            assert COOKIE_NAME not in response.cookies
            assert board.history(None) == []
    finally:
        board.dispose()
