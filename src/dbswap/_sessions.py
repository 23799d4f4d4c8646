"""Pinned sessions and the routing engine: the hot path of dbswap.

A pinned Session takes the board's active target when it is created and
returns that target's engine from ``get_bind()`` until it is closed, so one
transaction never straddles two databases. After ``close()`` the next use
takes the target active at that moment.

``board.engine`` is a stable object for Core code: each ``connect()`` or
``begin()`` goes to the target active at that moment, and an open connection
stays where it began.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from time import monotonic
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from ._state import Signal

if TYPE_CHECKING:
    from ._switchboard import Switchboard

Pin = tuple[str, bool, Engine]  # (target, read-only, engine)
FastPin = tuple[Signal, bytes | bytearray, float, Pin]  # see Switchboard._set_fast


class PinnedSession(Session):
    """A Session bound to the target that was active when it was created.

    ``board.sessionmaker()`` and ``board.session_class`` give a subclass tied
    to a board; use those rather than this class directly. An explicit
    ``bind=`` or ``binds=`` is honoured as in any SQLAlchemy Session.
    """

    _dbswap_board: ClassVar[Switchboard]
    _dbswap_async: ClassVar[bool] = False
    _dbswap_fast: ClassVar[FastPin | None] = None
    # Defaults on the class: a pinned session writes only what pinning sets.
    _dbswap_explicit = False
    _dbswap_engine: Engine | None = None
    dbswap_target: str | None = None
    dbswap_read_only = False

    def __init__(self, bind: Any = None, **kw: Any) -> None:
        if bind is not None and isinstance(bind, RoutingEngine):
            bind = None  # board.engine means "follow the board": that is what pinning does
        if bind is None and not kw.get("binds"):
            # The hot path, inline (every call here costs): the board's fast pin when fresh.
            fast = self._dbswap_fast
            if fast is not None and fast[0][:8] == fast[1] and monotonic() < fast[2]:
                self.dbswap_target, self.dbswap_read_only, self._dbswap_engine = fast[3]
            else:
                self.dbswap_target, self.dbswap_read_only, self._dbswap_engine = (
                    self._dbswap_board._pin(self._dbswap_async)
                )
            super().__init__(**kw)
        else:
            super().__init__(bind=bind, **kw)
            self._dbswap_explicit = True

    def _dbswap_pin(self) -> Engine:
        name, read_only, engine = self._dbswap_board._pin(self._dbswap_async)
        self.dbswap_target, self.dbswap_read_only, self._dbswap_engine = name, read_only, engine
        return engine

    def get_bind(
        self, mapper: Any = None, *, clause: Any = None, bind: Any = None, **kw: Any
    ) -> Any:
        if bind is None and not self._dbswap_explicit:
            return self._dbswap_engine or self._dbswap_pin()
        return super().get_bind(mapper, clause=clause, bind=bind, **kw)

    def close(self) -> None:
        super().close()
        self._dbswap_engine = None  # the next transaction may follow a switch

    def reset(self) -> None:
        super().reset()
        self._dbswap_engine = None


def pinned_session_class(board: Switchboard, *, is_async: bool = False) -> type[PinnedSession]:
    """A PinnedSession subclass tied to ``board`` (what sessionmakers are given)."""
    name = "AsyncPinnedSession" if is_async else "PinnedSession"
    attrs = {"_dbswap_board": board, "_dbswap_async": is_async, "__module__": __name__}
    return type(name, (PinnedSession,), attrs)


_NOT_A_BIND = (
    "board.engine routes each connect() to the active target, so it cannot be a "
    "Session's bind (every statement would open a new connection); use "
    "board.sessionmaker() or board.session_class instead"
)


class RoutingEngine:
    """``board.engine``: import it once; every ``connect()`` follows the board.

    Attributes other than ``connect``/``begin`` (``dialect``, ``url``, ...)
    are those of the active target's engine.
    """

    def __init__(self, board: Switchboard) -> None:
        self._board = board
        self._fast: FastPin | None = None  # set by the board: see Switchboard._set_fast

    @property
    def current(self) -> Engine:
        """The real Engine of the target active right now."""
        return self._board._pin(False)[2]

    def connect(self) -> Connection:
        fast = self._fast
        if fast is not None and fast[0][:8] == fast[1] and monotonic() < fast[2]:
            return fast[3][2].connect()
        return self._board._pin(False)[2].connect()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in a transaction, committed at the end (as ``Engine.begin()``)."""
        with self.connect() as conn, conn.begin():
            yield conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current, name)

    def __hash__(self) -> int:
        # SQLAlchemy's Session keys connections by bind; failing here is the clear error.
        raise TypeError(_NOT_A_BIND)

    def __eq__(self, other: object) -> bool:
        return other is self

    def __repr__(self) -> str:
        return f"<RoutingEngine of {self._board!r}>"
