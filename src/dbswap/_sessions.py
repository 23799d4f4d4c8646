"""Pinned sessions: the hot path of dbswap's ORM use.

A pinned Session takes the board's active target when it is created and
returns that target's engine from ``get_bind()`` until it is closed, so one
transaction never straddles two databases. After ``close()`` the next use
takes the target active at that moment. An app's own Session class (SQLModel's,
Flask-SQLAlchemy's, a subclass of its own) is combined with the pinning class,
pinning first.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ._routing import FastPin, Pin, RoutingEngine, fresh

if TYPE_CHECKING:
    from ._switchboard import Switchboard


class SessionCounter(Protocol):
    """Called with the target of every pin while metrics are on (see ``dbswap.metrics``)."""

    def __call__(self, target: str, /) -> None: ...


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
    # Metrics on: called with the target of every pin (dbswap.metrics sets it).
    _dbswap_count: ClassVar[SessionCounter | None] = None
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
            if self._dbswap_count is not None:
                self._dbswap_count(pinned[0])
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
        if self._dbswap_count is not None:
            self._dbswap_count(pinned[0])
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
        """The arguments of a pinned session, or None if they name a bind of their own
        (or if the session class has an ``__init__`` of its own, which must run)."""
        if not _plain_init(self.class_):
            return None
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
        if cls._dbswap_count is not None:  # metrics: the one check they add here
            cls._dbswap_count(fast[3][0])
        return session


def _plain_init(cls: type[Session]) -> bool:
    """Whether building ``cls`` is PinnedSession's pinning plus ``Session.__init__`` alone."""
    return all(
        "__init__" not in vars(klass)
        for klass in cls.__mro__
        if issubclass(klass, Session) and klass not in (PinnedSession, Session)
    )


def pinned_session_class(board: Switchboard, *, is_async: bool = False) -> type[PinnedSession]:
    """A PinnedSession subclass tied to ``board`` (what sessionmakers are given)."""
    name = "AsyncPinnedSession" if is_async else "PinnedSession"
    attrs = {
        "_dbswap_board": board,
        "_dbswap_async": is_async,
        "_dbswap_count": board._observer.count_session,
        "__module__": __name__,
    }
    return type(name, (PinnedSession,), attrs)


def combined_session_class(
    pinned: type[PinnedSession], own: type[Session] | None
) -> type[PinnedSession]:
    """A class that is both the board's pinned class and the app's own ``own``, pinning first.

    So ``board.sessionmaker(class_=sqlmodel.Session)`` gives pinned sessions
    that still have SQLModel's ``exec()``.
    """
    if own is None or issubclass(pinned, own):
        return pinned
    if not (isinstance(own, type) and issubclass(own, Session)):
        raise TypeError(
            f"a session class must be a subclass of sqlalchemy.orm.Session, not {own!r}"
        )
    if issubclass(own, pinned):
        return own
    attrs = {"__module__": __name__, "__qualname__": f"Pinned{own.__qualname__}"}
    return type(f"Pinned{own.__name__}", (pinned, own), attrs)
