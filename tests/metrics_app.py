"""A Flask app for ``tests/test_prometheus.py``: gunicorn serves it with several workers.

dbswap's metrics and readiness routes are on; the admin API takes the bearer
token in ``METRICS_APP_TOKEN``. ``GET /read`` opens one pinned session and says
which target it used.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from flask import Flask, request

from dbswap.flask import DBSwap, NotAuthenticated, current_board

TOKEN = os.environ["METRICS_APP_TOKEN"]


def authorize() -> str:
    if request.headers.get("Authorization") != f"Bearer {TOKEN}":
        raise NotAuthenticated("send the test's bearer token")
    return "prometheus-test"


app = Flask(__name__)
app.config["SECRET_KEY"] = "metrics-app-secret"
DBSwap(app, authorize=authorize, metrics=True, readiness=True)


@app.get("/read")
def read() -> dict[str, object]:
    with current_board().sessionmaker()() as session:
        session.execute(sa.text("SELECT 1"))
        return {"target": session.dbswap_target, "pid": os.getpid()}
