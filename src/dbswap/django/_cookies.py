"""One session cookie per target: a login on one target is never seen, deleted or replaced
by a request on another.

Django's ``SessionMiddleware`` reads and writes one cookie, ``SESSION_COOKIE_NAME``.
With logins bound to their target (the default), ``DBSwapMiddleware`` gives each
target a cookie of its own: the control target (the default one) keeps
``SESSION_COOKIE_NAME`` (``sessionid``), another target gets ``sessionid.<target>``,
and a previewing admin's requests get ``sessionid.preview.<target>``, which lives no
longer than the preview. Before ``SessionMiddleware`` reads the request, the
middleware puts the cookie of the request's target under the name Django reads;
once the view has run, it renames the cookie Django set (or deleted). So Django's
deleting an empty session, or a log-in on production, touches production's cookie
only, and a staff member's local login is there again when the site is back on
local (dbswap's own views always read the control target's cookie).

With ``DBSWAP_SHARED_IDENTITY = True``, or ``auth`` in ``DBSWAP_FIXED_APPS``, a login
holds on every target: one cookie, as Django has it.

A visitor whose only session is on another target is anonymous here; they are told
why once (a message, in the messages framework's cookie: nothing is written to
this target's database, which may be read-only), and a small cookie remembers it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils.functional import SimpleLazyObject
from django.utils.http import http_date

from .. import _identity
from ._board import get_board
from ._identity import binds_sessions, session_cookie_name
from ._routing import control_target

TOLD = "dbswap_moved"  # the target where a visitor was told that their login is elsewhere
_ATTRIBUTE = "_dbswap_session_cookie"


@dataclass
class _Choice:
    """Which cookie this request's session is read from and written to."""

    sent: dict[str, str]  # the cookies as the browser sent them
    name: str
    until: float | None = None  # a preview's end: its cookie lives no longer
    told: str | None = None  # the response sets TOLD to this target
    forget_told: bool = False  # ...or deletes it


def per_target() -> bool:
    """Whether each target has its own session cookie (logins are bound to their target)."""
    return binds_sessions()


def name_for(target: str, *, preview: bool = False) -> str:
    """The session cookie of ``target`` (of a preview of it, with ``preview``)."""
    base = session_cookie_name()
    if not per_target():
        return base
    if preview:
        return f"{base}.preview.{target}"
    return base if target == control_target() else f"{base}.{target}"


def begin(request: Any, target: str) -> None:
    """Before ``SessionMiddleware`` runs: the request's session is ``target``'s."""
    if per_target():
        setattr(request, _ATTRIBUTE, _Choice(dict(request.COOKIES), ""))
        use(request, target)


def use(request: Any, target: str, *, until: float | None = None) -> None:
    """Read (and write) the session of ``target``; ``until``: of a preview that ends then.

    If ``SessionMiddleware`` has made the request's session already (the view is
    being chosen), it is made again from that cookie, and the user is looked up again.
    """
    choice: _Choice | None = getattr(request, _ATTRIBUTE, None)
    if choice is None:
        return
    name = name_for(target, preview=until is not None)
    if name == choice.name:
        return
    choice.name, choice.until = name, until
    base = session_cookie_name()
    key = choice.sent.get(name) or None  # a deleted cookie may still be sent, empty
    if key is None:
        request.COOKIES.pop(base, None)  # so Django has no cookie of this target to delete
    else:
        request.COOKIES[base] = key
    session = getattr(request, "session", None)
    if session is not None:
        request.session = type(session)(key)  # the store SessionMiddleware uses
        _forget_user(request)


def _forget_user(request: Any) -> None:
    """What ``AuthenticationMiddleware`` set up, set up again on the new session."""
    if not hasattr(request, "user"):
        return
    from django.contrib.auth.middleware import get_user

    request.__dict__.pop("_cached_user", None)
    request.__dict__.pop("_acached_user", None)
    request.user = SimpleLazyObject(lambda: get_user(request))


def sessions_elsewhere(request: Any) -> list[str]:
    """The targets, besides the one in use, whose session cookie the request carries."""
    choice: _Choice | None = getattr(request, _ATTRIBUTE, None)
    if choice is None:
        return []
    return [
        name
        for name in get_board().targets
        if name_for(name) != choice.name and choice.sent.get(name_for(name))
    ]


def tell_moved(request: Any, target: str) -> None:
    """A visitor signed in on another target only is anonymous on ``target``: say so, once."""
    choice: _Choice | None = getattr(request, _ATTRIBUTE, None)
    if choice is None:
        return
    elsewhere = [] if choice.sent.get(choice.name) else sessions_elsewhere(request)
    told = choice.sent.get(TOLD)
    if not elsewhere:
        choice.forget_told = told is not None  # so the next move is told again
        return
    storage = getattr(request, "_messages", None)
    if told == target or storage is None or _session_backed(storage):
        return  # told already, or no messages; or telling would write a session here
    from django.contrib import messages

    issued_on = control_target() if control_target() in elsewhere else elsewhere[0]
    messages.warning(request, _identity.moved_message(issued_on, target), fail_silently=True)
    choice.told = target


def _session_backed(storage: Any) -> bool:
    from django.contrib.messages.storage.session import SessionStorage

    return isinstance(storage, SessionStorage)


def clear_previews(request: Any, response: Any) -> None:
    """Delete the previews' session cookies: a log-in made in a preview ends with it."""
    choice: _Choice | None = getattr(request, _ATTRIBUTE, None)
    sent = choice.sent if choice is not None else request.COOKIES
    prefix = f"{settings.SESSION_COOKIE_NAME}.preview."
    for name in sent:
        if name.startswith(prefix):
            response.delete_cookie(
                name,
                path=settings.SESSION_COOKIE_PATH,
                domain=settings.SESSION_COOKIE_DOMAIN,
                samesite=settings.SESSION_COOKIE_SAMESITE,
            )


def finish(request: Any, response: Any) -> Any:
    """The session cookie Django set or deleted goes out under the name of its target."""
    choice: _Choice | None = getattr(request, _ATTRIBUTE, None)
    if choice is None or response is None:
        return response
    base = session_cookie_name()
    if choice.name != base and base in response.cookies:
        sent = response.cookies.pop(base)
        response.cookies[choice.name] = sent.value
        renamed = response.cookies[choice.name]
        for attribute, value in sent.items():
            renamed[attribute] = value
        if choice.until is not None and sent.value:
            _bound(renamed, choice.until)
    if choice.told is not None:
        response.set_cookie(
            TOLD,
            choice.told,
            path="/",
            secure=settings.SESSION_COOKIE_SECURE or None,
            httponly=True,
            samesite="Lax",
        )
    elif choice.forget_told:
        response.delete_cookie(TOLD, path="/", samesite="Lax")
    return response


def _bound(morsel: Any, until: float) -> None:
    """A preview's session cookie expires with the preview, at the latest."""
    now = time.time()
    left = max(1, math.ceil(until - now))
    if not morsel["max-age"] or int(morsel["max-age"]) > left:
        morsel["max-age"] = left
        morsel["expires"] = http_date(now + left)
