"""A tiny WSGI app for fleet tests and benchmarks: gunicorn serves it with several workers.

Each database has ``items`` (row 1's label names the database) and ``hits``.
``GET /read?rid=N`` runs ONE transaction: insert a hit tagged with the target
the session was pinned to, then read the label, and answers both, so a test
can prove no response mixed two databases and no transaction touched both.
``POST /switch?target=NAME[&drain=1]`` switches through this worker.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import sqlalchemy as sa

from dbswap import DBSwapError, Switchboard

board = Switchboard.from_env()
Session = board.sessionmaker()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    path = environ.get("PATH_INFO", "/")
    status, body = "200 OK", {}
    try:
        if path == "/read":
            with Session() as s:
                pinned = s.dbswap_target
                s.execute(
                    sa.text("INSERT INTO hits (rid, pinned, pid) VALUES (:rid, :pinned, :pid)"),
                    {"rid": query.get("rid", "0"), "pinned": pinned, "pid": os.getpid()},
                )
                label = s.execute(sa.text("SELECT label FROM items WHERE id = 1")).scalar()
                s.commit()
            body = {"pid": os.getpid(), "pinned": pinned, "label": label}
        elif path == "/switch" and environ["REQUEST_METHOD"] == "POST":
            result = board.use(query["target"], user="fleet-test", drain=query.get("drain") == "1")
            body = {"target": result.target, "generation": result.generation}
        else:
            status, body = "404 Not Found", {"error": "not found"}
    except DBSwapError as exc:
        status, body = "409 Conflict", {"error": str(exc)}
    data = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]
