"""A write that a read-only target refused: a clean 409 for the app's request, never a 500.

``ReadOnlyTarget`` rises from the database when a view writes during a read-only
switch or a read-only preview. ``DBSwapMiddleware.process_exception`` answers it:
JSON (the body of ``AdminError``) for a client that sends or asks for JSON, else a
small page. Its advice comes from ``read_only_refusal``: in a preview, start a
writable preview (it moves only the admin's own requests), never a writable switch.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.conf import settings
from django.http import HttpResponse

from .._admin import AdminCore, page_headers, read_only_refusal


def read_only_response(request: Any, target: str, *, previewing: bool) -> HttpResponse:
    error = read_only_refusal(target, previewing=previewing)
    if _wants_json(request):
        return HttpResponse(
            json.dumps(error.body()),
            status=error.status,
            content_type="application/json",
            headers={"Cache-Control": "no-store"} | error.headers,
        )
    nonce = secrets.token_urlsafe(16)
    home = getattr(settings, "DBSWAP_HOME_URL", "/")
    html = AdminCore.render_error_page(error.status, error.message, script_nonce=nonce, home=home)
    return HttpResponse(html, status=error.status, headers=page_headers(nonce) | error.headers)


def _wants_json(request: Any) -> bool:
    sent = str(request.content_type or "")
    accept = str(request.headers.get("Accept", ""))
    if sent == "application/json" or sent.endswith("+json"):
        return True
    return "json" in accept and "text/html" not in accept
