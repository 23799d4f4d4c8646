"""Personal previews for Flask: the route, and the request pin of a previewing admin.

``DBSwap(authorize=...)`` installs both. Each request is pinned when it begins
(``dbswap.flask._pin_request``); then, after the check that drops a login made
on another target, ``apply_preview`` re-pins the request of an admin who
carries a valid preview cookie of their own to the preview's target: its
``db.session`` and ``db.engine`` use it, nobody else's do. See
``dbswap._preview`` for the cookie and what is decided.
"""

from __future__ import annotations

from flask import Flask, Response, after_this_request, current_app, g, request

from ._admin import MAX_BODY_BYTES, AdminError
from ._preview import (
    COOKIE_NAME,
    Preview,
    Previews,
    check_same_origin,
    cookie_header_to_clear,
    cookie_options,
)
from ._switchboard import Switchboard

EXTENSION = "dbswap.preview"  # the app's Previews, in app.extensions
_HONOURED = "_dbswap_preview"  # the request's Preview, in flask.g


def install(app: Flask, board: Switchboard, secret: str | bytes | None, pins: bool) -> None:
    """Keep the app's previews; with ``pins``, honour them when requests begin."""
    from . import flask as http  # (it imports this module)

    app.extensions[EXTENSION] = Previews(board, secret)
    if pins:
        # After dbswap's own first functions (the pin, the foreign-login check): the
        # admin's login is checked against the shared target before the pin moves.
        before = app.before_request_funcs.setdefault(None, [])
        position = 0
        while position < len(before) and before[position] in (
            http._pin_request,
            http._drop_foreign_login,
        ):
            position += 1
        before.insert(position, apply_preview)


def current_preview() -> Preview | None:
    """The preview the current request is pinned to (None: the shared target)."""
    preview = g.get(_HONOURED)
    return preview if isinstance(preview, Preview) else None


def apply_preview() -> None:
    """A ``before_request`` function: pin a previewing admin's request to the preview."""
    cookie = request.cookies.get(COOKIE_NAME)
    if cookie is None:
        return
    from . import flask as http

    state = http._state(current_app)
    previews: Previews = current_app.extensions[EXTENSION]

    def user() -> str | None:
        try:
            return str(http._identify(state))
        except AdminError:
            return None

    preview = previews.honoured(cookie, user)
    if preview is None:  # forged, expired, another admin's, an unknown target: cleared
        after_this_request(_clear)
        return
    setattr(g, _HONOURED, preview)
    setattr(g, http._PIN, previews.pin(preview))


def _clear(response: Response) -> Response:
    response.headers.add("Set-Cookie", cookie_header_to_clear(request.is_secure))
    return response


def preview_view() -> Response:
    """``GET``, ``POST`` and ``DELETE`` of ``/api/admin/database/preview``."""
    from . import flask as http

    state = http._state(current_app)
    previews: Previews = current_app.extensions[EXTENSION]
    cookie = request.cookies.get(COOKIE_NAME)
    try:
        user = http._identify(state)
        if request.method == "GET":
            return http._json(previews.state(cookie, user))
        check_same_origin(state.core.csrf, http._facts())
        if request.method == "POST":
            body = http._read_body(MAX_BODY_BYTES + 1)
            wanted = previews.parse(body, request.headers.get("Content-Type"))
            if wanted.target is not None:
                state.core.check_csrf(http._facts())  # starting one takes the page's token
                payload, preview = previews.start(wanted, user)
                response: Response = http._json(payload)
                response.set_cookie(
                    COOKIE_NAME,
                    previews.sign(preview),
                    samesite="Strict",
                    secure=request.is_secure,
                    **cookie_options(preview),
                )
                return response
        response = http._json(previews.stop(cookie, user))
    except AdminError as exc:
        return http._error(exc)
    return _clear(response)
