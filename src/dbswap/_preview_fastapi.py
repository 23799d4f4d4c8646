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
        if cookie is None:
            await self.app(scope, receive, send)
            return
        preview = self.previews.read(cookie)
        if preview is not None and await self._user(request) != preview.user:
            preview = None  # another admin's cookie (or nobody's): it does nothing
        if preview is None:
            secure = request.url.scheme == "https"
            await self.app(scope, receive, _clearing(send, secure))
            return
        scope[SCOPE_KEY] = preview
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


def _clearing(send: Send, secure: bool) -> Send:
    """``send``, with the preview cookie cleared by the response."""

    async def clearing(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            headers.append((b"set-cookie", cookie_header_to_clear(secure).encode("latin-1")))
            message = {**message, "headers": headers}
        await send(message)

    return clearing


def see_shared_state(board: Switchboard) -> Callable[[], Awaitable[None]]:
    """A router dependency: the admin routes see the shared state, not the caller's preview.

    ``async``, so it runs in the endpoint's own context; the middleware's block
    ends with the request and restores the rest.
    """

    async def shared_state() -> None:
        board._block_pin.set(None)

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
            payload, preview = await run_in_threadpool(previews.start, wanted, user)
        except AdminError as exc:
            return http._error(exc)
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
