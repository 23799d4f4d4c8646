"""One decision per Flask request: the target that serves it, and the login the app sees there.

Made when the request begins, before any of the app's own ``before_request``
functions, and kept in ``flask.g`` as a :class:`RequestPin`:

- **the target**: the one active when the request began or, for an admin whose
  ``authorize`` names the admin of a valid preview cookie, the preview's
  target and mode;
- **the login** (unless ``shared_identity=True``): a ``flask.session`` stamped
  with another target than the active one is emptied, as after a switch (the
  visitor signs in again). In a previewed page the app sees the preview's own
  session, never the admin's: she is anonymous on the previewed target, her
  own login waits for the preview's end, and a login made during the preview
  belongs to that preview (stamped with its target, kept under
  :data:`PREVIEW_KEY`) and is dropped when it ends. dbswap's own routes see the
  admin's own session, which ``authorize`` reads.

``db.session`` reads the target (``current_pin``) and the login handling reads
the same decision, so the two cannot disagree.

Also here, so that ``dbswap.flask`` and ``dbswap._preview_flask`` need not import
each other: the app's dbswap state, ``authorize``'s answer, and the translation of
requests and responses for dbswap's own views.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from flask import (
    Flask,
    Response,
    after_this_request,
    current_app,
    g,
    has_app_context,
    request,
    session,
)
from flask.sessions import SessionMixin
from sqlalchemy import Engine
from werkzeug.exceptions import HTTPException

from . import _identity
from ._admin import AdminCore, AdminError, Forbidden
from ._csrf import RequestFacts
from ._identity import PREVIEW_KEY
from ._preview import COOKIE_NAME, Preview, Previews, cookie_header_to_clear
from ._switchboard import Switchboard

EXTENSION = "dbswap"  # the app's AppState, in app.extensions
PREVIEWS = "dbswap.preview"  # the app's Previews, in app.extensions
ADMIN_BLUEPRINT = "dbswap"  # dbswap's own routes: they see the admin's own session
_PIN = "_dbswap_pin"  # the request's RequestPin, in flask.g
_NO_STORE = {"Cache-Control": "no-store"}

Pin = tuple[str, bool, Engine]  # (target, read-only, engine), as sessions are pinned
Authorize = Callable[[], object]
"""Return the acting user's id, or raise NotAuthenticated (401) / Forbidden (403) / abort()."""


@dataclass(frozen=True)
class AppState:
    """What ``DBSwap.init_app`` keeps in ``app.extensions["dbswap"]``."""

    board: Switchboard
    core: AdminCore
    authorize: Authorize | None
    login_url: str | None
    home_url: str
    follows: bool = True  # False: a test config named its own database; dbswap steps aside
    bind_logins: bool = True  # False: shared_identity=True
    bound_keys: frozenset[str] | None = None  # the session keys bound to a target (None: all)


def state(app: Flask) -> AppState:
    found = app.extensions.get(EXTENSION)
    if isinstance(found, Aside):
        raise RuntimeError(found.reason)
    if not isinstance(found, AppState):
        raise RuntimeError(
            "dbswap is not initialised on this Flask app: call DBSwap(app) or swap.init_app(app)"
        )
    return found


@dataclass(frozen=True)
class Aside:
    """What ``init_app`` keeps for an app it steps aside for: why, said by any use of the board."""

    reason: str


def follows(app: Flask) -> bool:
    """Whether dbswap pins this app's sessions (False for an app it steps aside for)."""
    if isinstance(app.extensions.get(EXTENSION), Aside):
        return False
    return state(app).follows


def current_board() -> Switchboard:
    """The board of the current Flask app (needs an app context)."""
    return state(current_app).board


# -- the decision ------------------------------------------------------------------


@dataclass(frozen=True)
class _SetAside:
    """A previewed page: what the app does not see of the admin's own session."""

    items: dict[str, Any]
    before: dict[str, Any]  # the whole session when the request began
    modified: bool


@dataclass
class RequestPin:
    """The decision for one request: its pin, its preview, and whose session the app sees."""

    pin: Pin
    shared: str  # the target everybody uses: the admin's own session belongs to it
    preview: Preview | None = None
    aside: _SetAside | None = None  # set: the app sees the preview's own session


def install(app: Flask) -> None:
    """Decide each request of ``app`` first, and put the admin's session back last."""
    app.before_request_funcs.setdefault(None, []).insert(0, _begin)
    # after_request functions run last-registered first: this one runs after the app's.
    app.after_request_funcs.setdefault(None, []).insert(0, _finish)
    app.teardown_request(_end)


def current_pin(board: Switchboard) -> Pin:
    """The current request's pin or, outside a request, the target active right now."""
    pinned = g.get(_PIN) if has_app_context() else None
    return pinned.pin if isinstance(pinned, RequestPin) else board._pin(False)


def current_preview() -> Preview | None:
    """The preview the current request is pinned to (None: the shared target)."""
    pinned = g.get(_PIN) if has_app_context() else None
    return pinned.preview if isinstance(pinned, RequestPin) else None


def _begin() -> None:
    if g.get(_PIN) is not None:  # this request context was decided already
        return
    app_state = state(current_app)
    shared = app_state.board._pin(False)
    pinned = RequestPin(shared, shared[0])
    keys, binds = app_state.bound_keys, app_state.bind_logins and _has_session()
    # `in` first: a visitor without a stamp costs nothing more.
    if binds and _identity.KEY in session and not _identity.matches(session, shared[0]):
        _identity.unbind(session, keys)  # a login of another target: signed out
    previews = current_app.extensions.get(PREVIEWS)
    cookie = request.cookies.get(COOKIE_NAME)
    if cookie is not None and isinstance(previews, Previews):
        # authorize reads the admin's own session, as it is at this point.
        preview = previews.honoured(cookie, lambda: _who(app_state))
        if preview is None:  # forged, expired, another admin's, an unknown target: cleared
            after_this_request(_clear_preview_cookie)
        else:
            pinned.preview, pinned.pin = preview, previews.pin(preview)
    if binds:
        if pinned.preview is None:
            if PREVIEW_KEY in session:
                del session[PREVIEW_KEY]  # the preview that login belonged to has ended
        elif request.blueprint != ADMIN_BLUEPRINT:
            pinned.aside = _enter_preview(session, pinned.preview, keys)
    setattr(g, _PIN, pinned)


def _finish(response: Response) -> Response:
    pinned = g.get(_PIN)
    if not isinstance(pinned, RequestPin) or not _has_session():
        return response
    app_state = state(current_app)
    if not app_state.bind_logins:
        return response
    keys = app_state.bound_keys
    if pinned.aside is not None and pinned.preview is not None:
        _leave_preview(session, pinned.preview, pinned.aside, keys)
    elif _identity.KEY not in session and _identity.holds_login(session, keys):
        _identity.stamp(session, pinned.shared)  # a log-in: it belongs to the shared target
    return response


def _end(exc: BaseException | None) -> None:
    g.pop(_PIN, None)


def _has_session() -> bool:
    """Whether the request has a session to read and write (not Flask's NullSession)."""
    return not current_app.session_interface.is_null_session(session)


def _bound(data: Mapping[str, Any], keys: Collection[str] | None) -> dict[str, Any]:
    """What of ``data`` is bound to a target: ``keys`` and the stamps, or everything."""
    if keys is None:
        return dict(data)
    return {k: v for k, v in data.items() if k in keys or k in (_identity.KEY, PREVIEW_KEY)}


def _enter_preview(data: SessionMixin, preview: Preview, keys: Collection[str] | None) -> _SetAside:
    """Set the admin's own login aside; give the page the preview's own, if it has one."""
    before, modified = dict(data), data.modified
    record = data.get(PREVIEW_KEY)
    aside = _bound(before, keys)
    for key in aside:
        del data[key]
    data.update(_identity.login_of_preview(record, _preview_id(preview)))
    return _SetAside(aside, before, modified)


def _leave_preview(
    data: SessionMixin,
    preview: Preview,
    aside: _SetAside,
    keys: Collection[str] | None,
) -> None:
    """Keep the page's login for this preview only, and put the admin's own back."""
    theirs = _bound(data, keys)
    for key in theirs:
        del data[key]
    data.update({k: v for k, v in aside.items.items() if k != PREVIEW_KEY})
    record = _identity.kept_for_preview(theirs, _preview_id(preview), keys)
    if record is not None:
        data[PREVIEW_KEY] = record
    if dict(data) == aside.before:
        data.modified = aside.modified  # nothing changed: no new cookie


def _preview_id(preview: Preview) -> _identity.PreviewId:
    return (preview.user, preview.target, preview.expires)


def end_preview_login() -> None:
    """The admin stopped her preview: the login made during it ends now."""
    if _has_session() and PREVIEW_KEY in session:
        del session[PREVIEW_KEY]


def _clear_preview_cookie(response: Response) -> Response:
    response.headers.add("Set-Cookie", cookie_header_to_clear(request.is_secure))
    return response


# -- authorize -----------------------------------------------------------------------


def identify(app_state: AppState) -> str:
    """Who ``authorize`` says is asking, or the AdminError that refuses them."""
    if app_state.authorize is None:  # pragma: no cover - the admin routes need authorize
        raise Forbidden()
    try:
        value = app_state.authorize()
    except HTTPException as exc:  # abort(401) / abort(403) in the app's authorize
        status = exc.code if exc.code is not None and 400 <= exc.code < 500 else 403
        raise AdminError(
            app_state.board.mask(str(exc.description or exc.name)),
            status=status,
            code="not_authenticated" if status == 401 else "refused",
        ) from None
    return app_state.core.user_id(value)


def _who(app_state: AppState) -> str | None:
    try:
        return identify(app_state)
    except AdminError:
        return None


# -- requests and responses of dbswap's views --------------------------------------


def request_facts() -> RequestFacts:
    return RequestFacts(
        origin=f"{request.scheme}://{request.host}",
        headers=dict(request.headers.items()),
        cookies=dict(request.cookies.items()),
    )


def read_body(limit: int) -> bytes:
    """At most ``limit`` bytes: a huge body is refused without holding it all in memory."""
    body = bytearray()
    while len(body) < limit:
        chunk = request.stream.read(limit - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


def json_response(payload: Mapping[str, Any], status: int = 200, **headers: str) -> Response:
    return Response(
        json.dumps(payload), status, headers=_NO_STORE | headers, mimetype="application/json"
    )


def error_response(exc: AdminError) -> Response:
    return json_response(exc.body(), exc.status, **exc.headers)
