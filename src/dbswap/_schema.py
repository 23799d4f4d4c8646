"""The schema-drift guard: refuse a target whose migrations are not the code's.

``SchemaGuard`` is what a switch asks, during its health check; ``AlembicGuard``
answers from Alembic (imported only when an app names its migrations:
``DBSWAP_ALEMBIC_CONFIG`` or ``Switchboard(alembic_config=...)``), and the
Django adapter answers from Django's migration graph.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from ._errors import ConfigError, SchemaMismatch


class SchemaGuard:
    """Compares the revisions a target has applied with those the code expects."""

    def code_heads(self) -> tuple[str, ...]:
        """The revisions the code expects (read afresh: a dev may add one meanwhile)."""
        raise NotImplementedError

    def database_heads(self, conn: Connection) -> tuple[str, ...]:
        """The revisions applied in the target (empty: none at all)."""
        raise NotImplementedError

    def mismatch(
        self, target: str, database: tuple[str, ...], code: tuple[str, ...]
    ) -> SchemaMismatch:
        """The error that refuses the switch, in the words of this migration tool."""
        return SchemaMismatch(target, database, code)


class AlembicGuard(SchemaGuard):
    """Compares a target's ``alembic_version`` with the script directory's heads."""

    def __init__(self, config_path: str | os.PathLike[str]) -> None:
        self.path = Path(config_path)
        try:
            from alembic.config import Config
            from alembic.script import ScriptDirectory
        except ImportError:
            raise ConfigError(
                "an Alembic config is set but Alembic is not installed; "
                "pip install 'dbswap[alembic]'"
            ) from None
        if not self.path.is_file():
            raise ConfigError(
                f"Alembic config {self.path} does not exist (DBSWAP_ALEMBIC_CONFIG is "
                "relative to the working directory)"
            )
        self._config: Any = Config(str(self.path))
        self._scripts: Any = ScriptDirectory
        self.code_heads()  # fail at load, not at the first switch

    def code_heads(self) -> tuple[str, ...]:
        try:
            script = self._scripts.from_config(self._config)
            return tuple(sorted(script.get_heads()))
        except Exception as exc:  # Alembic raises many kinds; all mean a broken config
            raise ConfigError(
                f"cannot read the Alembic migrations of {self.path}: {type(exc).__name__}: {exc}"
            ) from None

    def database_heads(self, conn: Connection) -> tuple[str, ...]:
        from alembic.runtime.migration import MigrationContext

        return tuple(sorted(MigrationContext.configure(conn).get_current_heads()))
