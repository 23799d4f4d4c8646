"""dbswap: switch a running app between databases without a restart.

Every public name is imported on first use: the CLI, the pytest plugin and
``import dbswap`` load only what they touch (the ORM and asyncio only with
sessions that need them).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._changes import Change
    from ._defaults import (
        default_board,
        get_active_target,
        get_blob_token_for_target,
        get_database_url_for_target,
        get_engine,
        get_session,
        init,
        reset_default_board,
        set_active_target,
        set_default_board,
    )
    from ._errors import (
        ConfigError,
        DBSwapError,
        DrainTimeout,
        ReadOnlyTarget,
        SchemaMismatch,
        SwitchLocked,
        TargetUnavailable,
        UnknownTarget,
    )
    from ._health import Health
    from ._routing import RoutingEngine
    from ._sessions import PinnedSession
    from ._state import State
    from ._switchboard import Switchboard, SwitchResult
    from ._targets import Target

__version__ = "0.1.0"

_HOMES = {
    "Change": "._changes",
    "ConfigError": "._errors",
    "DBSwapError": "._errors",
    "DrainTimeout": "._errors",
    "Health": "._health",
    "PinnedSession": "._sessions",
    "ReadOnlyTarget": "._errors",
    "RoutingEngine": "._routing",
    "SchemaMismatch": "._errors",
    "State": "._state",
    "SwitchLocked": "._errors",
    "SwitchResult": "._switchboard",
    "Switchboard": "._switchboard",
    "Target": "._targets",
    "TargetUnavailable": "._errors",
    "UnknownTarget": "._errors",
    "default_board": "._defaults",
    "get_active_target": "._defaults",
    "get_blob_token_for_target": "._defaults",
    "get_database_url_for_target": "._defaults",
    "get_engine": "._defaults",
    "get_session": "._defaults",
    "init": "._defaults",
    "reset_default_board": "._defaults",
    "set_active_target": "._defaults",
    "set_default_board": "._defaults",
}

__all__ = [
    "Change",
    "ConfigError",
    "DBSwapError",
    "DrainTimeout",
    "Health",
    "PinnedSession",
    "ReadOnlyTarget",
    "RoutingEngine",
    "SchemaMismatch",
    "State",
    "SwitchLocked",
    "SwitchResult",
    "Switchboard",
    "Target",
    "TargetUnavailable",
    "UnknownTarget",
    "__version__",
    "default_board",
    "get_active_target",
    "get_blob_token_for_target",
    "get_database_url_for_target",
    "get_engine",
    "get_session",
    "init",
    "reset_default_board",
    "set_active_target",
    "set_default_board",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'dbswap' has no attribute {name!r}")
    value = getattr(import_module(home, __name__), name)
    globals()[name] = value  # once found, a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
