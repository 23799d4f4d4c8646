"""``dbswap.fastapi.ops_router``: the readiness probe and the metrics page, unauthenticated.

Kept apart from the admin router: load balancers and Prometheus send no
credentials, and neither answer holds a URL, an error text or a secret.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ._readiness import HEADERS, READINESS_PATH, Readiness
from ._switchboard import Switchboard

METRICS_PATH = "/metrics"


class ReadinessAnswer(BaseModel):
    target: str | None
    ok: bool
    reason: str | None = None


def ops_router(
    board: Switchboard,
    *,
    readiness: bool = True,
    metrics: bool = False,
    readiness_path: str = READINESS_PATH,
    metrics_path: str = METRICS_PATH,
    cache_seconds: float = 1.0,
    check_timeout: float = 1.0,
    tags: list[str] | None = None,
) -> APIRouter:
    """``GET /healthz/database`` (readiness) and, with ``metrics=True``, ``GET /metrics``.

    Readiness: 200 ``{"target": "<active>", "ok": true}`` when the active target
    answers a check, 503 with a generic ``reason`` otherwise; one check per
    ``cache_seconds`` at most, each bounded by ``check_timeout``. ``metrics=True``
    turns the board's metrics on (prometheus-client's default registry, unless
    they are on already) and serves ``dbswap.metrics.exposition(board)``.
    """
    router = APIRouter(tags=list(tags) if tags is not None else ["dbswap operations"])
    if readiness:
        probe = Readiness(board, cache_seconds=cache_seconds, timeout=check_timeout)

        @router.get(
            readiness_path,
            name="dbswap_readiness",
            summary="Whether the active database answers a check (for load balancers)",
            response_model=ReadinessAnswer,
            responses={503: {"model": ReadinessAnswer}},
        )
        async def database_readiness() -> Response:
            # A fresh answer needs no thread; a check runs in the threadpool, never on the loop.
            answer = probe.cached()
            if answer is None:
                answer = await run_in_threadpool(probe.probe)
            return JSONResponse(answer.body, status_code=answer.status, headers=HEADERS)

    if metrics:
        from .metrics import exposition

        if board._observer.metrics is None:
            board.enable_metrics()

        @router.get(metrics_path, name="dbswap_metrics", include_in_schema=False)
        async def metrics_page() -> Response:
            body, content_type = await run_in_threadpool(exposition, board)
            return Response(body, headers={"Content-Type": content_type, **HEADERS})

    return router
