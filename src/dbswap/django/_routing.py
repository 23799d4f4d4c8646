"""Pinning a request to one target: the pin, the router and the connection guard.

The middleware (``_middleware``) reads the active target once when a request
begins and keeps it in a ``contextvars`` value (set with a token, reset at the end), which
follows the request into ``sync_to_async`` threads and async views. The
router sends every model query to that pin's alias; outside a request (a
management command, a shell, a job) it is the target active at each query,
or the pin of a ``with pinned():`` block.

Every Django connection gets one execute wrapper (``connection_created``):

- it puts the connection in the server's read-only mode when the pin is a
  read-only switch (the same statements as the core's), and turns the
  server's refusal into ``ReadOnlyTarget``;
- it refuses, with ``UnroutedQuery``, what Django cannot route: a query on
  ``default`` (``django.db.connection``, ``connections["default"]``) while the
  request is pinned elsewhere, and a write to the pinned database inside an
  ``atomic()`` that was opened on ``default`` (``atomic()`` without ``using=``).
  The apps of ``DBSWAP_FIXED_APPS`` live on ``default``: their queries pass.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction

from .._engines import _MODE_SQL, _is_read_only_refusal
from .._errors import ReadOnlyTarget
from ._board import get_board
from ._errors import UnroutedQuery
from ._identity import fixed_apps, fixed_statement, is_fixed
from ._settings import alias_for


@dataclass(frozen=True)
class Pin:
    """The target a request (or a ``pinned()`` block) uses, its alias and its mode."""

    target: str
    alias: str
    read_only: bool


_pin: ContextVar[Pin | None] = ContextVar("dbswap_django_pin", default=None)


def active_pin() -> Pin:
    """The pin a request beginning now would get."""
    board = get_board()
    name, read_only = board._current()
    return Pin(name, alias_for(name, board.default_target), read_only)


def current_pin() -> Pin:
    """This request's pin, or the active target's outside a request."""
    return _pin.get() or active_pin()


def current_alias() -> str:
    """The DATABASES alias this request (or this moment, outside one) uses."""
    return current_pin().alias


@contextmanager
def pinned(target: str | None = None) -> Iterator[Pin]:
    """Pin a block to ``target`` (default: the active one), as the middleware pins a request."""
    pin = active_pin()
    if target is not None and target.strip().lower() != pin.target:
        board = get_board()
        name = board.target(target).name
        pin = Pin(name, alias_for(name, board.default_target), name in board.read_only_targets)
    token = _pin.set(pin)
    try:
        yield pin
    finally:
        _pin.reset(token)


def control_target() -> str:
    """The target of the control plane: the default one, or production under its lock."""
    board = get_board()
    # Under the production lock nothing can be switched, and default may not be reachable.
    return board.active if board.production_lock else board.default_target


def control_plane(view: Callable[..., Any]) -> Callable[..., Any]:
    """Run a view on the ``default`` database, whatever target is active.

    dbswap's admin views are wrapped with it, so who may switch (users,
    sessions) never depends on the database being switched: a staff member of
    ``default`` can always switch back. Under the production lock nothing can
    be switched, and ``default`` may not even be reachable: the view stays on
    production. The middleware gives these views the control target's session
    cookie, and does not drop a login made on another target for them: they
    refuse it themselves, without signing anybody out.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with pinned(control_target()):
            return view(*args, **kwargs)

    wrapper.dbswap_control_plane = True  # type: ignore[attr-defined]
    return wrapper


def atomic(savepoint: bool = True, durable: bool = False) -> Any:
    """``transaction.atomic`` on this request's database: use it as ``with atomic():``."""
    return transaction.atomic(using=current_alias(), savepoint=savepoint, durable=durable)


def current_connection() -> Any:
    """``django.db.connection``, but the one of this request's database."""
    return connections[current_alias()]


class DBSwapRouter:
    """``DATABASE_ROUTERS = ["dbswap.django.DBSwapRouter"]``: models follow the pin.

    The models of ``DBSWAP_FIXED_APPS`` stay on ``default``, and are migrated there only.
    """

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return _route(model, hints)

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return _route(model, hints)

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        # A row of the switched database may point at a fixed one (its author, a user).
        if not fixed_apps():
            return None
        return True if is_fixed(obj1) != is_fixed(obj2) else None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return db == DEFAULT_DB_ALIAS if app_label in fixed_apps() else None


def _route(model: Any, hints: dict[str, Any]) -> str:
    planes = bool(fixed_apps())  # (asked by every query: without fixed apps, no more looks)
    fixed = planes and is_fixed(model)
    # An object stays in the database it was read from, even across a switch; the
    # hint of a related lookup across planes (an item's user) says nothing of the other.
    instance = hints.get("instance")
    if instance is not None:
        db = instance._state.db  # a model instance, as Django's own routing takes it
        if db is not None and (planes and is_fixed(instance)) == fixed:
            return str(db)
    return DEFAULT_DB_ALIAS if fixed else current_alias()


# -- the connection guard ----------------------------------------------------------


def on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    connection.dbswap_read_only = False  # a new server session starts writable
    if _guard not in connection.execute_wrappers:
        # First, not last: execute_wrapper() blocks pop from the end.
        connection.execute_wrappers.insert(0, _guard)


def _guard(execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any) -> Any:
    conn = context["connection"]
    request_pin = _pin.get()
    pin = request_pin or active_pin()
    if request_pin is not None and pin.alias != DEFAULT_DB_ALIAS:
        _refuse_unrouted(conn, pin, sql)
    wanted = pin.read_only and conn.alias == pin.alias
    if getattr(conn, "dbswap_read_only", False) is not wanted:
        _set_mode(conn, wanted)
    try:
        return execute(sql, params, many, context)
    except DatabaseError as exc:
        if wanted and _is_read_only_refusal(exc.__cause__):
            raise ReadOnlyTarget(pin.target) from exc
        raise


def _refuse_unrouted(conn: Any, pin: Pin, sql: Any) -> None:
    if conn.alias == DEFAULT_DB_ALIAS and not fixed_statement(str(sql)):
        raise UnroutedQuery(
            f"a query went to the 'default' database while this request uses {pin.target!r} "
            f"(alias {pin.alias!r}): django.db.connection, connections['default'] and "
            "transaction.atomic() without using= are not routed; use Model.objects, "
            "dbswap.django.current_connection() and dbswap.django.atomic()"
        )
    if (
        conn.alias == pin.alias
        and not conn.in_atomic_block
        and connections[DEFAULT_DB_ALIAS].in_atomic_block
    ):
        raise UnroutedQuery(
            f"transaction.atomic() without using= opened a transaction on 'default', "
            f"but this request writes to {pin.target!r}, outside that transaction; "
            "use dbswap.django.atomic() (or atomic(using=...))"
        )


def _set_mode(conn: Any, read_only: bool) -> None:
    """Put the server session in (or out of) its read-only mode, as the core does."""
    enter, leave = _MODE_SQL[conn.vendor]
    raw = conn.connection
    cursor = raw.cursor()
    try:
        cursor.execute(enter if read_only else leave)
        info = getattr(raw, "info", None)  # psycopg: inside atomic(), set this transaction too
        if conn.vendor == "postgresql" and info is not None and info.transaction_status != 0:
            cursor.execute(f"SET TRANSACTION READ {'ONLY' if read_only else 'WRITE'}")
    finally:
        cursor.close()
    conn.dbswap_read_only = read_only


def close_inactive(**kwargs: Any) -> None:
    """At the end of a request: close this thread's connections to inactive targets."""
    board = get_board()
    keep = {alias_for(board.active, board.default_target)}
    if fixed_apps():
        keep.add(DEFAULT_DB_ALIAS)  # the fixed apps' database serves every request
    for name in board.targets:
        alias = alias_for(name, board.default_target)
        if alias in keep or alias not in connections.settings:
            continue
        conn = connections[alias]
        if conn.connection is not None and not conn.in_atomic_block:
            conn.close()
