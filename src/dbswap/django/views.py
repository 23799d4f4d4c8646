"""The admin API and ``/admin/configuration`` as Django views (include ``dbswap.django.urls``).

Staff only by default (``is_staff``); ``settings.DBSWAP_AUTHORIZE`` names another
check: a callable (or its dotted path) taking the request and returning the
user's name, raising ``NotAuthenticated``, ``Forbidden`` or ``PermissionDenied``.
The views run on the ``default`` database whatever target is active (see
``control_plane``), so a staff member of ``default`` can always switch back.
A login made on another target is refused with a page that says why (a
redirect to the log-in form would only sign in on that target again: a loop),
and its session is left alone.
CSRF is Django's own check, run after authorization so refusals are JSON;
requests with an ``Authorization`` header (scripts) are exempt, as in the
other adapters. Every status, message and payload comes from ``dbswap._admin``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware, get_token
from django.urls import reverse
from django.utils.module_loading import import_string
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie

from .._admin import (
    MAX_BODY_BYTES,
    AdminCore,
    AdminError,
    Forbidden,
    NotAuthenticated,
    page_headers,
)
from .._switchboard import Switchboard
from ._board import get_board
from ._identity import foreign_login
from ._routing import control_plane, control_target

_NO_STORE = {"Cache-Control": "no-store"}
_ELSEWHERE = "signed_in_elsewhere"  # a 401 that a log-in form cannot fix
_core_of: tuple[Switchboard, AdminCore] | None = None  # rebuilt when set_board() changes it


def staff_only(request: HttpRequest) -> str:
    """The default DBSWAP_AUTHORIZE: a logged-in, active staff member."""
    user: Any = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        raise NotAuthenticated()
    if not (user.is_active and user.is_staff):
        raise Forbidden("only staff members may switch the database")
    return str(user.get_username())


def _core() -> AdminCore:
    global _core_of
    board, entry = get_board(), _core_of
    if entry is None or entry[0] is not board:
        # CSRF is Django's: the core's own guard stays unused here, so any secret will do.
        entry = _core_of = (board, AdminCore(board, csrf_secret=secrets.token_bytes(32)))
    return entry[1]


def _authorize() -> Callable[[HttpRequest], object]:
    configured: Any = getattr(settings, "DBSWAP_AUTHORIZE", None)
    if configured is None:
        return staff_only
    return import_string(configured) if isinstance(configured, str) else configured  # type: ignore[no-any-return]


def _identify(request: HttpRequest, core: AdminCore) -> str:
    if "HTTP_AUTHORIZATION" not in request.META:  # a script's header, not the session
        why = foreign_login(request, control_target(), core.board.active)
        if why is not None:
            raise NotAuthenticated(why, code=_ELSEWHERE)
    try:
        value = _authorize()(request)
    except PermissionDenied as exc:
        raise Forbidden(core.board.mask(str(exc)) or "only staff members may switch") from None
    return core.user_id(value)


class _CsrfCheck(CsrfViewMiddleware):  # type: ignore[misc]
    """Django's CSRF check, its refusal as an AdminError instead of the failure view."""

    def _reject(self, request: HttpRequest, reason: str) -> HttpResponse:
        raise AdminError(f"CSRF check failed: {reason}", status=403, code="csrf")


def _protected(request: HttpRequest) -> HttpResponse:  # what the check is told it guards
    raise NotImplementedError


def _check_csrf(request: HttpRequest) -> None:
    if "HTTP_AUTHORIZATION" in request.META:
        return  # a script: browsers never add this header cross-origin on their own
    header = settings.CSRF_HEADER_NAME
    if header not in request.META and "HTTP_X_CSRF_TOKEN" in request.META:
        request.META[header] = request.META["HTTP_X_CSRF_TOKEN"]  # what the shared page sends
    check = _CsrfCheck(_protected)
    check.process_request(request)
    check.process_view(request, _protected, (), {})


def _json(
    payload: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] = {}
) -> HttpResponse:
    return HttpResponse(
        json.dumps(payload),
        status=status,
        content_type="application/json",
        headers=_NO_STORE | dict(headers),
    )


def _error(exc: AdminError) -> HttpResponse:
    return _json(exc.body(), exc.status, exc.headers)


def _method_not_allowed(allowed: str) -> HttpResponse:
    error = AdminError(f"use {allowed}", status=405, code="method_not_allowed")
    return _json(error.body(), 405, {"Allow": allowed})


def _read_body(request: HttpRequest, limit: int) -> bytes:
    """At most ``limit`` bytes: a huge body is refused without holding it all in memory."""
    if hasattr(request, "_body"):  # a middleware read it already
        return bytes(request.body[:limit])
    body = bytearray()
    while len(body) < limit:
        chunk = request.read(limit - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


def _status(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed("GET")
    core = _core()
    try:
        _identify(request, core)
    except AdminError as exc:
        return _error(exc)
    return _json(core.status())


def _switch(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _method_not_allowed("POST")
    core = _core()
    try:
        user = _identify(request, core)
        _check_csrf(request)
        body = _read_body(request, MAX_BODY_BYTES + 1)
        wanted = core.parse_switch(body, request.META.get("CONTENT_TYPE"))
        result = core.switch(wanted, user)
    except AdminError as exc:
        return _error(exc)
    return _json(result)


def _history(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed("GET")
    core = _core()
    try:
        _identify(request, core)
        payload = core.history(request.GET.getlist("limit"))
    except AdminError as exc:
        return _error(exc)
    return _json(payload)


def _configuration(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed("GET")
    core = _core()
    nonce = secrets.token_urlsafe(16)
    home = getattr(settings, "DBSWAP_HOME_URL", "/")
    try:
        user = _identify(request, core)
    except AdminError as exc:
        if exc.status == 401 and exc.code != _ELSEWHERE:
            return redirect_to_login(request.get_full_path())
        html = core.render_error_page(exc.status, exc.message, script_nonce=nonce, home=home)
        return HttpResponse(html, status=exc.status, headers=page_headers(nonce) | exc.headers)
    match = request.resolver_match
    namespace = f"{match.namespace}:" if match is not None and match.namespace else ""
    html = core.render_page(
        user=user,
        csrf_token=get_token(request),  # Django's token: the page sends it as X-CSRF-Token
        urls={key: reverse(namespace + key) for key in ("status", "switch", "history", "preview")},
        script_nonce=nonce,
        health=core.health(),
        history=core.history(())["entries"],
        home=home,
    )
    return HttpResponse(html, headers=page_headers(nonce))


# Decorated here rather than with @, so the views keep their types for mypy.
status = csrf_exempt(control_plane(_status))
switch = csrf_exempt(control_plane(_switch))  # CSRF: Django's check, run after authorization
history = csrf_exempt(control_plane(_history))
configuration = ensure_csrf_cookie(control_plane(_configuration))
