"""``board.engine``: a stable object for Core code, and the pins sessions check inline.

Each ``connect()`` or ``begin()`` goes to the target active at that moment, and
an open connection stays where it began. This module needs only SQLAlchemy's
Core (no ORM, no asyncio), so the CLI can load a board without them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine

from ._state import Signal

if TYPE_CHECKING:
    from ._switchboard import Switchboard

Pin = tuple[str, bool, Engine]  # (target, read-only, engine)
FastPin = tuple[Signal, int, float, Pin]  # see Switchboard._set_fast


def fresh(fast: FastPin | None) -> Pin | None:
    """What a fast pin pins to, while the counter it was taken at is unchanged."""
    return fast[3] if fast is not None and fast[0][0] == fast[1] else None


_NOT_A_BIND = (
    "board.engine routes each connect() to the active target, so it cannot be a "
    "Session's bind (every statement would open a new connection); use "
    "board.sessionmaker() or board.session_class instead"
)


class RoutingEngine:
    """``board.engine``: import it once; every ``connect()`` follows the board.

    Engine's other attributes (``dialect``, ``url``, ``pool``, ``dispose()``,
    ...) are those of the active target's engine; ``current`` is that engine.
    """

    def __init__(self, board: Switchboard) -> None:
        self._board = board
        self._fast: FastPin | None = None  # set by the board: see Switchboard._set_fast

    @property
    def current(self) -> Engine:
        """The real Engine of the target active right now."""
        return (fresh(self._fast) or self._board._pin(False))[2]

    def connect(self) -> Connection:
        fast = self._fast  # fresh(), inline: this is the hot path of Core code
        if fast is not None and fast[0][0] == fast[1]:
            return fast[3][2].connect()
        return self._board._pin(False)[2].connect()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in a transaction, committed at the end (as ``Engine.begin()``)."""
        with self.connect() as conn, conn.begin():
            yield conn

    if TYPE_CHECKING:  # for type checkers only: the forwarded attributes are set below

        def __getattr__(self, name: str) -> Any: ...

    def __hash__(self) -> int:
        # SQLAlchemy's Session keys connections by bind; failing here is the clear error.
        raise TypeError(_NOT_A_BIND)

    def __eq__(self, other: object) -> bool:
        return other is self

    def __repr__(self) -> str:
        return f"<RoutingEngine of {self._board!r}>"


def _forwarded(name: str) -> property:
    def get(self: RoutingEngine) -> Any:
        return getattr(self.current, name)

    return property(get, doc=f"The active engine's ``{name}``.")


# Explicit properties rather than __getattr__: a class with __getattr__ defeats CPython's
# attribute caches, which made every board.engine.connect() ~0.5 % slower.
_ENGINE_INSTANCE_ATTRIBUTES = ("dialect", "url", "pool", "logger", "hide_parameters")
for _name in (*_ENGINE_INSTANCE_ATTRIBUTES, *dir(Engine)):
    if not _name.startswith("__") and _name not in vars(RoutingEngine):
        setattr(RoutingEngine, _name, _forwarded(_name))
del _name
