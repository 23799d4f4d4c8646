"""The Flask side of ``DBSwap(readiness=True, metrics=True)``: two unauthenticated routes.

Load balancers and Prometheus send no credentials, and neither answer holds
a URL, an error text or a secret (see ``_readiness`` and ``dbswap.metrics``).
"""

from __future__ import annotations

import json

from flask import Blueprint, Response

from ._readiness import HEADERS, Readiness
from ._switchboard import Switchboard


def ops_blueprint(
    board: Switchboard,
    *,
    readiness: str | None,
    metrics: str | None,
    cache_seconds: float,
    check_timeout: float,
) -> Blueprint:
    """``readiness`` and ``metrics`` are the routes' paths (None: not served)."""
    blueprint = Blueprint("dbswap_ops", __name__)
    if readiness is not None:
        probe = Readiness(board, cache_seconds=cache_seconds, timeout=check_timeout)

        def database_readiness() -> Response:
            answer = probe.probe()
            return Response(
                json.dumps(answer.body), answer.status, HEADERS, mimetype="application/json"
            )

        blueprint.add_url_rule(readiness, "readiness", database_readiness, methods=["GET"])
    if metrics is not None:
        from .metrics import exposition

        if board._observer.metrics is None:
            board.enable_metrics()

        def metrics_page() -> Response:
            body, content_type = exposition(board)
            return Response(body, 200, {**HEADERS, "Content-Type": content_type})

        blueprint.add_url_rule(metrics, "metrics", metrics_page, methods=["GET"])
    return blueprint
