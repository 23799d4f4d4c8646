"""The errors only the Django adapter raises; both are ``DBSwapError`` leaves."""

from __future__ import annotations

from .._errors import DBSwapError, SchemaMismatch


class MigrationsNotApplied(SchemaMismatch):
    """A target lacks migrations of the project's graph; nothing was switched."""

    def __init__(
        self, target: str, alias: str, database: tuple[str, ...], code: tuple[str, ...]
    ) -> None:
        self.target = target
        self.database_revisions = database
        self.code_revisions = code
        missing = sorted(set(code) - set(database)) or list(code)
        DBSwapError.__init__(
            self,
            f"target {target!r} lacks migration(s) {', '.join(missing)}; run "
            f"`manage.py migrate --database={alias}`, or switch anyway with "
            'ignore_schema=True (CLI: --ignore-schema, API: "ignoreSchema": true)',
        )


class UnroutedQuery(DBSwapError, RuntimeError):
    """Code bypassed the router while the request is pinned to another database."""
