"""The Django adapter: the ORM, the admin and the admin API follow the hot swap.

settings.py::

    from dbswap.django import databases_from_env

    DATABASES = databases_from_env(cwd=BASE_DIR)     # default target -> "default", others by name
    DATABASE_ROUTERS = ["dbswap.django.DBSwapRouter"]
    INSTALLED_APPS = [..., "dbswap.django"]
    MIDDLEWARE = ["dbswap.django.DBSwapMiddleware", ...]   # first

urls.py::

    urlpatterns = [
        path("", include("dbswap.django.urls")),   # BEFORE admin.site.urls (its catch-all)
        path("admin/", admin.site.urls),
    ]

Each request is pinned, when it begins, to the target active at that moment
(a ``contextvars`` value, right under WSGI, ASGI and async views), and every
model query, ``Model.objects``, related managers, ``select_for_update``, the
admin, sessions and auth, goes to that target's alias until the request ends,
even if a switch happens meanwhile. An object keeps the database it was read
from. Switches go through the core (health check before commit, audit, lock,
production lock), refuse a target that lacks migrations (``MigrationsNotApplied``,
a ``SchemaMismatch``; override with ``ignore_schema``), and a read-only switch
puts the pinned connection in the server's read-only mode (``ReadOnlyTarget``).

A login belongs to the target it was made on: each target has its own session
cookie (the control target keeps ``SESSION_COOKIE_NAME``, another gets
``<name>.<target>``), so a login is never seen, deleted or replaced by a request
on another target, and dbswap's views always read the control target's;
``login()`` stamps the target in the session, and the middleware flushes a
session stamped with another one before the view runs
(``DBSWAP_SHARED_IDENTITY = True`` turns both off). A previewing admin's
requests get a session of the preview's own, which ends with it. A write that
a read-only target refuses is answered 409, never 500.
Or keep identity on one control database whatever the target:
``DBSWAP_FIXED_APPS = ["auth", "sessions", "admin", "contenttypes"]`` keeps
those apps' models on ``default`` (reads, writes, relations, migrations).

What Django itself cannot route, and what dbswap does about it:

- ``django.db.connection`` / ``connections["default"]`` always mean ``default``:
  use ``current_connection()``. While a request is pinned elsewhere, a query
  on ``default`` raises ``UnroutedQuery`` instead of reading the wrong database.
- ``transaction.atomic()`` without ``using=`` opens its transaction on
  ``default``: use ``dbswap.django.atomic()`` (``with atomic(): ...``). A write
  to the pinned database inside an ``atomic()`` opened on ``default`` raises
  ``UnroutedQuery`` (it would not be atomic).
- Raw SQL through ``Model.objects.raw()`` is routed; ``cursor()`` on a named
  alias goes where it says.
- Code outside a request (commands, jobs, the shell) follows the active target
  query by query; wrap a unit of work in ``with pinned(): ...`` to pin it.
- A streaming response's body is produced after the middleware returns: it
  follows the active target, not the request's pin.
"""

from __future__ import annotations

from typing import Any

from ._board import MigrationGuard, get_board, set_board
from ._errors import MigrationsNotApplied, UnroutedQuery
from ._middleware import DBSwapMiddleware
from ._routing import (
    DBSwapRouter,
    Pin,
    atomic,
    control_plane,
    current_alias,
    current_connection,
    current_pin,
    pinned,
)
from ._settings import alias_for, databases_from_env, target_for


def current_preview(request: Any) -> Any:
    """The admin's own preview this request is pinned to (a ``Preview``), or None.

    Imported on first use: the views it needs cannot load before Django is set up.
    """
    from ._preview import current_preview as of_request

    return of_request(request)


__all__ = [
    "DBSwapMiddleware",
    "DBSwapRouter",
    "MigrationGuard",
    "MigrationsNotApplied",
    "Pin",
    "UnroutedQuery",
    "alias_for",
    "atomic",
    "control_plane",
    "current_alias",
    "current_connection",
    "current_pin",
    "current_preview",
    "databases_from_env",
    "get_board",
    "pinned",
    "set_board",
    "target_for",
]
