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

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from ._state import Signal

if TYPE_CHECKING:
    from ._switchboard import Switchboard

Pin = tuple[str, bool, Engine]  # (target, read-only, engine)
FastPin = tuple[Signal, int, float, Pin]  # see Switchboard._set_fast


def fresh(fast: FastPin | None) -> Pin | None:
    """What a fast pin pins to, while the counter it was taken at is unchanged."""
    return fast[3] if fast is not None and fast[0][0] == fast[1] else None


class PinnedSession(Session):
    """A Session bound to the target that was active when it was created.

    ``board.sessionmaker()`` and ``board.session_class`` give a subclass tied
    to a board; use those rather than this class directly. An explicit
    ``bind=`` or ``binds=`` is honoured as in any SQLAlchemy Session.

    The pinned engine is the session's ``bind`` until ``close()``; the next
    transaction then pins again.
    """

    _dbswap_board: ClassVar[Switchboard]
    _dbswap_async: ClassVar[bool] = False
    _dbswap_fast: ClassVar[FastPin | None] = None
    # Defaults on the class: a pinned session writes only what pinning sets.
    _dbswap_explicit = False
    _dbswap_pinned: Pin | None = None  # the latest pin, kept after close() for dbswap_target

    def __init__(self, bind: Any = None, **kw: Any) -> None:
        if bind is not None and isinstance(bind, RoutingEngine):
            bind = None  # board.engine means "follow the board": that is what pinning does
        if bind is None and not kw.get("binds"):
            pinned = fresh(self._dbswap_fast) or self._dbswap_board._pin(self._dbswap_async)
            super().__init__(bind=pinned[2], **kw)
            self._dbswap_pinned = pinned
        else:
            super().__init__(bind=bind, **kw)
            self._dbswap_explicit = True

    @property
    def dbswap_target(self) -> str | None:
        """The target this session is (or was last) pinned to; None with an explicit bind."""
        return self._dbswap_pinned[0] if self._dbswap_pinned is not None else None

    @property
    def dbswap_read_only(self) -> bool:
        """Whether that pin was to the target in read-only mode."""
        return self._dbswap_pinned is not None and self._dbswap_pinned[1]

    def _dbswap_pin(self) -> Engine:
        pinned = fresh(self._dbswap_fast) or self._dbswap_board._pin(self._dbswap_async)
        self._dbswap_pinned, self.bind = pinned, pinned[2]
        return pinned[2]

    def get_bind(
        self, mapper: Any = None, *, clause: Any = None, bind: Any = None, **kw: Any
    ) -> Any:
        if bind is None and not self._dbswap_explicit:
            return self.bind or self._dbswap_pin()
        return super().get_bind(mapper, clause=clause, bind=bind, **kw)

    def close(self) -> None:
        super().close()
        if not self._dbswap_explicit:
            self.bind = None  # the next transaction may follow a switch

    def reset(self) -> None:
        super().reset()
        if not self._dbswap_explicit:
            self.bind = None


_SESSION_DEFAULTS = {  # sessionmaker passes some of these anyway
    name: parameter.default
    for name, parameter in inspect.signature(Session.__init__).parameters.items()
    if parameter.default is not inspect.Parameter.empty and name != "bind"
}


class PinningSessionmaker(sessionmaker[PinnedSession]):
    """``board.sessionmaker()``: a real sessionmaker that pins in ``__call__``.

    While the board's fast pin is fresh, a session is built with SQLAlchemy's
    own ``Session.__init__``, the pinned engine as its bind and only the
    arguments that differ from Session's defaults: ``PinnedSession.__init__``
    and the keyword arguments sessionmaker always passes would cost a session
    on SQLite more than the whole 1 % budget. Everything else (arguments, a
    stale pin, an explicit bind) takes the usual path through
    ``PinnedSession.__init__``.
    """

    def __init__(self, class_: type[PinnedSession], **kw: Any) -> None:
        super().__init__(class_=class_, **kw)
        self._pinning_kw = self._without_routing_bind()

    def configure(self, **new_kw: Any) -> None:
        super().configure(**new_kw)
        self._pinning_kw = self._without_routing_bind()

    def _without_routing_bind(self) -> dict[str, Any] | None:
        """The arguments of a pinned session, or None if they name a bind of their own."""
        kw = {
            k: v
            for k, v in self.kw.items()
            if k not in _SESSION_DEFAULTS or v is not _SESSION_DEFAULTS[k]
        }
        bind = kw.pop("bind", None)
        if (bind is not None and not isinstance(bind, RoutingEngine)) or kw.get("binds"):
            return None
        return kw

    def __call__(self, **local_kw: Any) -> PinnedSession:
        cls, kw = self.class_, self._pinning_kw
        fast = cls._dbswap_fast  # fresh(), inline: this is the hot path of every session
        if local_kw or kw is None or fast is None or fast[0][0] != fast[1]:
            return super().__call__(**local_kw)
        session: PinnedSession = object.__new__(cls)
        Session.__init__(session, fast[3][2], **kw)
        session._dbswap_pinned = fast[3]
        return session


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
