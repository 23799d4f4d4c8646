"""The demo app: a DJ's site (tracks, events) whose database is switched live.

Public pages and ``/api/tracks`` read the active target through async
sessions from ``board.async_sessionmaker()``, given to each request by a
FastAPI dependency. The admin logs in with a password (a signed session
cookie, never a database row) or, for scripts, a bearer token; the admin
router from ``dbswap.fastapi`` does the rest.

Failed logins are limited per client address (429 with ``Retry-After``), and
each login gets a server-side session id that logout forgets: a signed cookie
stays valid by itself, so a copy taken before logout must not work after it.

The site's pages follow the shared state by themselves: their script asks the
public ``/api/status`` (which target this visitor's requests read, read-only,
the time limit, whether this visitor previews; no data, no name) once a second
and, when it changed, draws the page again as the server renders it now.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import math
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import jinja2
import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.middleware.sessions import SessionMiddleware

from .._admin import page_headers
from .._preview import Previews
from .._switchboard import PRODUCTION, Switchboard
from .._targets import URL_PREFIX, read_environment
from ..fastapi import (
    Forbidden,
    NotAuthenticated,
    PreviewMiddleware,
    admin_router,
    current_preview,
    ops_router,
)
from ._data import Event, Track, prepare_databases

DEFAULT_DATA_DIR = Path(".runtime") / "demo"
ADMIN_URL = "/admin/configuration"
SESSION_COOKIE = "dbswap_demo_session"
SESSION_MAX_AGE = 8 * 3600  # seconds
LOGIN_ATTEMPTS = 5  # failed logins a client address may make...
LOGIN_WINDOW = 60.0  # ...in this many seconds; then 429 until the oldest one is that old

Clock = Callable[[], float]


class LoginLimiter:
    """Failed logins per client address, in a sliding window (brute force gets 429s)."""

    def __init__(self, attempts: int, window: float, clock: Clock) -> None:
        self.attempts, self.window, self._clock = attempts, window, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float:
        """Seconds before ``client`` may try again; 0 if it may now."""
        with self._lock:
            now = self._clock()
            failures = self._failures.get(client)
            if failures is None:
                return 0.0
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if not failures:
                del self._failures[client]
                return 0.0
            return failures[0] + self.window - now if len(failures) >= self.attempts else 0.0

    def failed(self, client: str) -> None:
        with self._lock:
            now = self._clock()
            if len(self._failures) > 10_000:  # many addresses: forget those that went quiet
                stale = [c for c, f in self._failures.items() if f[-1] <= now - self.window]
                for c in stale:
                    del self._failures[c]
            self._failures.setdefault(client, deque()).append(now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


class LiveSessions:
    """Ids of the admin sessions not logged out nor expired (kept in this process)."""

    def __init__(self, max_age: float, clock: Clock) -> None:
        self._max_age, self._clock = max_age, clock
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def start(self) -> str:
        with self._lock:
            now = self._clock()
            self._expiry = {sid: end for sid, end in self._expiry.items() if end > now}
            sid = secrets.token_urlsafe(24)
            self._expiry[sid] = now + self._max_age
            return sid

    def alive(self, sid: object) -> bool:
        with self._lock:
            return isinstance(sid, str) and self._expiry.get(sid, -math.inf) > self._clock()

    def end(self, sid: object) -> None:
        with self._lock:
            if isinstance(sid, str):
                self._expiry.pop(sid, None)


def demo_board(
    data_dir: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> Switchboard:
    """Two SQLite files, ``local`` and ``production``, plus the environment's targets.

    Every ``DATABASE_URL_<NAME>`` of the environment is a target, and it wins:
    a SQLite file in ``data_dir`` stands in only for ``local`` or ``production``
    when the environment does not set it. Once the environment sets any target,
    the board is ``Switchboard.from_env``'s (``DBSWAP_RUNTIME_DIR``,
    ``DBSWAP_DEFAULT_TARGET``... apply); otherwise its runtime dir is in ``data_dir``.
    """
    base = Path(cwd) if cwd is not None else Path.cwd()
    env = read_environment(environ, base)
    configured = {
        key[len(URL_PREFIX) :].lower()
        for key, value in env.items()
        if key.startswith(URL_PREFIX) and value.strip()
    }
    missing = [name for name in ("local", PRODUCTION) if name not in configured]
    directory = (base / (data_dir or DEFAULT_DATA_DIR)).resolve()
    urls = {}
    if missing:
        directory.mkdir(parents=True, exist_ok=True)
    for name in missing:
        path = directory / f"{name}.db"
        sqlite3.connect(path).close()  # the health check wants the file to exist
        urls[name] = f"sqlite:///{path}"
    if configured:
        defaults = {f"{URL_PREFIX}{name.upper()}": url for name, url in urls.items()}
        return Switchboard.from_env({**env, **defaults}, base)
    locked = env.get("DBSWAP_ENV", "").strip().lower() == PRODUCTION
    read_only = [n for n in env.get("DBSWAP_READONLY", "").split(",") if n.strip()]
    return Switchboard(
        urls,
        runtime_dir=directory / "runtime",
        production_lock=locked,
        read_only_targets=read_only,
    )


def create_app(
    board: Switchboard | None = None,
    *,
    admin_password: str | None = None,
    admin_token: str | None = None,
    session_secret: str | None = None,
    data_dir: str | Path | None = None,
    prepare: bool = True,
    login_attempts: int = LOGIN_ATTEMPTS,
    login_window: float = LOGIN_WINDOW,
    clock: Clock = time.monotonic,
) -> FastAPI:
    """The demo app; a random admin password is made if none is given.

    The password is ``app.state.admin_password``, the bearer token (if any)
    ``app.state.admin_token``. A client address gets ``login_attempts`` failed
    logins per ``login_window`` seconds (``clock`` tells the time; tests pass
    their own).

    With ``prepare`` the demo tables are created and seeded in every target
    (``app.state.unprepared`` names the targets that could not be reached).
    The app closes the board's connections when it shuts down.
    """
    board = board if board is not None else demo_board(data_dir)
    secret = session_secret or secrets.token_urlsafe(32)
    unprepared = prepare_databases(board) if prepare else {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await _warm_admin_routes(app)
        try:
            yield
        finally:
            await board.adispose()

    app = FastAPI(title="dbswap demo: a DJ's site", lifespan=lifespan)
    app.state.board = board
    app.state.sessionmaker = board.async_sessionmaker(expire_on_commit=False)
    app.state.admin_password = admin_password or secrets.token_urlsafe(12)
    app.state.admin_token = admin_token or None
    app.state.unprepared = unprepared
    app.state.login_limiter = LoginLimiter(login_attempts, login_window, clock)
    app.state.live_sessions = LiveSessions(SESSION_MAX_AGE, clock)
    csrf_secret = hmac.new(secret.encode(), b"dbswap-csrf", hashlib.sha256).digest()
    # An admin's own preview pins their requests; added before (so inside) the session
    # middleware, since authorize reads the session. The admin router signs with the same key.
    app.add_middleware(
        PreviewMiddleware, board=board, authorize=authorize_admin, csrf_secret=csrf_secret
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie=SESSION_COOKIE,
        same_site="lax",
        max_age=SESSION_MAX_AGE,
    )
    app.add_exception_handler(SQLAlchemyError, _database_unavailable)
    app.include_router(_site)
    # /healthz/database always; /metrics when prometheus-client is installed (dbswap[metrics])
    metrics = importlib.util.find_spec("prometheus_client") is not None
    app.include_router(ops_router(board, metrics=metrics))
    app.include_router(
        admin_router(board, authorize=authorize_admin, csrf_secret=csrf_secret, login_url="/login")
    )
    return app


# -- authentication: the session cookie or a bearer token, never a database row --


def authorize_admin(request: Request) -> str:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, credentials = header.partition(" ")
        token: str | None = request.app.state.admin_token
        if scheme.lower() != "bearer" or not credentials.strip():
            raise NotAuthenticated("use 'Authorization: Bearer <DBSWAP_ADMIN_TOKEN>'")
        if token is None:
            raise NotAuthenticated("API tokens are off in this demo: set DBSWAP_ADMIN_TOKEN")
        if not _same(credentials.strip(), token):
            raise NotAuthenticated("invalid API token")
        return "api-token"
    user = _session_user(request)
    if user is None:
        raise NotAuthenticated("log in at /login first")
    if request.session.get("role") != "admin":
        raise Forbidden(f"{user} is not an administrator")
    return user


async def _warm_admin_routes(app: FastAPI) -> None:
    """Make the admin routes' first use now, at start-up, not with the first switch.

    FastAPI builds an included router's routes on the first request through it, and
    reads each endpoint's source on its first call (~20 ms together here). A request
    with no credentials touches no database: each is refused with a 401.
    """
    app.openapi()
    admin = "/api/admin/database"
    for method, path in (("GET", admin), ("POST", f"{admin}/switch"), ("GET", f"{admin}/history")):
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")],
            "client": ("127.0.0.1", 0),
            "server": ("127.0.0.1", 80),
            "state": {},
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message: Any) -> None:
            return None

        await app(scope, receive, send)


def _session_user(request: Request) -> str | None:
    """The logged-in user, if the cookie's session is still live (not logged out, not expired)."""
    user = request.session.get("user")
    if not isinstance(user, str):
        return None
    live: LiveSessions = request.app.state.live_sessions
    return user if live.alive(request.session.get("sid")) else None


def _client(request: Request) -> str:
    # The peer's address: a proxy in front would make every client one (see the README).
    return request.client.host if request.client is not None else "unknown"


def _same(given: str, expected: str) -> bool:
    # Digests first: compare_digest wants equal-type ASCII, a form may send anything.
    a = hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest()
    b = hashlib.sha256(expected.encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(a, b)


def _safe_next(value: object) -> str:
    """Only a local path: never redirect a freshly logged-in admin to another site."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return ADMIN_URL


# -- data access ---------------------------------------------------------------


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, pinned to the target active when it was created."""
    await request.app.state.board.ready()  # waits (bounded) while a drained switch runs
    async with request.app.state.sessionmaker() as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(db_session)]


def _target_of(session: AsyncSession) -> str:
    target: str = session.sync_session.dbswap_target  # type: ignore[attr-defined]
    return target


def _read_only_of(session: AsyncSession) -> bool:
    return bool(session.sync_session.dbswap_read_only)  # type: ignore[attr-defined]


async def _tracks(session: AsyncSession) -> list[dict[str, object]]:
    rows = await session.scalars(sa.select(Track).order_by(Track.id))
    return [track.to_dict() for track in rows]


async def _events(session: AsyncSession) -> list[dict[str, object]]:
    rows = await session.scalars(sa.select(Event).order_by(Event.date, Event.id))
    return [event.to_dict() for event in rows]


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    board: Switchboard = request.app.state.board
    message = f"the active database ({board.active}) cannot be read right now; try again"
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": "database_unavailable", "message": message}, 503)
    return _page(request, "error.html", {"message": message}, status=503)


# -- pages -----------------------------------------------------------------------

_site = APIRouter()
_templates = jinja2.Environment(  # the admin pages' script helpers too (times, following)
    loader=jinja2.ChoiceLoader(
        [jinja2.PackageLoader("dbswap.demo", "templates"), jinja2.PackageLoader("dbswap")]
    ),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _clock(seconds: float) -> str:
    """``4:59`` or ``1:04:59``: a countdown as the pages' script shows it (its first drawing)."""
    total = max(0, math.ceil(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


_templates.filters["clock"] = _clock


def _site_state(request: Request, target: str, read_only: bool) -> dict[str, Any]:
    """What a site page says about its database: public, with no data and no name.

    ``target`` and ``read_only`` are this visitor's (their own preview's, if any);
    the page's script compares it with ``/api/status`` to know when to draw again.
    """
    board: Switchboard = request.app.state.board
    shared, generation = Previews.shared(board)
    limit = board.time_limit
    if limit is not None and limit.return_to == target:
        limit = None  # this visitor already reads where the switch returns: nothing to say
    preview = current_preview(request)  # this admin's own: only their requests use it
    return {
        "target": target,
        "production": target == PRODUCTION,
        "readOnly": read_only,
        "generation": generation,
        "timeLimit": {
            "expiresAt": limit.expires_at,
            "returnTo": limit.return_to,
            "secondsLeft": round(limit.seconds_left, 1),
            "returnFailed": limit.problem is not None,
        }
        if limit is not None
        else None,
        "preview": {
            "target": preview.target,
            "readOnly": preview.read_only,
            "expiresAt": preview.expires_at,
            "secondsLeft": round(preview.seconds_left(), 1),
        }
        if preview is not None
        else None,
        "sharedTarget": shared,
    }


def _page(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    session: AsyncSession | None = None,
) -> HTMLResponse:
    board: Switchboard = request.app.state.board
    target = _target_of(session) if session is not None else board.active
    read_only = _read_only_of(session) if session is not None else board.read_only
    state = _site_state(request, target, read_only)
    limit = board.time_limit
    nonce = secrets.token_urlsafe(16)
    html = _templates.get_template(name).render(
        state=state,
        return_problem=board.mask(limit.problem) if limit and limit.problem else None,
        target=target,
        production=target == PRODUCTION,
        read_only=read_only,
        user=_session_user(request),
        admin_url=ADMIN_URL,
        targets=list(board.targets),
        nonce=nonce,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=page_headers(nonce))


@_site.get("/", response_class=HTMLResponse, summary="The tracks of the active database")
async def tracks_page(request: Request, session: DbSession) -> HTMLResponse:
    tracks = await _tracks(session)
    return _page(request, "tracks.html", {"tracks": tracks}, session=session)


@_site.get("/events", response_class=HTMLResponse, summary="The events of the active database")
async def events_page(request: Request, session: DbSession) -> HTMLResponse:
    events = await _events(session)
    return _page(request, "events.html", {"events": events}, session=session)


@_site.get("/api/status", summary="Which database this visitor's pages read (public, no data)")
def site_status(request: Request) -> JSONResponse:
    """What the site's pages follow: asked once a second by each open page.

    A plain ``def`` (so in the thread pool): the first request after a time
    limit's end makes the return, which checks the database it returns to.
    """
    board: Switchboard = request.app.state.board
    state = _site_state(request, board.active, board.read_only)
    return JSONResponse(state, headers={"Cache-Control": "no-store"})


@_site.get("/api/tracks", summary="The tracks of the active database, and which one it is")
async def api_tracks(session: DbSession) -> dict[str, Any]:
    return {
        "target": _target_of(session),
        "readOnly": _read_only_of(session),
        "tracks": await _tracks(session),
    }


@_site.get("/api/events", summary="The events of the active database, and which one it is")
async def api_events(session: DbSession) -> dict[str, Any]:
    return {
        "target": _target_of(session),
        "readOnly": _read_only_of(session),
        "events": await _events(session),
    }


@_site.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def login_form(request: Request) -> HTMLResponse:
    return _page(request, "login.html", {"next": _safe_next(request.query_params.get("next"))})


@_site.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    form = await request.form()
    password, next_url = form.get("password"), _safe_next(form.get("next"))
    limiter: LoginLimiter = request.app.state.login_limiter
    client = _client(request)
    wait = limiter.retry_after(client)
    if wait > 0:  # even the right password waits: otherwise guessing just goes on
        seconds = math.ceil(wait)
        error = f"Too many failed log-ins from your address; try again in {seconds} s."
        page = _page(request, "login.html", {"next": next_url, "error": error}, status=429)
        page.headers["Retry-After"] = str(seconds)
        return page
    if not isinstance(password, str) or not _same(password, request.app.state.admin_password):
        limiter.failed(client)
        context = {"next": next_url, "error": "Wrong password."}
        return _page(request, "login.html", context, status=401)
    limiter.succeeded(client)
    request.session.clear()
    sid = request.app.state.live_sessions.start()
    request.session.update({"user": "admin", "role": "admin", "sid": sid})
    return RedirectResponse(next_url, status_code=303)


@_site.post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    request.app.state.live_sessions.end(request.session.get("sid"))  # copies of the cookie die
    request.session.clear()
    return RedirectResponse("/", status_code=303)
