"""The Flask adapter: a Flask-SQLAlchemy ``db.session`` that follows the switch, the admin
API and page as a blueprint, and ``flask dbswap ...``.

::

    from flask import Flask, abort, session
    from flask.globals import app_ctx
    from flask.typing import ResponseReturnValue
    from flask_sqlalchemy import SQLAlchemy
    from dbswap.flask import DBSwap, Forbidden, NotAuthenticated, Session

    db = SQLAlchemy(session_options={"class_": Session})    # db.session follows the switch

    def authorize() -> str:                                  # never read a switched database
        user = session.get("user")
        if user is None:
            raise NotAuthenticated()
        if not user["admin"]:
            raise Forbidden()
        return user["id"]

    swap = DBSwap(authorize=authorize)

    def create_app() -> Flask:
        app = Flask(__name__)
        app.config["SECRET_KEY"] = ...                       # also keys the admin page's CSRF
        swap.init_app(app, db=db)                            # board: Switchboard.from_env()
        return app

``init_app`` sets ``SQLALCHEMY_DATABASE_URI`` to the default target's URL when
it is unset (Flask-SQLAlchemy insists on one) and initialises ``db`` if needed.
Relative SQLite paths mean what they mean to Flask-SQLAlchemy: a file in the
app's instance folder (``app.instance_path``), both in the targets of the board
``init_app`` builds and in ``SQLALCHEMY_DATABASE_URI``.
From then on dbswap decides the default bind: each request is pinned, when it
begins, to the target active at that moment, and ``db.session``, ``db.engine``
and ``db.create_all()`` use that target until the request ends, even if a switch
happens meanwhile. Models with a ``__bind_key__`` (``SQLALCHEMY_BINDS``) keep
their own database; dbswap does not switch those. Two configs make dbswap step
aside for an app, loudly, leaving it Flask-SQLAlchemy's own engine: a test
config (``TESTING``) that names its own database, and a
``SQLALCHEMY_DATABASE_URI`` that is the environment's ``DATABASE_URL`` (a
deploy's one database) and not a target. Any other URI that is not a target
is a ``ConfigError``.

A login belongs to the target it was made on: when ``flask.session`` gets
data (a log-in), dbswap stamps the active target in it, and a request on
another target finds the session emptied, before any of the app's
``before_request`` functions reads it: the visitor is logged out, never taken
for the other database's user of the same id. In an admin's preview the app's
pages see a session of the preview's own (``dbswap._request_flask``, where each
request's target and login are decided). ``bound_session_keys=("user_id",)``
binds only those keys (an admin flag of a password log-in survives a switch);
``shared_identity=True`` binds nothing, for apps whose users have the same ids
in every target. A write that a read-only target refuses is answered 409
(JSON, or a small page for browsers), never 500.

Flask-Caching's values are kept apart per target (``dbswap._cache_flask``): a
value cached while one target served the request is never read on another.

Every decision of the admin routes (statuses, messages, CSRF) lives in
``dbswap._admin``, shared with the FastAPI and Django adapters.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

try:
    import sqlalchemy as sa
    from flask import Blueprint, Flask, Response, current_app, request, url_for
    from flask.globals import app_ctx
    from flask.typing import ResponseReturnValue
    from flask_sqlalchemy import SQLAlchemy
    from flask_sqlalchemy.session import Session as _FlaskSQLAlchemySession
    from sqlalchemy import Engine
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"dbswap.flask needs Flask and Flask-SQLAlchemy ({exc.name} is not installed): "
        "pip install 'dbswap[flask]'"
    ) from None

from . import _cache_flask, _request_flask
from ._admin import (
    MAX_BODY_BYTES,
    AdminCore,
    AdminError,
    Forbidden,
    NotAuthenticated,
    page_headers,
    read_only_refusal,
)
from ._csrf import COOKIE_NAME
from ._errors import ConfigError, ReadOnlyTarget
from ._masking import mask_url
from ._ops_flask import ops_blueprint
from ._preview_flask import install as install_previews
from ._preview_flask import preview_view
from ._readiness import READINESS_PATH
from ._request_flask import (
    EXTENSION,
    AppState,
    Aside,
    Authorize,
    current_board,
    current_pin,
    current_preview,
    error_response,
    identify,
    json_response,
    read_body,
    request_facts,
    state,
)
from ._sessions import PinnedSession
from ._switchboard import Switchboard
from ._targets import normalize_url
from .cli import board_commands

__all__ = [
    "AdminError",
    "Authorize",
    "DBSwap",
    "Forbidden",
    "NotAuthenticated",
    "Session",
    "current_board",
    "current_preview",
]

logger = logging.getLogger("dbswap")
DEPLOY_VARIABLE = "DATABASE_URL"  # a deploy's one database: not a target (see _check_database_uri)


# -- db.session ----------------------------------------------------------------


class Session(PinnedSession, _FlaskSQLAlchemySession):
    """Flask-SQLAlchemy's Session, pinned to the current request's target.

    Give it to Flask-SQLAlchemy: ``SQLAlchemy(session_options={"class_": Session})``.
    The board is the current app's (``DBSwap.init_app``), so one ``db`` serves
    every app of an app factory.
    """

    def __init__(self, db: SQLAlchemy, bind: Any = None, **kw: Any) -> None:
        # Flask-SQLAlchemy's __init__, then our own pin (the request's, not the board's now).
        _FlaskSQLAlchemySession.__init__(self, db, bind=bind, **kw)
        # An explicit bind, or an app dbswap steps aside for (a test config's own
        # database): not pinned; Flask-SQLAlchemy's own get_bind picks the engine.
        self._dbswap_explicit = (
            bind is not None or bool(kw.get("binds")) or not _request_flask.follows(app_ctx.app)
        )
        if not self._dbswap_explicit:
            self._dbswap_pin()

    def _dbswap_pin(self) -> Engine:
        board = current_board()
        _follow(self._db, app_ctx.app, board)  # in case db.init_app ran after DBSwap.init_app
        pinned = current_pin(board)
        self._dbswap_pinned, self.bind = pinned, pinned[2]
        count = board._observer.count_session  # metrics on: count the pin
        if count is not None:
            count(pinned[0])
        return pinned[2]

    def get_bind(self, mapper: Any = None, clause: Any = None, bind: Any = None, **kw: Any) -> Any:
        if bind is None and not self._dbswap_explicit and _bind_key(mapper, clause) is not None:
            # A model of another SQLALCHEMY_BINDS database: dbswap does not switch it.
            return _FlaskSQLAlchemySession.get_bind(self, mapper, clause, **kw)
        return super().get_bind(mapper, clause=clause, bind=bind, **kw)


def _bind_key(mapper: Any, clause: Any) -> str | None:
    """The ``__bind_key__`` of the table a statement is about, if any."""
    tables: list[Any] = []
    if mapper is not None:
        with contextlib.suppress(sa.exc.NoInspectionAvailable):
            tables.append(sa.inspect(mapper).local_table)
    if isinstance(clause, sa.Table):
        tables.append(clause)
    elif isinstance(clause, sa.sql.dml.UpdateBase) and isinstance(clause.table, sa.Table):
        tables.append(clause.table)
    for table in tables:
        metadata = getattr(table, "metadata", None)
        key = metadata.info.get("bind_key") if metadata is not None else None
        if key is not None:
            return str(key)
    return None


class _FollowingEngines(Mapping[str | None, Engine]):
    """Flask-SQLAlchemy's engines of one app; the default (``None``) is the request's target.

    So ``db.engine`` and ``db.create_all()`` never connect to an inactive target.
    """

    def __init__(self, board: Switchboard, others: Mapping[str | None, Engine]) -> None:
        self._board = board
        self._others = {key: engine for key, engine in others.items() if key is not None}

    def __getitem__(self, key: str | None) -> Engine:
        return current_pin(self._board)[2] if key is None else self._others[key]

    def __iter__(self) -> Iterator[str | None]:
        yield None
        yield from self._others

    def __len__(self) -> int:
        return len(self._others) + 1


def _follow(db: SQLAlchemy, app: Flask, board: Switchboard) -> None:
    """Make ``db``'s default engine for ``app`` the request's target (once)."""
    by_app: Any = db._app_engines  # Flask-SQLAlchemy 3.x keeps {app: {bind key: Engine}}
    engines = by_app.get(app)
    if engines is None or isinstance(engines, _FollowingEngines):
        return
    default = engines.get(None)
    if default is not None:
        default.dispose()  # Flask-SQLAlchemy's own engine: never connected, never used
    by_app[app] = _FollowingEngines(board, engines)


def _configured_uri(app: Flask) -> str | None:
    uri = app.config.get("SQLALCHEMY_DATABASE_URI")
    if uri is None:
        return None
    return uri.render_as_string(hide_password=False) if isinstance(uri, sa.URL) else str(uri)


def _deploy_url(app: Flask) -> str | None:
    """The app's ``SQLALCHEMY_DATABASE_URI``, if it is the environment's ``DATABASE_URL``.

    Deploy systems name an app's one database there, and apps (flaskr among them)
    put it in their config as it is: that database was chosen by the deploy.
    """
    uri = _configured_uri(app)
    return uri if uri is not None and uri == os.environ.get(DEPLOY_VARIABLE) else None


def _is_target(app: Flask, board: Switchboard, url: str) -> bool:
    """Whether ``url``, as Flask-SQLAlchemy opens it, is one of the board's targets."""
    return normalize_url(url, Path(app.instance_path)) in {t.url for t in board.targets.values()}


def _check_database_uri(app: Flask, board: Switchboard) -> bool:
    """SQLALCHEMY_DATABASE_URI: the default target's URL unless set; never another database.

    A relative SQLite path is a file in the app's instance folder, as Flask-SQLAlchemy
    opens it. Returns False when dbswap steps aside: a test config (``TESTING``) that
    names its own database keeps it, with Flask-SQLAlchemy's own engine. (The
    environment's ``DATABASE_URL`` is ``init_app``'s business, before this.)
    """
    text = _configured_uri(app)
    if text is None:
        app.config["SQLALCHEMY_DATABASE_URI"] = board.url_for(board.default_target)
        return True
    if _is_target(app, board, text):
        return True
    if app.testing:
        logger.warning(
            "dbswap does not switch Flask app %r: its test config (TESTING) names its own "
            "database in SQLALCHEMY_DATABASE_URI (%s), which is not a dbswap target; the app "
            "uses that database",
            app.name,
            mask_url(text),
        )
        return False
    raise ConfigError(
        "SQLALCHEMY_DATABASE_URI names a database that is not a dbswap target; dbswap "
        "decides the default bind, so leave it unset (dbswap sets the default target's "
        "URL) or set it to one of the targets' DATABASE_URL_<NAME> (a deploy's own "
        "database: the environment's DATABASE_URL, as it is, makes dbswap step aside)"
    )


def _board_from_env(app: Flask) -> Switchboard:
    """``Switchboard.from_env()``, relative SQLite paths in the app's instance folder.

    The folder is created if a target lives in it, as Flask-SQLAlchemy does.
    """
    board = Switchboard.from_env(sqlite_dir=app.instance_path)
    instance = Path(app.instance_path).resolve()
    for target in board.targets.values():
        database = target.sa_url.database if target.is_sqlite else None
        if database and instance in Path(database).parents:
            os.makedirs(app.instance_path, exist_ok=True)
            break
    return board


# -- the extension -------------------------------------------------------------


class DBSwap:
    """The dbswap extension: ``DBSwap(app, db=db)`` or ``swap.init_app(app, db=db)``.

    ``board`` defaults to ``Switchboard.from_env()`` (one per app; relative SQLite
    paths in the app's instance folder, as Flask-SQLAlchemy has them). With
    ``authorize`` (a function of no arguments reading ``flask.request`` or
    ``flask.session``; it must not read a switched database), the admin API
    and page are registered under ``url_prefix``. The page's CSRF secret is
    derived from ``SECRET_KEY`` unless ``csrf_secret`` is given, so every worker
    of the app agrees.

    ``flask.session`` is bound to the target it was logged in on (see the module
    docstring): ``bound_session_keys`` names the keys that are (default: the
    whole session), ``shared_identity=True`` binds nothing.

    ``readiness=True`` serves ``GET /healthz/database`` (``readiness_path``) for load
    balancers, checking the active target at most once per ``readiness_cache``
    seconds; ``metrics=True`` turns the board's metrics on and serves them at
    ``/metrics`` (``metrics_path``). Both are unauthenticated and hold no secret.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: SQLAlchemy | None = None,
        board: Switchboard | None = None,
        authorize: Authorize | None = None,
        csrf_secret: str | bytes | None = None,
        trusted_origins: Iterable[str] = (),
        login_url: str | None = None,
        home_url: str = "/",
        url_prefix: str | None = None,
        switch_timeout: float = 3.0,
        check_timeout: float = 1.0,
        shared_identity: bool = False,
        bound_session_keys: Iterable[str] | None = None,
        readiness: bool = False,
        metrics: bool = False,
        readiness_path: str = READINESS_PATH,
        metrics_path: str = "/metrics",
        readiness_cache: float = 1.0,
    ) -> None:
        if isinstance(bound_session_keys, str):
            raise TypeError('bound_session_keys takes a collection of keys, e.g. ("user_id",)')
        if shared_identity and bound_session_keys is not None:
            raise ConfigError(
                "shared_identity=True binds no session key: give it or bound_session_keys, not both"
            )
        self._shared_identity = shared_identity
        self._bound_keys = None if bound_session_keys is None else frozenset(bound_session_keys)
        self._board = board
        self._authorize = authorize
        self._csrf_secret = csrf_secret
        self._trusted_origins = tuple(trusted_origins)
        self._login_url = login_url
        self._home_url = home_url
        self._url_prefix = url_prefix
        self._timeouts = (switch_timeout, check_timeout)
        self._ops = (readiness_path if readiness else None, metrics_path if metrics else None)
        self._readiness_cache = readiness_cache
        if app is not None:
            self.init_app(app, db=db)

    def init_app(self, app: Flask, db: SQLAlchemy | None = None) -> None:
        if EXTENSION in app.extensions:
            raise RuntimeError("dbswap is already initialised on this Flask app")
        db = _database(app, db)
        deployed = _deploy_url(app) if db is not None else None
        board = self._board
        if board is None:
            try:
                board = _board_from_env(app)
            except ConfigError as exc:
                if db is None or deployed is None:
                    raise
                _step_aside(app, db, deployed, f"no dbswap target is usable here ({exc})")
                return
        if db is not None and deployed is not None and not _is_target(app, board, deployed):
            if self._board is None:
                board.close()  # built for this app, which will not use it
            _step_aside(app, db, deployed, "it is not a dbswap target")
            return
        follows = db is None or _check_database_uri(app, board)
        secret = self._csrf_secret
        if secret is None and app.config.get("SECRET_KEY"):
            key = app.config["SECRET_KEY"]
            key = key.encode("utf-8") if isinstance(key, str) else bytes(key)
            secret = hashlib.sha256(b"dbswap-csrf\0" + key).digest()
        core = AdminCore(
            board,
            csrf_secret=secret,
            trusted_origins=self._trusted_origins,
            switch_timeout=self._timeouts[0],
            check_timeout=self._timeouts[1],
        )
        app.extensions[EXTENSION] = AppState(
            board,
            core,
            self._authorize,
            self._login_url,
            self._home_url,
            follows,
            not self._shared_identity,
            self._bound_keys,
        )
        if follows:
            board.follow()  # this process serves from the board: counted as a follower
            # First: the app's own functions, registered before init_app or after, find
            # the request pinned (to a preview, for its admin) and its login checked.
            _request_flask.install(app)
            app.register_error_handler(ReadOnlyTarget, _read_only_refused)
            _cache_flask.install(app, board)  # Flask-Caching's values kept apart per target
        if db is not None:
            _init_db(app, board, db, follows)
        if self._authorize is not None:
            app.register_blueprint(_admin_blueprint(), url_prefix=self._url_prefix)
            install_previews(app, board, secret)  # admins' own previews
        if self._ops != (None, None):
            readiness_path, metrics_path = self._ops
            app.register_blueprint(
                ops_blueprint(
                    board,
                    readiness=readiness_path,
                    metrics=metrics_path,
                    cache_seconds=self._readiness_cache,
                    check_timeout=self._timeouts[1],
                )
            )
        app.cli.add_command(board_commands(board))

    @property
    def board(self) -> Switchboard:
        """The board given to the constructor, or the current app's."""
        return self._board if self._board is not None else current_board()


def _database(app: Flask, db: SQLAlchemy | None) -> SQLAlchemy | None:
    """The app's Flask-SQLAlchemy extension: ``db``, or the one already registered."""
    registered = app.extensions.get("sqlalchemy")
    if db is not None and registered is not None and registered is not db:
        raise RuntimeError("another SQLAlchemy instance is registered on this app")
    return db if db is not None else registered


def _init_db(app: Flask, board: Switchboard | None, db: SQLAlchemy, follows: bool) -> None:
    if app.extensions.get("sqlalchemy") is None:
        db.init_app(app)
    session_class = getattr(db.session.session_factory, "class_", None)
    if not (isinstance(session_class, type) and issubclass(session_class, Session)):
        raise ConfigError(
            "db.session does not follow dbswap: create the extension with "
            'SQLAlchemy(session_options={"class_": dbswap.flask.Session})'
        )
    if follows and board is not None:
        _follow(db, app, board)
    # else: Flask-SQLAlchemy's own engine serves the app's own database (no pin)


def _step_aside(app: Flask, db: SQLAlchemy, url: str, why: str) -> None:
    """The deploy environment named the app's one database: dbswap stays out of its way, loudly."""
    reason = (
        f"dbswap steps aside for Flask app {app.name!r}: its SQLALCHEMY_DATABASE_URI is the "
        f"environment's {DEPLOY_VARIABLE} ({mask_url(url)}), and {why}"
    )
    logger.warning(
        "%s; the app uses that database through Flask-SQLAlchemy's own engine: no request is "
        "pinned or switched, and dbswap serves no admin route and no `flask dbswap` command",
        reason,
    )
    app.extensions[EXTENSION] = Aside(reason)
    _init_db(app, None, db, follows=False)


def _read_only_refused(exc: ReadOnlyTarget) -> Response:
    """A write the read-only target refused: 409 (JSON, or a page for browsers), never a 500.

    In a preview the advice is a writable preview (only the admin's requests), never a
    writable switch (everybody's).
    """
    refusal = read_only_refusal(exc.target, previewing=current_preview() is not None)
    if request.accept_mimetypes.best_match(["application/json", "text/html"]) != "text/html":
        return error_response(refusal)
    nonce = secrets.token_urlsafe(16)
    home = state(current_app).home_url
    html = AdminCore.render_error_page(
        refusal.status, refusal.message, script_nonce=nonce, home=home
    )
    return Response(html, refusal.status, headers=page_headers(nonce), mimetype="text/html")


# -- the admin blueprint ---------------------------------------------------------


def _admin_blueprint() -> Blueprint:
    blueprint = Blueprint("dbswap", __name__)
    blueprint.add_url_rule("/api/admin/database", "status", _status_view, methods=["GET"])
    blueprint.add_url_rule("/api/admin/database/switch", "switch", _switch_view, methods=["POST"])
    blueprint.add_url_rule("/api/admin/database/history", "history", _history_view, methods=["GET"])
    blueprint.add_url_rule("/admin/configuration", "configuration", _page_view, methods=["GET"])
    blueprint.add_url_rule(
        "/api/admin/database/preview", "preview", preview_view, methods=["GET", "POST", "DELETE"]
    )
    return blueprint


def _status_view() -> Response:
    app_state = state(current_app)
    try:
        identify(app_state)
    except AdminError as exc:
        return error_response(exc)
    return json_response(app_state.core.status())


def _switch_view() -> Response:
    app_state = state(current_app)
    try:
        user = identify(app_state)
        app_state.core.check_csrf(request_facts())
        body = read_body(MAX_BODY_BYTES + 1)
        wanted = app_state.core.parse_switch(body, request.headers.get("Content-Type"))
        result = app_state.core.switch(wanted, user)
    except AdminError as exc:
        return error_response(exc)
    return json_response(result)


def _history_view() -> Response:
    app_state = state(current_app)
    try:
        identify(app_state)
        payload = app_state.core.history(request.args.getlist("limit"))
    except AdminError as exc:
        return error_response(exc)
    return json_response(payload)


def _page_view() -> ResponseReturnValue:
    app_state = state(current_app)
    core = app_state.core
    nonce = secrets.token_urlsafe(16)
    try:
        user = identify(app_state)
    except AdminError as exc:
        if exc.status == 401 and app_state.login_url is not None:
            query = urlencode({"next": request.path})
            return current_app.redirect(f"{app_state.login_url}?{query}", 303)
        html = core.render_error_page(
            exc.status, exc.message, script_nonce=nonce, home=app_state.home_url
        )
        return Response(
            html, exc.status, headers=page_headers(nonce) | exc.headers, mimetype="text/html"
        )
    new_cookie, token = core.csrf.issue(request.cookies.get(COOKIE_NAME))
    html = core.render_page(
        user=user,
        csrf_token=token,
        urls={key: url_for(f"dbswap.{key}") for key in ("status", "switch", "history", "preview")},
        script_nonce=nonce,
        health=core.health(),
        history=core.history(())["entries"],
        home=app_state.home_url,
    )
    response = Response(html, headers=page_headers(nonce), mimetype="text/html")
    if new_cookie is not None:
        response.set_cookie(
            COOKIE_NAME,
            new_cookie,
            httponly=True,
            samesite="Strict",
            secure=request.is_secure,
            path="/",
        )
    return response
