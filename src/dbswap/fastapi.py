"""The FastAPI / Starlette adapter: the admin API and page in one ``include_router`` line.

::

    from dbswap.fastapi import Forbidden, NotAuthenticated, admin_router

    def authorize(request: Request) -> str:
        user = request.session.get("user")          # never read from a switched database
        if user is None:
            raise NotAuthenticated()
        if not user["admin"]:
            raise Forbidden()
        return user["id"]

    app.include_router(admin_router(board, authorize=authorize))
    app.include_router(ops_router(board, metrics=True))   # /healthz/database, /metrics

A token or cookie says who someone is by an id read from one target; bind it to
that target (the same id on another target may be somebody else)::

    from dbswap.fastapi import bound_to_target, stamp_claims

    @app.post("/login")
    def login(form: Form, db: Annotated[Session, Depends(get_db)]) -> dict[str, str]:
        user = ...                                   # read through db
        return {"token": sign(stamp_claims({"sub": user.id}, db))}

    bound = bound_to_target(board, token_claims, session=get_db)   # token_claims: the app's own
    Claims = Annotated[Mapping[str, Any], Depends(bound)]          # use it as any dependency

A write that a read-only target refuses (a read-only switch or preview) is a
409 rather than a 500 with ``app.add_exception_handler(ReadOnlyTarget,
read_only_refused)``.

Every decision (statuses, messages, payloads, CSRF) lives in ``dbswap._admin``,
shared with the other adapters; this module only translates requests and
responses. Blocking work (a plain ``def`` authorize, switch, health checks, the
audit file) runs in the thread pool, never on the event loop.
"""

from __future__ import annotations

import functools
import inspect
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

try:
    from fastapi import APIRouter, Depends, Request
    from fastapi import HTTPException as _Refusal
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from pydantic import BaseModel, ConfigDict
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"dbswap.fastapi needs FastAPI ({exc.name} is not installed): pip install 'dbswap[fastapi]'"
    ) from None

from . import _identity
from ._admin import (
    MAX_BODY_BYTES,
    AdminCore,
    AdminError,
    Forbidden,
    NotAuthenticated,
    page_headers,
    read_only_refusal,
)
from ._csrf import COOKIE_NAME, RequestFacts
from ._errors import ConfigError, ReadOnlyTarget
from ._ops_fastapi import ops_router
from ._preview_fastapi import (
    PreviewMiddleware,
    add_preview_routes,
    current_preview,
    see_shared_state,
)
from ._switchboard import Switchboard

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

__all__ = [
    "TARGET_CLAIM",
    "AdminError",
    "Authorize",
    "Forbidden",
    "NotAuthenticated",
    "PreviewMiddleware",
    "admin_router",
    "bound_to_target",
    "current_preview",
    "ops_router",
    "read_only_refused",
    "stamp_claims",
]

Authorize = Callable[[Request], "str | Awaitable[str]"]
"""Return the acting user's id, or raise NotAuthenticated (401) / Forbidden (403)."""

_NO_STORE = {"Cache-Control": "no-store"}

TARGET_CLAIM = _identity.KEY
"""The claim (or cookie-session key) ``stamp_claims`` adds: the target a login was made on."""


# -- OpenAPI documentation models (responses are built by the core) ---------


class TargetInfo(BaseModel):
    name: str
    dialect: str
    url: str
    production: bool
    active: bool
    readOnlyDefault: bool


class DatabaseStatus(BaseModel):
    target: str
    useProduction: bool
    readOnly: bool
    locked: bool
    lockReason: str | None
    generation: int
    switchedAt: str | None
    switchedBy: str | None
    expiresAt: str | None = None  # a time-boxed switch: when it ends (UTC)
    returnTo: str | None = None  # where it returns then
    secondsLeft: float | None = None
    returnProblem: str | None = None  # it ended and the return failed: why
    defaultTarget: str
    # processes following the state: total, hosts, current, lagging, processes (None: unknown)
    followers: dict[str, Any] | None = None
    targets: list[TargetInfo]


class SwitchResponse(BaseModel):
    success: Literal[True]
    target: str
    previous: str
    generation: int
    changed: bool
    durationMs: float
    useProduction: bool
    readOnly: bool
    expiresAt: str | None = None
    returnTo: str | None = None
    hotSwap: Literal[True]
    requiresRestart: Literal[False]
    acknowledged: int | None = None  # with "wait": processes on the new generation...
    followers: list[dict[str, Any]] | None = None  # ...of these (each says if it is)
    waitedMs: float | None = None


class ErrorResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    success: Literal[False]
    error: str
    message: str


class HistoryResponse(BaseModel):
    limit: int
    entries: list[dict[str, Any]]


_OPTIONS = {
    "readOnly": {
        "type": ["boolean", "null"],
        "description": "true: the database refuses writes; false: writable; "
        "absent or null: the target's default (DBSWAP_READONLY)",
    },
    "ignoreSchema": {
        "type": "boolean",
        "description": "switch even if the Alembic revision differs (audited)",
    },
    "forSeconds": {
        "type": ["number", "null"],
        "minimum": 1,
        "maximum": 604800,
        "description": "the switch ends on its own after this many seconds; on the active "
        "target, a new end; absent or null: no time limit (DBSWAP_MAX_PRODUCTION aside)",
    },
    "thenTarget": {
        "type": ["string", "null"],
        "maxLength": 64,
        "description": "where a switch with forSeconds returns (default: the previous target)",
    },
    "wait": {
        "type": ["number", "null"],
        "minimum": 0,
        "maximum": 60,
        "description": "once switched, wait up to this many seconds until every process "
        "following the state serves the new generation (acknowledged, followers)",
    },
}
_SWITCH_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {
                        "title": "By flag (true: production, false: the default target)",
                        "type": "object",
                        "properties": {"useProduction": {"type": "boolean"}, **_OPTIONS},
                        "required": ["useProduction"],
                        "additionalProperties": False,
                    },
                    {
                        "title": "By target name",
                        "type": "object",
                        "properties": {
                            "target": {"type": "string", "maxLength": 64},
                            **_OPTIONS,
                        },
                        "required": ["target"],
                        "additionalProperties": False,
                    },
                ]
            },
            "examples": {
                "production": {"value": {"useProduction": True}},
                "byName": {"value": {"target": "local"}},
                "readOnly": {"value": {"target": "production", "readOnly": True}},
                "forFifteenMinutes": {"value": {"target": "production", "forSeconds": 900}},
            },
        }
    },
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse} for status in statuses}


# -- the router ---------------------------------------------------------------


def admin_router(
    board: Switchboard,
    *,
    authorize: Authorize,
    csrf_secret: str | bytes | None = None,
    trusted_origins: Iterable[str] = (),
    login_url: str | None = None,
    home_url: str = "/",
    token_page: bool = False,
    switch_timeout: float = 3.0,
    check_timeout: float = 1.0,
    tags: list[str] | None = None,
) -> APIRouter:
    """The admin API and page for ``board``, guarded by the app's ``authorize(request)``.

    ``authorize`` may be sync or async; it must not read a switched database.
    A plain ``def`` runs in the thread pool, an ``async def`` on the event loop.
    It may raise ``NotAuthenticated``, ``Forbidden`` or an ``HTTPException``.
    Without ``csrf_secret``, the processes of one host share a random key kept
    in the runtime dir; processes on several hosts need the same ``csrf_secret``.
    With ``login_url``, an anonymous visitor of the page is redirected there
    with ``?next=``.

    ``token_page=True`` is for apps whose admins authenticate with a bearer
    token rather than a cookie session: ``GET /admin/configuration`` then
    serves, to anyone, a page shell that holds no data (no target, URL,
    history or user) and asks for the admin token. Its script keeps the token
    in the tab's ``sessionStorage`` (never ``localStorage`` or a cookie) and
    drives the JSON API with ``Authorization: Bearer <token>``, which
    ``authorize`` checks on every request as for any script; a refused token
    is forgotten and asked for again. It takes no ``login_url`` (a ``ConfigError``).
    """
    board.follow()  # this process serves from the board: counted as a follower from now
    core = AdminCore(
        board,
        csrf_secret=csrf_secret,
        trusted_origins=trusted_origins,
        switch_timeout=switch_timeout,
        check_timeout=check_timeout,
    )
    router = APIRouter(
        tags=list(tags) if tags is not None else ["dbswap admin"],
        dependencies=[Depends(see_shared_state(board))],  # never an admin's own preview
    )
    if token_page and login_url is not None:
        raise ConfigError("token_page=True asks for a token on the page: give no login_url")

    authorize_is_async = _is_async_callable(authorize)

    async def identify(request: Request) -> str:
        try:
            # A plain ``def`` may block (a session store, an LDAP call): never on the loop.
            if authorize_is_async:
                value: Any = authorize(request)
            else:
                value = await run_in_threadpool(authorize, request)
            if inspect.isawaitable(value):  # an async one, or a sync one returning a coroutine
                value = await value
        except HTTPException as exc:
            raise AdminError(
                board.mask(str(exc.detail)),
                status=exc.status_code,
                code="not_authenticated" if exc.status_code == 401 else "refused",
                headers=exc.headers,
            ) from None
        return core.user_id(value)

    @router.get(
        "/api/admin/database",
        name="dbswap_status",
        summary="The active database target and every configured target (masked URLs)",
        response_model=DatabaseStatus,
        responses=_errors(401, 403),
    )
    async def database_status(request: Request) -> Response:
        try:
            await identify(request)
        except AdminError as exc:
            return _error(exc)
        # Off the loop: it reads the followers' records, and may make a time limit's return.
        return JSONResponse(await run_in_threadpool(core.status), headers=_NO_STORE)

    @router.post(
        "/api/admin/database/switch",
        name="dbswap_switch",
        summary="Switch the app to another database target, without a restart",
        description=(
            'Body: `{"useProduction": true|false}` or `{"target": "<name>"}`, optionally '
            'with `"readOnly": true|false`, `"ignoreSchema": true` and `"forSeconds": 900` '
            '(+ `"thenTarget": "<name>"`: the switch ends on its own). The target '
            "is health-checked first; nothing changes if it is unknown (404), locked (403), "
            "busy or behind the code's schema (409) or unreachable (503). "
            "Cookie-authenticated browsers must send the "
            "page's `X-CSRF-Token` header; requests with an `Authorization` header need not."
        ),
        response_model=SwitchResponse,
        responses=_errors(400, 401, 403, 404, 409, 413, 415, 422, 503),
        openapi_extra={"requestBody": _SWITCH_BODY},
    )
    async def switch_database(request: Request) -> Response:
        try:
            user = await identify(request)
            core.check_csrf(_facts(request))
            body = await _read_body(request, MAX_BODY_BYTES + 1)
            wanted = core.parse_switch(body, request.headers.get("content-type"))
            result = await run_in_threadpool(core.switch, wanted, user)
        except AdminError as exc:
            return _error(exc)
        return JSONResponse(result, headers=_NO_STORE)

    @router.get(
        "/api/admin/database/history",
        name="dbswap_history",
        summary="The audit trail of switch attempts, newest first",
        response_model=HistoryResponse,
        responses=_errors(401, 403, 422),
        openapi_extra={
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20},
                }
            ]
        },
    )
    async def switch_history(request: Request) -> Response:
        try:
            await identify(request)
            payload = await run_in_threadpool(core.history, request.query_params.getlist("limit"))
        except AdminError as exc:
            return _error(exc)
        return JSONResponse(payload, headers=_NO_STORE)

    @router.get(
        "/admin/configuration",
        name="dbswap_configuration",
        include_in_schema=False,
        response_class=HTMLResponse,
    )
    async def configuration_page(request: Request) -> Response:
        nonce = secrets.token_urlsafe(16)
        urls = {
            key: request.url_for(f"dbswap_{key}").path
            for key in ("status", "switch", "history", "preview")
        }
        if token_page:  # a shell without data: its script asks for the token, then the API
            html = core.render_token_page(urls=urls, script_nonce=nonce, home=home_url)
            return HTMLResponse(html, headers=page_headers(nonce))
        try:
            user = await identify(request)
        except AdminError as exc:
            if exc.status == 401 and login_url is not None:
                query = urlencode({"next": request.url.path})
                return RedirectResponse(f"{login_url}?{query}", status_code=303)
            html = core.render_error_page(
                exc.status, exc.message, script_nonce=nonce, home=home_url
            )
            headers = page_headers(nonce) | exc.headers
            return HTMLResponse(html, status_code=exc.status, headers=headers)
        new_cookie, token = core.csrf.issue(request.cookies.get(COOKIE_NAME))
        health = await run_in_threadpool(core.health)
        history = await run_in_threadpool(core.history, ())
        html = core.render_page(
            user=user,
            csrf_token=token,
            urls=urls,
            script_nonce=nonce,
            health=health,
            history=history["entries"],
            home=home_url,
        )
        response = HTMLResponse(html, headers=page_headers(nonce))
        if new_cookie is not None:
            response.set_cookie(
                COOKIE_NAME,
                new_cookie,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
                path="/",
            )
        return response

    add_preview_routes(router, board, core, identify, csrf_secret)  # personal previews
    return router


def _is_async_callable(value: Any) -> bool:
    """An ``async def`` function, an object whose ``__call__`` is one, or a partial of either."""
    while isinstance(value, functools.partial):
        value = value.func
    if inspect.iscoroutinefunction(value):
        return True
    return callable(value) and inspect.iscoroutinefunction(value.__call__)


def _facts(request: Request) -> RequestFacts:
    return RequestFacts(
        origin=f"{request.url.scheme}://{request.url.netloc}",
        headers=request.headers,
        cookies=request.cookies,
    )


async def _read_body(request: Request, limit: int) -> bytes:
    """At most ``limit`` bytes: a huge body is refused without holding it all in memory."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])


def _error(exc: AdminError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=_NO_STORE | exc.headers)


# -- identity bound to its target -----------------------------------------------


def stamp_claims(claims: Mapping[str, Any], target: str | Session | AsyncSession) -> dict[str, Any]:
    """``claims`` plus the target they are issued on, to sign into a token or cookie at log-in.

    ``target`` is where the log-in read the user: the pinned session that did
    (sync or async), or its target's name.
    """
    stamped = dict(claims)
    _identity.stamp(stamped, target if isinstance(target, str) else _session_target(target))
    return stamped


def bound_to_target(
    board: Switchboard,
    claims: Callable[..., Any],
    *,
    session: Callable[..., Any] | None = None,
) -> Callable[..., Awaitable[Mapping[str, Any]]]:
    """A dependency giving the claims of a login made on this request's target; 401 otherwise.

    ``claims`` is the app's own dependency that reads and checks its token or
    cookie and returns its claims (a mapping: decoded JWT claims,
    ``request.session``...). A login stamped by ``stamp_claims`` with another
    target, or not stamped at all, is refused with 401 and a message that says
    why. This request's target is that of ``session`` when given: the app's
    session dependency, the very session the endpoint gets (FastAPI resolves a
    dependency once per request), so the check and the queries cannot
    disagree; else the board's active target when the check runs.
    """

    def checked(found: Any, target: str) -> Mapping[str, Any]:
        if not isinstance(found, Mapping):
            raise TypeError(f"bound_to_target: the claims dependency returned {type(found)!r}")
        if not _identity.matches(found, target):
            issued_on = _identity.stamped(found)
            raise _Refusal(
                401,
                _identity.moved_message(issued_on, target)
                if issued_on is not None
                else "this login does not say which database it was made on: sign in again",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return found

    # Defaults rather than Annotated: these annotations are strings, and the
    # closure's variables are not where FastAPI would look them up.
    with_claims = Depends(claims)
    if session is None:

        async def bound_to_active(found: Any = with_claims) -> Mapping[str, Any]:
            return checked(found, board.active)

        return bound_to_active

    with_session = Depends(session)

    async def bound_to_session(
        found: Any = with_claims, db: Any = with_session
    ) -> Mapping[str, Any]:
        return checked(found, _session_target(db))

    return bound_to_session


def _session_target(db: Any) -> str:
    target = getattr(getattr(db, "sync_session", db), "dbswap_target", None)
    if not isinstance(target, str):
        raise ConfigError(
            "a pinned session is needed (one from board.sessionmaker() or "
            "board.async_sessionmaker()), to tell which target a login belongs to"
        )
    return target


# -- a write refused by a read-only target ----------------------------------------


async def read_only_refused(request: Request, exc: Exception) -> Response:
    """An exception handler: a write that a read-only target refused is a 409, never a 500.

    ``app.add_exception_handler(ReadOnlyTarget, read_only_refused)``. JSON
    (``{"error": "read_only", ...}``) unless the client prefers HTML (a browser's
    form), which gets a small page. In a request pinned by ``PreviewMiddleware``
    the advice is a writable preview, never a writable switch (which would move
    everybody).
    """
    if not isinstance(exc, ReadOnlyTarget):
        raise exc
    refusal = read_only_refusal(exc.target, previewing=current_preview(request) is not None)
    if not _prefers_html(request.headers.get("accept")):
        return _error(refusal)
    nonce = secrets.token_urlsafe(16)
    html = AdminCore.render_error_page(refusal.status, refusal.message, script_nonce=nonce)
    return HTMLResponse(html, status_code=refusal.status, headers=page_headers(nonce))


def _prefers_html(accept: str | None) -> bool:
    """Whether an ``Accept`` header ranks ``text/html`` above ``application/json``."""
    ranks: dict[str, float] = {}
    for part in (accept or "").split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media:
            ranks[media.lower()] = quality

    def rank(media: str) -> float:  # the most specific range that matches
        for key in (media, media.split("/")[0] + "/*", "*/*"):
            if key in ranks:
                return ranks[key]
        return 0.0

    return rank("text/html") > rank("application/json")
