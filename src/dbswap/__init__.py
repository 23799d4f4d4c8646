"""dbswap: switch a running app between databases without a restart."""

from __future__ import annotations

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
from ._sessions import PinnedSession, RoutingEngine
from ._state import State
from ._switchboard import Switchboard, SwitchResult
from ._targets import Target

__version__ = "0.1.0"

__all__ = [
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
