"""A stopped preview is over for every copy of its cookie, and previews obey the production cap.

A FastAPI app over real HTTP (Starlette's TestClient), real SQLite targets;
"another worker" is a second board and app on the same runtime dir, "another
host" a board with its own runtime dir on the same Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI, Request

import dbswap
from dbhelpers import seed
from dbswap._preview import COOKIE_NAME
from dbswap._redis_state import RedisStateStore
from dbswap.fastapi import NotAuthenticated, PreviewMiddleware, admin_router
from webhelpers import TestClient

PREVIEW = "/api/admin/database/preview"
SECRET = "revocation-test-secret-0123456789abcdef"
ALICE = {"Authorization": "Bearer alice-t0ken"}


def authorize(request: Request) -> str:
    if request.headers.get("authorization") == ALICE["Authorization"]:
        return "alice"
    raise NotAuthenticated()


def make_app(board: dbswap.Switchboard) -> FastAPI:
    Session = board.sessionmaker()
    app = FastAPI()
    app.include_router(admin_router(board, authorize=authorize, csrf_secret=SECRET))
    app.add_middleware(PreviewMiddleware, board=board, authorize=authorize, csrf_secret=SECRET)

    @app.get("/where")
    def where() -> dict[str, str]:
        with Session() as s:
            return {"label": str(s.scalar(sa.text("SELECT label FROM items")))}

    return app


@pytest.fixture
def urls(sqlite_url: Callable[[str], str]) -> dict[str, str]:
    result = {name: sqlite_url(name) for name in ("local", "production")}
    for name, url in result.items():
        seed(url, [name])
    return result


def start(client: TestClient, **body: object) -> str:
    response = client.post(PREVIEW, json={"target": "production", **body}, headers=ALICE)
    assert response.status_code == 200, response.text
    cookie = response.cookies.get(COOKIE_NAME)
    assert cookie
    return cookie


def seen_with(client: TestClient, cookie: str) -> str:
    """What alice's request carrying ``cookie`` reads (a copy of the cookie, replayed)."""
    client.cookies.clear()
    client.cookies.set(COOKIE_NAME, cookie)
    response = client.get("/where", headers=ALICE)
    client.cookies.clear()
    return str(response.json()["label"])


def stop(client: TestClient, cookie: str) -> bool:
    client.cookies.clear()
    client.cookies.set(COOKIE_NAME, cookie)
    stopped = bool(client.delete(PREVIEW, headers=ALICE).json()["stopped"])
    client.cookies.clear()
    return stopped


def test_a_copy_of_a_stopped_previews_cookie_pins_nothing(
    urls: dict[str, str], tmp_path: Path
) -> None:
    board = dbswap.Switchboard(urls, runtime_dir=tmp_path / "rt")
    worker = dbswap.Switchboard(urls, runtime_dir=tmp_path / "rt")  # another worker's board
    try:
        with TestClient(make_app(board)) as client, TestClient(make_app(worker)) as other:
            copy = start(client)
            assert seen_with(client, copy) == "production"
            assert seen_with(other, copy) == "production"
            assert stop(client, copy) is True
            assert seen_with(client, copy) == "local"  # revoked, not only cleared
            assert seen_with(other, copy) == "local"  # in every worker
            first = start(client)
            client.cookies.set(COOKIE_NAME, first)
            second = start(client)  # a new preview replaces the old one
            assert (seen_with(client, first), seen_with(client, second)) == ("local", "production")
    finally:
        board.close()
        worker.close()


@pytest.mark.redis
def test_a_stop_on_one_host_holds_on_every_host(
    urls: dict[str, str], tmp_path: Path, redis_url: str
) -> None:
    hosts = [
        dbswap.Switchboard(
            urls, runtime_dir=tmp_path / f"host{i}", store=RedisStateStore(redis_url)
        )
        for i in range(2)
    ]
    try:
        with TestClient(make_app(hosts[0])) as one, TestClient(make_app(hosts[1])) as two:
            copy = start(one)
            assert seen_with(two, copy) == "production"
            assert stop(one, copy) is True
            assert seen_with(two, copy) == "local"
    finally:
        for board in hosts:
            board.close()


def test_a_preview_of_production_lasts_no_longer_than_the_cap(
    urls: dict[str, str], tmp_path: Path
) -> None:
    board = dbswap.Switchboard(urls, runtime_dir=tmp_path / "rt", max_production=60)
    try:
        with TestClient(make_app(board)) as client:
            for read_only in (True, False):
                response = client.post(
                    PREVIEW,
                    json={"target": "production", "forSeconds": 900, "readOnly": read_only},
                    headers=ALICE,
                )
                body = response.json()
                assert body["forSeconds"] == 60 and 55 < body["secondsLeft"] <= 60
                assert "DBSWAP_MAX_PRODUCTION" in body["capped"]
                assert "Max-Age=60" in response.headers["set-cookie"]
            started = [e for e in board.history() if e["outcome"] == "preview"]
            assert [e["for_seconds"] for e in started] == [60, 60]
    finally:
        board.close()
