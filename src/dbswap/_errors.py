"""The one error tree of dbswap.

::

    DBSwapError
    ├── ConfigError        (ValueError)       the environment or arguments are wrong
    ├── UnknownTarget      (LookupError)      no target has that name
    ├── TargetUnavailable  (ConnectionError)  the target failed its health check
    ├── SwitchLocked       (PermissionError)  switching is not allowed right now
    ├── ReadOnlyTarget     (PermissionError)  a write reached a target switched read-only
    ├── DrainTimeout       (TimeoutError)     in-flight sessions did not finish; switch aborted
    └── SchemaMismatch                        the target's migrations differ from the code's

Every message is already masked: it never carries a password or a token.
"""

from __future__ import annotations

from collections.abc import Iterable


class DBSwapError(Exception):
    """Root of every error dbswap raises on purpose."""


class ConfigError(DBSwapError, ValueError):
    """The configuration (environment, .env files, arguments) is unusable."""


class UnknownTarget(DBSwapError, LookupError):
    """No target has the requested name."""

    def __init__(self, target: str, known: Iterable[str]) -> None:
        self.target = target
        self.known = tuple(sorted(known))
        choices = ", ".join(self.known) or "none (set DATABASE_URL_<NAME> variables)"
        # repr() escapes what a terminal or a page could not show; a long name is cut.
        shown = repr(target[:100]) + ("..." if len(target) > 100 else "")
        from difflib import get_close_matches  # (only when a name is wrong)

        close = get_close_matches(target[:100], self.known, n=1, cutoff=0.7)
        guess = f"; did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown target {shown}; known targets: {choices}{guess}")

    def __str__(self) -> str:  # LookupError would quote the message like a key
        return str(self.args[0])


class TargetUnavailable(DBSwapError, ConnectionError):
    """The target did not pass its health check; nothing was switched."""

    def __init__(self, target: str, reason: str) -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"target {target!r} is unavailable: {reason}")


class SwitchLocked(DBSwapError, PermissionError):
    """Switching is refused: production lock, or another switch holds the lock."""

    def __init__(self, reason: str, target: str | None = None, *, locked: bool = False) -> None:
        self.reason = reason
        self.target = target
        self.locked = locked  # True: a production lock (lasting), not a busy lock (retry)
        super().__init__(reason)


class ReadOnlyTarget(DBSwapError, PermissionError):
    """A write was refused by the database server: the session is read-only.

    The driver's own error is chained (``__cause__``).
    """

    def __init__(self, target: str) -> None:
        self.target = target
        super().__init__(
            f"target {target!r} is read-only: the database refused this write; to allow "
            f"writes, switch with `dbswap use {target} --writable` "
            f"(or board.use({target!r}, read_only=False))"
        )


class SchemaMismatch(DBSwapError):
    """The target's Alembic revision is not the code's head; nothing was switched."""

    def __init__(self, target: str, database: tuple[str, ...], code: tuple[str, ...]) -> None:
        self.target = target
        self.database_revisions = database
        self.code_revisions = code
        found = ", ".join(database) if database else "none (no alembic_version table)"
        super().__init__(
            f"target {target!r} has schema revision {found} but the code expects "
            f"{', '.join(code) or 'no revision'}; upgrade that database "
            f"(alembic upgrade head against it), or switch anyway with ignore_schema=True "
            f"(CLI: --ignore-schema)"
        )


class DrainTimeout(DBSwapError, TimeoutError):
    """A drained switch was aborted: sessions on the old target did not finish in time."""

    def __init__(self, target: str, in_flight: int, timeout: float) -> None:
        self.target = target
        self.in_flight = in_flight
        super().__init__(
            f"switch to {target!r} aborted: {in_flight} session(s) still in flight on the "
            f"current target after {timeout:g} s of draining; traffic continues there. "
            "Retry, raise drain_timeout, or switch without drain"
        )
