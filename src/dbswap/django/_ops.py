"""Readiness and metrics views (in ``dbswap.django.urls``), each off unless its setting is on.

- ``DBSWAP_READINESS = True``: ``GET /healthz/database``, 200 ``{"target", "ok": true}``
  or 503, one check per ``DBSWAP_READINESS_CACHE`` seconds (default 1) at most,
  bounded by ``DBSWAP_READINESS_TIMEOUT`` (default 1).
- ``DBSWAP_METRICS = True``: the board's Prometheus metrics, ``GET /metrics``.

Unauthenticated (load balancers and Prometheus send no credentials); neither
answer holds a URL, an error text or a secret. Off, each answers 404.
"""

from __future__ import annotations

import json
import threading

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse

from .._readiness import HEADERS, Readiness
from .._switchboard import Switchboard
from ._board import get_board

_lock = threading.Lock()
_readiness_of: tuple[Switchboard, Readiness] | None = None  # rebuilt when set_board() changes it


def _readiness(board: Switchboard) -> Readiness:
    global _readiness_of
    with _lock:
        entry = _readiness_of
        if entry is None or entry[0] is not board:
            probe = Readiness(
                board,
                cache_seconds=getattr(settings, "DBSWAP_READINESS_CACHE", 1.0),
                timeout=getattr(settings, "DBSWAP_READINESS_TIMEOUT", 1.0),
            )
            entry = _readiness_of = (board, probe)
        return entry[1]


def readiness(request: HttpRequest) -> HttpResponse:
    if not getattr(settings, "DBSWAP_READINESS", False):
        raise Http404("readiness is off: set DBSWAP_READINESS = True")
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET"})
    answer = _readiness(get_board()).probe()
    return HttpResponse(
        json.dumps(answer.body),
        status=answer.status,
        content_type="application/json",
        headers=HEADERS,
    )


def metrics(request: HttpRequest) -> HttpResponse:
    if not getattr(settings, "DBSWAP_METRICS", False):
        raise Http404("metrics are off: set DBSWAP_METRICS = True")
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET"})
    from ..metrics import exposition

    board = get_board()
    if board._observer.metrics is None:  # a board given by set_board() or DBSWAP_BOARD
        board.enable_metrics()
    body, content_type = exposition(board)
    return HttpResponse(body, content_type=content_type, headers=HEADERS)
