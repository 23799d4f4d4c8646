"""The demo app behind ``dbswap demo``: a DJ's site whose database is switched live.

::

    from dbswap.demo import create_app
    app = create_app(board, admin_password="...")   # a FastAPI app; run it with uvicorn

Everything is imported on first use, so that registering the ``demo`` command
(``dbswap --help``) imports neither FastAPI nor the ORM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import create_app, demo_board
    from ._data import SEED_EVENTS, SEED_TRACKS

__all__ = ["SEED_EVENTS", "SEED_TRACKS", "create_app", "demo_board"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "demo_board"):
        from . import _app

        return getattr(_app, name)
    if name in ("SEED_EVENTS", "SEED_TRACKS"):
        from . import _data

        return getattr(_data, name)
    raise AttributeError(f"module 'dbswap.demo' has no attribute {name!r}")
