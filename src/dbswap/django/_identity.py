"""Who is signed in, on which database: fixed apps, and sessions bound to their target.

Users and sessions are rows of a database, so a login belongs to a target;
the same user id on another target may be somebody else. Two ways out:

- ``DBSWAP_FIXED_APPS = ["auth", "sessions", "admin", "contenttypes"]`` (app
  labels): the router keeps these apps' models on ``default`` whatever the
  target (reads, writes, relations, migrations). Identity lives on one control
  database: a login holds on every target and staff can always switch back.
- Otherwise (``auth`` not fixed) a login belongs to the target it was made on:
  each target has its own session cookie (see ``_cookies``), so a request on
  another target does not see it (the visitor is anonymous there, and told
  why), and ``login()`` stamps the target in the session, so a session that
  reaches another target anyway is flushed. ``DBSWAP_SHARED_IDENTITY = True``
  turns both off, for projects whose users have the same ids in every target.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from importlib import import_module
from typing import Any

from django.conf import settings

from .. import _identity

_NAMES = re.compile(r'"([^"]+)"|`([^`]+)`|(\w+)')  # quoted identifiers, then bare words
_TRANSACTION = ("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK")


@cache
def fixed_apps() -> frozenset[str]:
    """The app labels of ``DBSWAP_FIXED_APPS``: their models stay on ``default``."""
    return frozenset(getattr(settings, "DBSWAP_FIXED_APPS", ()))


def is_fixed(model: Any) -> bool:
    """Whether a model (or a model instance) belongs to a fixed app."""
    return bool(model._meta.app_label in fixed_apps())


@cache
def _tables() -> tuple[frozenset[str], frozenset[str]]:
    """Every model's table, and the fixed apps' tables (lower case)."""
    from django.apps import apps

    every: set[str] = set()
    fixed: set[str] = set()
    for model in apps.get_models(include_auto_created=True):
        table = model._meta.db_table.lower()
        every.add(table)
        if is_fixed(model):
            fixed.add(table)
    return frozenset(every), frozenset(fixed)


@lru_cache(maxsize=1024)
def fixed_statement(sql: str) -> bool:
    """Whether ``sql`` belongs on ``default`` while a request is pinned elsewhere: it
    names fixed apps' tables and no other model's, or it is transaction control
    (the ``BEGIN`` or savepoints of an ``atomic()`` that saves a session)."""
    every, fixed = _tables()
    if not fixed:
        return False
    named = {next(name for name in found if name).lower() for found in _NAMES.findall(sql)}
    named &= every
    if named:
        return named <= fixed
    return sql.lstrip().upper().startswith(_TRANSACTION)


def forget_settings(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver: tests may change the fixed apps and the identity."""
    if setting == "DBSWAP_FIXED_APPS":
        fixed_apps.cache_clear()
        _tables.cache_clear()
        fixed_statement.cache_clear()
    if setting in ("DBSWAP_FIXED_APPS", "DBSWAP_SHARED_IDENTITY"):
        binds_sessions.cache_clear()
    if setting == "SESSION_COOKIE_NAME":
        session_cookie_name.cache_clear()


@cache  # asked several times per request; an unset setting costs Django an exception
def binds_sessions() -> bool:
    """Whether logins are stamped with their target (users are not on a fixed database)."""
    return "auth" not in fixed_apps() and not getattr(settings, "DBSWAP_SHARED_IDENTITY", False)


@cache
def session_cookie_name() -> str:
    """``SESSION_COOKIE_NAME``, read once (each read of a setting goes through a proxy)."""
    return str(settings.SESSION_COOKIE_NAME)


def stamp_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """``user_logged_in`` receiver: the session belongs to the target the user was read from."""
    from ._routing import current_pin  # _routing imports this module

    session = getattr(request, "session", None)
    if session is not None and binds_sessions():
        _identity.stamp(session, current_pin().target)


def drop_foreign_login(request: Any, target: str) -> None:
    """Flush a session stamped with another target than ``target``: the visitor is anonymous."""
    session = getattr(request, "session", None)
    if session is None or not binds_sessions():
        return
    issued_on = _identity.stamped(session)
    if issued_on is None or issued_on == target:
        return
    session.flush()
    if hasattr(request, "user"):  # a middleware may have looked already
        from django.contrib.auth.models import AnonymousUser

        request.user = AnonymousUser()
    from django.contrib import messages

    messages.warning(request, _identity.moved_message(issued_on, target), fail_silently=True)


def foreign_login(request: Any, control: str, active: str) -> str | None:
    """Why the control plane (dbswap's admin views, on ``control``'s database) must not
    take this request's session, or None if it may.

    Reading the session there must not sign the visitor out of the target it
    belongs to: a session ``control`` does not hold keeps its cookie.
    """
    session = getattr(request, "session", None)
    if session is None:
        return None
    issued_on = _identity.stamped(session)  # loads it, from the control database
    if binds_sessions() and issued_on not in (None, control):
        return _control_message(f"you are signed in on {issued_on!r}", control)
    key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if not key and active != control:  # the log-in form would sign in on `active` again
        from ._cookies import sessions_elsewhere  # it imports this module

        elsewhere = sessions_elsewhere(request)
        if elsewhere:  # a session on another target only (a session cookie per target)
            return _control_message(f"you are signed in on {elsewhere[0]!r}", control)
    if key and session.session_key is None and active != control:
        # Django deletes the cookie of a session it found empty: give it an unread one.
        request.session = import_module(settings.SESSION_ENGINE).SessionStore(key)
        return _control_message(
            f"your session is not one of {control!r}'s (it was made while {active!r} "
            "was in use, or it expired)",
            control,
        )
    return None


def _control_message(why: str, control: str) -> str:
    return (
        f"dbswap's admin takes only logins made on {control!r}, its control database, so "
        f"that staff can always switch back, and {why}. Switch from a shell "
        f"(manage.py dbswap use {control}) or sign in while {control!r} is in use; to keep "
        "one login on every target, set DBSWAP_FIXED_APPS (see 'Identity across targets' "
        "in dbswap's README)."
    )
