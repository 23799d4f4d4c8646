"""The process's board for Django, and the schema-drift guard over Django migrations.

The board is built on first use: ``settings.DBSWAP_BOARD`` (a Switchboard, or
the dotted path of one or of a function returning one) if set, else
``Switchboard.from_env(cwd=settings.BASE_DIR)``, the same variables
``databases_from_env()`` reads. Unless ``DBSWAP_CHECK_MIGRATIONS = False`` (or
an Alembic guard is configured), a switch refuses a target that lacks
migrations of the project's graph. ``set_board()`` replaces it (tests).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from django.conf import settings
from django.utils.module_loading import import_string
from sqlalchemy import Connection

from .._errors import ConfigError, SchemaMismatch
from .._pinning import process_pin
from .._schema import SchemaGuard
from .._switchboard import Switchboard
from ._errors import MigrationsNotApplied
from ._settings import alias_for

_lock = threading.Lock()
_board: Switchboard | None = None


def get_board() -> Switchboard:
    """The board of this Django process (built from settings and the environment once)."""
    global _board
    board = _board
    if board is None:
        with _lock:
            if _board is None:
                _board = _build()
            board = _board
    return board


def set_board(board: Switchboard | None) -> Switchboard | None:
    """Replace the process's board (None: build it again on next use); returns the old one."""
    global _board
    with _lock:
        previous, _board = _board, board
    return previous


def _build() -> Switchboard:
    configured: Any = getattr(settings, "DBSWAP_BOARD", None)
    if configured is None:
        base = getattr(settings, "BASE_DIR", None)
        pin = process_pin()  # dbswap run: its target is the default alias (see _settings)
        overrides: dict[str, Any] = {"default_target": pin} if pin is not None else {}
        board: Any = Switchboard.from_env(cwd=Path(base) if base is not None else None, **overrides)
    else:
        board = import_string(configured) if isinstance(configured, str) else configured
        if not isinstance(board, Switchboard) and callable(board):
            board = board()
    if not isinstance(board, Switchboard):
        raise ConfigError("settings.DBSWAP_BOARD must be a Switchboard or the dotted path of one")
    if getattr(settings, "DBSWAP_METRICS", False) and board._observer.metrics is None:
        board.enable_metrics()  # served by the metrics view (dbswap.django.urls)
    if getattr(settings, "DBSWAP_CHECK_MIGRATIONS", True) and board.schema_guard is None:
        board.schema_guard = MigrationGuard(board.default_target)
    return board


class MigrationGuard(SchemaGuard):
    """Compares a target's ``django_migrations`` with the project's migration graph.

    Plugs into the core's health check (validate -> lock -> check -> commit):
    a "revision" is ``app.migration``, the last one applied per app; a target
    matches when every app is at its leaf. Squashed migrations count as
    applied when all the migrations they replace are.
    """

    def __init__(self, default_target: str = "default") -> None:
        self.default_target = default_target  # its alias is "default"

    def code_heads(self) -> tuple[str, ...]:
        return tuple(sorted(_label(node) for node in _graph().leaf_nodes()))

    def mismatch(
        self, target: str, database: tuple[str, ...], code: tuple[str, ...]
    ) -> SchemaMismatch:
        alias = alias_for(target, self.default_target)
        return MigrationsNotApplied(target, alias, database, code)

    def database_heads(self, conn: Connection) -> tuple[str, ...]:
        applied: set[tuple[str, str]] = set()
        if sa.inspect(conn).has_table("django_migrations"):
            rows = conn.execute(sa.text("SELECT app, name FROM django_migrations"))
            applied = {(str(app), str(name)) for app, name in rows}
        graph = _graph()
        heads = []
        for leaf in graph.leaf_nodes():
            chain = [node for node in graph.forwards_plan(leaf) if node[0] == leaf[0]]
            done = [node for node in chain if _applied(graph, node, applied)]
            if len(done) == len(chain):
                heads.append(_label(leaf))
            else:
                heads.append(_label(done[-1]) if done else f"{leaf[0]}.(none)")
        return tuple(sorted(heads))


def _graph() -> Any:
    from django.db.migrations.loader import MigrationLoader

    # No connection: the graph as the code defines it (read afresh, like Alembic's heads).
    return MigrationLoader(None, ignore_no_migrations=True).graph


def _applied(graph: Any, node: tuple[str, str], applied: set[tuple[str, str]]) -> bool:
    if node in applied:
        return True
    replaces = getattr(graph.nodes[node], "replaces", None) or ()
    return bool(replaces) and all(tuple(r) in applied for r in replaces)


def _label(node: tuple[str, str]) -> str:
    return f"{node[0]}.{node[1]}"
