"""Personal previews for Django: the view, and the middleware's pin of a previewing admin.

``DBSwapMiddleware`` pins each request to the active target when it begins.
Before the view runs (``process_view``: sessions and authentication are set
up by then), a request that carries a valid preview cookie is checked with
``DBSWAP_AUTHORIZE`` on the control database, with the control target's session,
as dbswap's admin views check it; if that names the admin the cookie was signed
for, the request is pinned to the preview's target instead (its mode included),
and only that request. The cookie is signed with a key derived from
``SECRET_KEY``, so every worker of the project agrees. See ``dbswap._preview``
for the cookie and what is decided.

A login made on one target is never honoured on another: with logins bound to
their target (the default), the previewing request's session is the preview's
own (``sessionid.preview.<target>``, see ``_cookies``), so the admin is anonymous
to the app on the previewed target; a log-in made there lives in that cookie,
which ends with the preview (its lifetime, and the stop clears it). The admin's
own login is untouched, for when the preview ends. With ``DBSWAP_FIXED_APPS``
(``auth``) or ``DBSWAP_SHARED_IDENTITY``, a login holds on every target: the
request's ``user`` is the admin as the control database knows them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from .._admin import MAX_BODY_BYTES, AdminError
from .._csrf import RequestFacts
from .._preview import (
    COOKIE_NAME,
    Preview,
    Previews,
    check_same_origin,
    cookie_options,
)
from .._switchboard import Switchboard
from . import _cookies, views
from ._board import get_board
from ._routing import Pin, _pin, control_plane, control_target, pinned
from ._settings import alias_for

_ATTRIBUTE = "dbswap_preview"  # the honoured Preview, on the request
_CLEAR = "_dbswap_clear_preview"  # set on a request whose cookie must go
_previews_of: tuple[Switchboard, bytes, Previews] | None = None


def _previews() -> Previews:
    global _previews_of
    board, key = get_board(), settings.SECRET_KEY
    key = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    entry = _previews_of
    if entry is None or entry[0] is not board or entry[1] != key:
        secret = hashlib.sha256(b"dbswap-preview\0" + key).digest()
        entry = _previews_of = (board, key, Previews(board, secret))
    return entry[2]


def current_preview(request: HttpRequest) -> Preview | None:
    """The preview this request is pinned to (None: the active target)."""
    preview = getattr(request, _ATTRIBUTE, None)
    return preview if isinstance(preview, Preview) else None


def apply_preview(request: HttpRequest) -> Preview | None:
    """Called by ``DBSwapMiddleware.process_view``: re-pin a previewing admin's request.

    Returns the preview honoured (None: the request keeps its pin); the caller
    then gives the request the session of the target it is pinned to.
    """
    cookie = request.COOKIES.get(COOKIE_NAME)
    if cookie is None:
        return None
    previews = _previews()

    def user() -> str | None:
        with pinned(control_target()):  # who is asking, as dbswap's admin views see it
            _cookies.use(request, control_target())
            try:
                return views._identify(request, views._core())
            except AdminError:
                return None

    preview = previews.honoured(cookie, user)
    if preview is None:  # forged, expired, another admin's, an unknown target: cleared
        setattr(request, _CLEAR, True)
        return None
    setattr(request, _ATTRIBUTE, preview)
    board = previews.board
    # The middleware resets its own token when the request ends, which undoes this too.
    _pin.set(
        Pin(preview.target, alias_for(preview.target, board.default_target), preview.read_only)
    )
    return preview


def finish(request: HttpRequest, response: Any) -> Any:
    """Called by ``DBSwapMiddleware`` with the response: clear a cookie that was ignored."""
    if getattr(request, _CLEAR, False):
        _clear(request, response)
    return response


def _clear(request: HttpRequest, response: Any) -> None:
    response.delete_cookie(COOKIE_NAME, path="/", samesite="Strict")
    _cookies.clear_previews(request, response)  # what was signed in during the preview


def _view(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD", "POST", "DELETE"):
        return views._method_not_allowed("GET, POST, DELETE")
    core, previews = views._core(), _previews()
    cookie = request.COOKIES.get(COOKIE_NAME)
    try:
        user = views._identify(request, core)
        if request.method in ("GET", "HEAD"):
            return views._json(previews.state(cookie, user))
        facts = RequestFacts(
            origin=f"{request.scheme}://{request.get_host()}",
            headers=dict(request.headers.items()),
        )
        check_same_origin(core.csrf, facts)
        if request.method == "POST":
            body = views._read_body(request, MAX_BODY_BYTES + 1)
            wanted = previews.parse(body, request.META.get("CONTENT_TYPE"))
            if wanted.target is not None:
                views._check_csrf(request)  # starting one takes the page's token (Django's)
                payload, preview = previews.start(wanted, user, cookie)
                response = views._json(payload)
                response.set_cookie(
                    COOKIE_NAME,
                    previews.sign(preview),
                    samesite="Strict",
                    secure=request.is_secure(),
                    **cookie_options(preview),
                )
                _cookies.clear_previews(request, response)  # a new preview starts signed out
                return response
        response = views._json(previews.stop(cookie, user))
    except AdminError as exc:
        return views._error(exc)
    _clear(request, response)
    return response


# On the control database, as dbswap's other admin views. CSRF: Django's check for a
# start, the Origin check for a stop (see check_same_origin).
view = csrf_exempt(control_plane(_view))
