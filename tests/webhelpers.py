"""Helpers for the web tests: a token-authorized admin app, a real uvicorn server, snapshots."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI, Request
from starlette.testclient import TestClient

import dbswap
from dbswap.fastapi import Forbidden, NotAuthenticated, admin_router

__all__ = ["TestClient"]

# Debian's Chromium, never a downloaded browser; flags for this machine's closed network.
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NEEDS_CHROMIUM = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
]

ADMIN_TOKEN = "adm-T0ken-5f8e2c71"
USER_TOKEN = "usr-T0ken-91ab3c44"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
USER = {"Authorization": f"Bearer {USER_TOKEN}"}
SWITCH = "/api/admin/database/switch"
STATUS = "/api/admin/database"
HISTORY = "/api/admin/database/history"
PAGE = "/admin/configuration"


def authorize_by_token(request: Request) -> str:
    """alice is an admin, bob is a plain user, anyone else is nobody."""
    header = request.headers.get("authorization")
    if header is None:
        raise NotAuthenticated("send 'Authorization: Bearer <token>'")
    if header == ADMIN["Authorization"]:
        return "alice"
    if header == USER["Authorization"]:
        raise Forbidden("bob is not an administrator")
    raise NotAuthenticated("unknown token")


def admin_app(board: dbswap.Switchboard, **options: object) -> FastAPI:
    """An app whose only routes are the admin router, authorized by bearer tokens."""
    app = FastAPI()
    app.include_router(admin_router(board, authorize=authorize_by_token, **options))  # type: ignore[arg-type]
    return app


def snapshot(board: dbswap.Switchboard) -> tuple[dbswap.State, bytes | None]:
    """The committed state and the exact bytes of the state file."""
    path = Path(board.runtime_dir) / "db-target.json"
    return board.state, path.read_bytes() if path.exists() else None


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """``app`` under a real uvicorn server on a free loopback port, stopped at the end."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, ws="none", lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"
