"""The one error tree of dbswap.

::

    DBSwapError
    ├── ConfigError        (ValueError)       the environment or arguments are wrong
    ├── UnknownTarget      (LookupError)      no target has that name
    ├── TargetUnavailable  (ConnectionError)  the target failed its health check
    └── SwitchLocked       (PermissionError)  switching is not allowed right now

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
        super().__init__(f"unknown target {target!r}; known targets: {choices}")

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

    def __init__(self, reason: str, target: str | None = None) -> None:
        self.reason = reason
        self.target = target
        super().__init__(reason)
