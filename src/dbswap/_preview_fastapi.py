"""Personal previews for FastAPI / Starlette: the routes, and the middleware that pins.

::

    app.include_router(admin_router(board, authorize=authorize, csrf_secret=SECRET))
    # Inside any middleware authorize needs (SessionMiddleware): add it first.
    app.add_middleware(PreviewMiddleware, board=board, authorize=authorize, csrf_secret=SECRET)
    app.add_middleware(SessionMiddleware, secret_key=...)

``PreviewMiddleware`` runs each request of an admin who previews a target
inside ``board.pinned(target, read_only=...)``: sessions from
``board.sessionmaker()`` / ``async_sessionmaker()``, ``board.engine`` and
``board.active`` use the preview's target for that request only. The admin
routes always see the shared state (a router dependency lifts the pin there).

A Starlette cookie session (``request.session``) is one cookie for every
target. When it holds a login bound to its target (``stamp_claims``), a
previewed request's app sees a session of the preview's own instead: the
admin's login waits for the preview's end, and a login made during the
preview is kept for that preview only (``dbswap._identity``), as the Flask
adapter does. ``authorize`` and the admin routes read her own. A session with
no stamp (an app that binds nothing) is left as it is.
See ``dbswap._preview`` for the cookie and what is decided.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import _identity
from ._admin import MAX_BODY_BYTES, AdminCore, AdminError
from ._preview import (
    COOKIE_NAME,
    Preview,
    Previews,
    check_same_origin,
    cookie_header_to_clear,
    cookie_options,
)
from ._switchboard import Switchboard

SCOPE_KEY = "dbswap.preview"  # the honoured Preview, in the ASGI scope of its request
OWN_SESSION = "dbswap.own_session"  # the admin's own cookie session, set aside in a preview

Identify = Callable[[Request], Awaitable[str]]


def current_preview(request: Request) -> Preview | None:
    """The preview this request is pinned to by ``PreviewMiddleware`` (None: the shared target)."""
    preview = request.scope.get(SCOPE_KEY)
    return preview if isinstance(preview, Preview) else None


class PreviewMiddleware:
    """Pins each request of an admin who previews a target to that target (ASGI middleware).

    ``authorize`` is the admin router's; ``csrf_secret`` must be the admin
    router's too (None there and here: the runtime dir's shared key), so the
    cookies the router signs are the ones honoured here. A request with no
    preview cookie costs the parsing of its Cookie header; with one,
    ``authorize`` runs (a plain ``def`` in the thread pool). WebSockets pass
    through. A cookie that is forged, expired, another admin's or names an
    unknown target is ignored and cleared.

    With a cookie session (``SessionMiddleware`` added after this one) that
    holds a login stamped with its target, the app's pages see the preview's
    own session, not the admin's (see the module docstring).
    """

    def __init__(
        self,
        app: ASGIApp,
        board: Switchboard,
        *,
        authorize: Callable[[Request], Any],
        csrf_secret: str | bytes | None = None,
    ) -> None:
        self.app = app
        self.board = board
        self.previews = Previews(board, csrf_secret)
        self._authorize = authorize
        from .fastapi import _is_async_callable  # (it imports this module)

        self._is_async = _is_async_callable(authorize)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        cookie = request.cookies.get(COOKIE_NAME)
        preview = self.previews.read(cookie) if cookie is not None else None
        if preview is not None and await self._user(request) != preview.user:
            preview = None  # another admin's cookie (or nobody's): it does nothing
        session = scope.get("session")
        if preview is None:
            if isinstance(session, dict):
                session.pop(_identity.PREVIEW_KEY, None)  # its preview has ended
            if cookie is not None:
                send = _clearing(send, request.url.scheme == "https")
            await self.app(scope, receive, send)
            return
        scope[SCOPE_KEY] = preview
        if isinstance(session, dict) and _identity.KEY in session:  # a bound login
            send = _own_session_for(scope, session, preview, send)
        with self.board.pinned(preview.target, read_only=preview.read_only):
            await self.app(scope, receive, send)

    async def _user(self, request: Request) -> str | None:
        """Who ``authorize`` says this is; None when it refuses."""
        try:
            if self._is_async:
                value: Any = self._authorize(request)
            else:
                value = await run_in_threadpool(self._authorize, request)
            if inspect.isawaitable(value):
                value = await value
        except (AdminError, HTTPException):
            return None
        return None if value is None or value == "" else str(value)


def _own_session_for(scope: Scope, own: dict[str, Any], preview: Preview, send: Send) -> Send:
    """Give the app the preview's own session; keep what it did for that preview, and
    put the admin's own back before ``SessionMiddleware`` saves it (``send``)."""
    key = (preview.user, preview.target, preview.expires)
    scope[OWN_SESSION] = own
    seen = scope["session"] = _identity.login_of_preview(own.get(_identity.PREVIEW_KEY), key)

    async def keeping(message: Message) -> None:
        if message["type"] == "http.response.start" and scope.get("session") is seen:
            record = _identity.kept_for_preview(seen, key)
            if record is None:
                own.pop(_identity.PREVIEW_KEY, None)
            else:
                own[_identity.PREVIEW_KEY] = record
            scope["session"] = own
        await send(message)

    return keeping


def _end_preview_login(request: Request) -> None:
    """The admin's preview ends or is replaced: a login made during it ends now."""
    session = request.scope.get("session")
    if isinstance(session, dict):
        session.pop(_identity.PREVIEW_KEY, None)


def _clearing(send: Send, secure: bool) -> Send:
    """``send``, with the preview cookie cleared by the response."""

    async def clearing(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            headers.append((b"set-cookie", cookie_header_to_clear(secure).encode("latin-1")))
            message = {**message, "headers": headers}
        await send(message)

    return clearing


def see_shared_state(board: Switchboard) -> Callable[[Request], Awaitable[None]]:
    """A router dependency: the admin routes see the shared state, not the caller's preview,
    and the admin's own cookie session (which ``authorize`` reads), not the preview's.

    ``async``, so it runs in the endpoint's own context; the middleware's block
    ends with the request and restores the rest.
    """

    async def shared_state(request: Request) -> None:
        board._block_pin.set(None)
        own = request.scope.get(OWN_SESSION)
        if own is not None:
            request.scope["session"] = own

    return shared_state


def add_preview_routes(
    router: APIRouter,
    board: Switchboard,
    core: AdminCore,
    identify: Identify,
    csrf_secret: str | bytes | None,
) -> None:
    """``GET``, ``POST`` and ``DELETE /api/admin/database/preview`` on the admin router."""
    from . import fastapi as http  # (it imports this module)

    previews = Previews(board, csrf_secret, check_timeout=core.check_timeout)
    path = "/api/admin/database/preview"
    summary = "Your own preview of a target: only your requests use it; nothing is switched"
    description = (
        'Body: `{"target": "<name>"}`, optionally `"forSeconds": 1..3600` (default 900) and '
        '`"readOnly": true|false` (default: read-only for production); or `{"stop": true}`. '
        f"Sets (or clears) the `{COOKIE_NAME}` cookie, signed and bound to the admin "
        "`authorize` names; the app's `PreviewMiddleware` pins that admin's requests to the "
        "target until it expires. Nothing is switched: the state and its generation stay."
    )
    responses = http._errors(400, 401, 403, 404, 413, 415, 422, 503)

    @router.get(path, name="dbswap_preview", summary="Your preview, if any", responses=responses)
    async def preview_state(request: Request) -> Response:
        try:
            user = await identify(request)
        except AdminError as exc:
            return http._error(exc)
        payload = previews.state(request.cookies.get(COOKIE_NAME), user)
        return JSONResponse(payload, headers=http._NO_STORE)

    @router.post(
        path,
        name="dbswap_preview_start",
        summary=summary,
        description=description,
        responses=responses,
        openapi_extra={"requestBody": _BODY},
    )
    async def preview_start(request: Request) -> Response:
        try:
            user = await identify(request)
            check_same_origin(core.csrf, http._facts(request))
            body = await http._read_body(request, MAX_BODY_BYTES + 1)
            wanted = previews.parse(body, request.headers.get("content-type"))
            if wanted.target is None:
                return await stop(request, user)
            core.check_csrf(http._facts(request))  # starting one takes the page's token
            cookie = request.cookies.get(COOKIE_NAME)  # the preview this one replaces
            payload, preview = await run_in_threadpool(previews.start, wanted, user, cookie)
        except AdminError as exc:
            return http._error(exc)
        _end_preview_login(request)  # a new preview starts without the last one's login
        response = JSONResponse(payload, headers=http._NO_STORE)
        response.set_cookie(
            COOKIE_NAME,
            previews.sign(preview),
            samesite="strict",
            secure=request.url.scheme == "https",
            **cookie_options(preview),
        )
        return response

    @router.delete(
        path, name="dbswap_preview_stop", summary="End your preview", responses=responses
    )
    async def preview_stop(request: Request) -> Response:
        try:
            user = await identify(request)
            check_same_origin(core.csrf, http._facts(request))
            return await stop(request, user)
        except AdminError as exc:
            return http._error(exc)

    async def stop(request: Request, user: str) -> Response:
        payload = await run_in_threadpool(previews.stop, request.cookies.get(COOKIE_NAME), user)
        _end_preview_login(request)
        response = JSONResponse(payload, headers=http._NO_STORE)
        response.headers.append("set-cookie", cookie_header_to_clear(request.url.scheme == "https"))
        return response


_BODY: MutableMapping[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "target": {"type": "string", "maxLength": 64},
                    "forSeconds": {"type": ["number", "null"], "minimum": 1, "maximum": 3600},
                    "readOnly": {"type": ["boolean", "null"]},
                    "stop": {"type": "boolean", "enum": [True]},
                },
                "additionalProperties": False,
            },
            "examples": {
                "production": {"value": {"target": "production"}},
                "forFiveMinutes": {"value": {"target": "production", "forSeconds": 300}},
                "stop": {"value": {"stop": True}},
            },
        }
    },
}
