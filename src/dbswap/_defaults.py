"""Seed-parity functions on a default Switchboard built lazily from the environment.

This module is the one home of global state. Tests (and apps that build
their board themselves) use ``set_default_board()`` and ``reset_default_board()``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from ._switchboard import Switchboard, SwitchResult

if TYPE_CHECKING:
    from ._sessions import PinnedSession

_board: Switchboard | None = None
_lock = threading.Lock()


def default_board() -> Switchboard:
    """The process's default board, built from the environment on first use."""
    global _board
    board = _board
    if board is None:
        with _lock:
            if _board is None:
                _board = Switchboard.from_env()
            board = _board
    return board


def set_default_board(board: Switchboard | None) -> Switchboard | None:
    """Install ``board`` as the default (None: build from the environment again).

    Returns the board it replaces, so a caller can put it back.
    """
    global _board
    with _lock:
        previous, _board = _board, board
    return previous


def reset_default_board() -> None:
    """Forget the default board, closing its pooled connections (for tests)."""
    global _board
    with _lock:
        board, _board = _board, None
    if board is not None:
        board.dispose()


def init() -> Switchboard:
    """At start-up: load the persisted target and create its engine (no query yet)."""
    board = default_board()
    board.engine_for(board.active)
    return board


def get_active_target() -> str:
    return default_board().active


def set_active_target(target: str, user_id: str | None = None) -> SwitchResult:
    """Switch the default board (health-checked, locked, audited)."""
    return default_board().use(target, user=user_id)


def get_database_url_for_target(target: str | None = None) -> str:
    """The real URL of ``target`` (the active one by default); never log it."""
    return default_board().url_for(target)


def get_blob_token_for_target(target: str | None = None) -> str | None:
    """The target's ``BLOB_READ_WRITE_TOKEN_<NAME>`` (the active target by default)."""
    return default_board().setting("BLOB_READ_WRITE_TOKEN", target)


def get_engine() -> Engine:
    """The real Engine of the target active right now."""
    return default_board().engine.current


def get_session() -> PinnedSession:
    """A new Session pinned to the active target; close it when done."""
    return default_board().session_class()
