"""A personal preview: one admin's requests on production, everybody else's on local."""

import sqlalchemy as sa
from fastapi import FastAPI, Request
from starlette.testclient import TestClient

from dbswap import Switchboard
from dbswap.fastapi import NotAuthenticated, PreviewMiddleware, admin_router, current_preview

board = Switchboard.from_env()
Session = board.sessionmaker()
SECRET = "a-long-random-secret-of-this-app"  # signs the page's CSRF tokens and the previews


def authorize(request: Request) -> str:
    """Who is asking (never read from a switched database): here, one bearer token."""
    if request.headers.get("authorization") != "Bearer admin-t0ken":
        raise NotAuthenticated()
    return "alice"


app = FastAPI()
app.include_router(admin_router(board, authorize=authorize, csrf_secret=SECRET))
# The same authorize and secret. Added before SessionMiddleware, if authorize reads the session.
app.add_middleware(PreviewMiddleware, board=board, authorize=authorize, csrf_secret=SECRET)


@app.get("/items")
def items(request: Request) -> dict[str, object]:
    preview = current_preview(request)  # this admin's own preview, if the request is pinned to one
    with Session() as s:
        labels = s.scalars(sa.text("SELECT label FROM items ORDER BY id")).all()
        return {"target": s.dbswap_target, "preview": preview is not None, "items": labels}


ADMIN = {"Authorization": "Bearer admin-t0ken"}
with TestClient(app) as alice, TestClient(app) as everybody:  # two browsers
    body = {"target": "production", "forSeconds": 900}  # read-only: production's default
    started = alice.post("/api/admin/database/preview", json=body, headers=ADMIN).json()
    print(started["target"], started["readOnly"], started["expiresAt"])
    print(alice.get("/items", headers=ADMIN).json())  # production's rows: her requests only
    print(everybody.get("/items").json())  # local's rows: nothing was switched
    print(board.active, board.generation)  # local 0
    alice.delete("/api/admin/database/preview", headers=ADMIN)  # or wait 15 minutes
    print(alice.get("/items", headers=ADMIN).json()["target"])  # local
    print([entry["outcome"] for entry in board.history(2)])  # ['preview-ended', 'preview']
board.close()
