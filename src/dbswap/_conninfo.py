"""Every connection knows its target: ``conn.info["dbswap_target"]`` (and ``"dbswap_read_only"``).

Core code gets it from ``board.engine.connect()``, as a session has
``session.dbswap_target``. It is written once per DBAPI connection, in the
pool's ``connect`` event: a pooled connection's ``info`` outlives its
checkouts, so ``connect()`` pays nothing for it, and the listener survives the
pools an engine is given when its target is retired (``Pool.recreate()`` keeps
listeners).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, event
from sqlalchemy.pool import ConnectionPoolEntry

from ._engines import EngineCache
from ._targets import Target

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

TARGET_KEY = "dbswap_target"
READ_ONLY_KEY = "dbswap_read_only"


class LabelledEngineCache(EngineCache):
    """The engine cache, whose engines label each new connection with its target and mode."""

    def _create(self, target: Target, read_only: bool) -> Engine:
        engine = super()._create(target, read_only)
        label(engine, target.name, read_only)
        return engine

    def _create_async(self, target: Target, read_only: bool, **extra: Any) -> AsyncEngine:
        engine = super()._create_async(target, read_only, **extra)
        label(engine.sync_engine, target.name, read_only)
        return engine


def label(engine: Engine, target: str, read_only: bool) -> None:
    def _label(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[TARGET_KEY] = target
        record.info[READ_ONLY_KEY] = read_only

    event.listen(engine, "connect", _label)
