"""Personal previews for Flask: ``GET``, ``POST`` and ``DELETE /api/admin/database/preview``.

``DBSwap(authorize=...)`` serves this route beside the switch. Honouring a
preview (pinning a previewing admin's requests to its target, and what the
app sees of her login there) is the request's one decision, in
``dbswap._request_flask``. See ``dbswap._preview`` for the cookie and what is
decided.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, request

from ._admin import MAX_BODY_BYTES, AdminError
from ._preview import (
    COOKIE_NAME,
    Previews,
    check_same_origin,
    cookie_header_to_clear,
    cookie_options,
)
from ._request_flask import (
    PREVIEWS,
    end_preview_login,
    error_response,
    identify,
    json_response,
    read_body,
    request_facts,
    state,
)
from ._switchboard import Switchboard


def install(app: Flask, board: Switchboard, secret: str | bytes | None) -> None:
    """Keep the app's previews, signed with ``secret`` (the admin page's CSRF secret)."""
    app.extensions[PREVIEWS] = Previews(board, secret)


def preview_view() -> Response:
    """``GET``, ``POST`` and ``DELETE`` of ``/api/admin/database/preview``."""
    app_state = state(current_app)
    previews: Previews = current_app.extensions[PREVIEWS]
    cookie = request.cookies.get(COOKIE_NAME)
    try:
        user = identify(app_state)
        if request.method == "GET":
            return json_response(previews.state(cookie, user))
        check_same_origin(app_state.core.csrf, request_facts())
        if request.method == "POST":
            body = read_body(MAX_BODY_BYTES + 1)
            wanted = previews.parse(body, request.headers.get("Content-Type"))
            if wanted.target is not None:
                app_state.core.check_csrf(request_facts())  # starting one takes the page's token
                payload, preview = previews.start(wanted, user)
                response = json_response(payload)
                response.set_cookie(
                    COOKIE_NAME,
                    previews.sign(preview),
                    samesite="Strict",
                    secure=request.is_secure,
                    **cookie_options(preview),
                )
                end_preview_login()  # a new preview starts without the last one's login
                return response
        response = json_response(previews.stop(cookie, user))
    except AdminError as exc:
        return error_response(exc)
    end_preview_login()
    response.headers.add("Set-Cookie", cookie_header_to_clear(request.is_secure))
    return response
