"""The Switchboard: owns the targets, the engine cache, the state store and the audit log.

``use()`` is the one way to switch: validate -> lock -> health check ->
commit -> audit -> on-switch hooks -> retire the previous target's
connections. A refused or failed switch changes nothing and is audited too.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from . import _testguard
from ._audit import AuditLog
from ._changes import Change, ChangeCallback, ChangeCallbacks
from ._engines import EngineCache, check_read_only_possible, is_async_only
from ._errors import (
    ConfigError,
    DBSwapError,
    DrainTimeout,
    SwitchLocked,
    TargetUnavailable,
    UnknownTarget,
)
from ._expiry import expiry
from ._followers import Acknowledgement, Follower, Following, followers_of, wait_for
from ._health import Health, check_target, check_target_async, check_target_on_loop
from ._masking import mask_text
from ._observe import (
    ObservedAuditLog,
    Observer,
    configure_from_env,
    observed_check,
    observed_switch,
)
from ._pinning import PIN_VARIABLE, process_pin
from ._published import publish
from ._routing import FastPin, RoutingEngine
from ._schema import AlembicGuard, SchemaGuard
from ._state import FileStateStore, State, StateStore, StateUnreadable, utc_now
from ._targets import (
    Target,
    discover_targets,
    normalize_url,
    read_environment,
    validate_targets,
)
from ._timebox import Request, Timebox, TimeLimit, parse_duration

if TYPE_CHECKING:  # the ORM and asyncio are imported only by the code that uses them
    from prometheus_client import CollectorRegistry
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
    from sqlalchemy.orm import Session

    from ._sessions import PinnedSession, PinningSessionmaker
    from .metrics import BoardMetrics

logger = logging.getLogger("dbswap")

PRODUCTION = "production"
LOCK_TIMEOUT = 10.0  # seconds a switch waits for another switch to finish
MAX_WAIT = 600.0  # seconds use(wait=...) may wait for the followers
# Seconds a switched-away target keeps its idle connections: a switch back within it finds
# them warm (a fleet switching back and forth keeps its capacity); then they close.
RETIRE_GRACE = 5.0
_TRUE = {"1", "true", "yes", "on"}

SwitchCallback = Callable[["SwitchResult"], object]


@dataclass(frozen=True)
class SwitchResult:
    """What ``use()`` did. ``changed`` is False when the target was already active."""

    previous: str
    target: str
    generation: int
    duration: float
    changed: bool = True
    user: str | None = None
    read_only: bool = False
    expires_at: str | None = None  # a time-boxed switch: when it ends (UTC) ...
    return_to: str | None = None  # ... and where it returns (see _timebox)
    # use(wait=...): which live processes serve the new generation (see _followers)
    acknowledgement: Acknowledgement | None = None


class Switchboard:
    """Routes sessions to the active target and switches it without a restart.

    ``targets`` maps names to URLs (or Target objects). Everything else has a
    default; ``Switchboard.from_env()`` builds one from the environment.
    ``engine_options`` go to every ``create_engine()`` (``pool_pre_ping``,
    ``pool_size``, ``echo``, ...); ``target_options`` add to or override them
    for one target: ``{"production": {"pool_size": 20}}``.
    """

    def __init__(
        self,
        targets: Mapping[str, str | Target] | Iterable[Target],
        *,
        runtime_dir: str | os.PathLike[str] = ".runtime",
        default_target: str = "local",
        production_lock: bool = False,
        allow_remote_local: bool = False,
        store: StateStore | None = None,
        engine_options: Mapping[str, Any] | None = None,
        target_options: Mapping[str, Mapping[str, Any]] | None = None,
        read_only_targets: Iterable[str] = (),
        alembic_config: str | os.PathLike[str] | None = None,
        retire_grace: float = RETIRE_GRACE,
        max_production: timedelta | float | None = None,
    ) -> None:
        self._targets = _as_targets(targets)
        if not self._targets:
            raise ConfigError(
                "no database targets: set DATABASE_URL_LOCAL and DATABASE_URL_PRODUCTION "
                "(one DATABASE_URL_<NAME> per target)"
            )
        validate_targets(self._targets, allow_remote_local)
        self.default_target = default_target.strip().lower()
        if self.default_target not in self._targets:
            raise ConfigError(
                f"default target {self.default_target!r} is not configured; set "
                f"DBSWAP_DEFAULT_TARGET to one of: {', '.join(self._targets)}"
            )
        self.production_lock = production_lock
        if production_lock and PRODUCTION not in self._targets:
            raise ConfigError(
                "DBSWAP_ENV=production needs a 'production' target: set DATABASE_URL_PRODUCTION"
            )
        self.process_pin = process_pin()
        if self.process_pin is not None:
            if self.process_pin not in self._targets:
                raise ConfigError(
                    f"{PIN_VARIABLE}={self.process_pin!r} (set by dbswap run) is not a target "
                    f"of this app; known targets: {', '.join(self._targets)}"
                )
            if production_lock and self.process_pin != PRODUCTION:
                raise ConfigError(
                    f"DBSWAP_ENV=production locks this process to 'production'; it cannot be "
                    f"pinned to {self.process_pin!r}"
                )
        # The target this process uses whatever the state says: the lock's, or dbswap run's.
        self._fixed = PRODUCTION if production_lock else self.process_pin
        # Open ``pinned()`` blocks: while there are any, sessions take no fast pin.
        self._block_pin: ContextVar[tuple[str, bool] | None] = ContextVar(
            "dbswap_block_pin", default=None
        )  # (target, read-only)
        self._open_blocks = 0
        self._blocks_lock = threading.Lock()
        # Under a test run, a board off the tests' own runtime dirs is kept off the shared
        # state and refuses production (see _testguard), however it was built.
        guard = _testguard.current()
        own_dir = guard.replacement(Path(runtime_dir).absolute()) if guard is not None else None
        self._forbidden = frozenset[str]()
        if guard is not None and own_dir is not None:
            runtime_dir = own_dir
            if store is not None:
                store.close()  # it names the shared state
                store = None
            self._forbidden = guard.forbidden() & set(self._targets)
            if production_lock and PRODUCTION in self._forbidden:
                raise ConfigError(_testguard.refusal(PRODUCTION) + " (DBSWAP_ENV=production)")
        unknown_options = sorted(set(target_options or ()) - set(self._targets))
        if unknown_options:
            raise ConfigError(
                f"target_options names {', '.join(map(repr, unknown_options))}, not a target; "
                f"known targets: {', '.join(self._targets)}"
            )
        self.read_only_targets = frozenset(n.strip().lower() for n in read_only_targets)
        unknown = sorted(self.read_only_targets - set(self._targets))
        if unknown:
            raise ConfigError(
                f"DBSWAP_READONLY names {', '.join(map(repr, unknown))}, which "
                f"{'is not a target' if len(unknown) == 1 else 'are not targets'}; "
                f"known targets: {', '.join(self._targets)}"
            )
        for name in sorted(self.read_only_targets):
            try:
                check_read_only_possible(self._targets[name])
            except ConfigError as exc:
                raise ConfigError(f"DBSWAP_READONLY: {exc}") from None
        self.schema_guard: SchemaGuard | None = (
            AlembicGuard(alembic_config) if alembic_config else None
        )
        self.runtime_dir = Path(runtime_dir).absolute()
        self._store: StateStore = store or FileStateStore(self.runtime_dir)
        if production_lock:
            try:  # every process and shell sharing the state must see the lock
                self._store.announce_lock("DBSWAP_ENV=production")
            except OSError as exc:
                logger.error(
                    "cannot announce the production lock in %s (%s): other processes sharing "
                    "it could switch the state this process ignores",
                    self._store.describe(),
                    exc.strerror,
                )
        self._secrets = tuple(s for t in self._targets.values() for s in t.secrets)
        self._observer = Observer()  # log records, spans and metrics of switches (_observe)
        self._audit = ObservedAuditLog(
            self.runtime_dir, self._secrets, self._store, observer=self._observer
        )
        if hasattr(self._store, "on_restored"):  # Redis: writing back a state it lost is audited
            self._store.on_restored = self._audit.restored
        if not retire_grace >= 0:
            raise ConfigError(f"retire_grace must be >= 0 seconds, not {retire_grace!r}")
        self._engines = EngineCache(engine_options, retire_grace, target_options)
        self._engines.on_new_epoch = self._drop_fast
        self._callbacks: list[SwitchCallback] = []
        self._changes = ChangeCallbacks(self.mask)  # on_change: every process that follows
        self._following: Following | None = None  # this process's record and follower thread
        # Switches that end on their own; max_production: every switch to production does.
        self._timebox = Timebox(self, max_production)
        # (state last seen, target it resolved to, read-only?): one tuple, swapped atomically.
        self._seen: tuple[State | object | None, str, bool] = (
            _NOTHING_SEEN,
            self.default_target,
            self.default_target in self.read_only_targets,
        )
        self._observe_lock = threading.Lock()
        self._warned_unknown: str | None = None
        # Set while a drained switch pauses new sessions (None: one cheap check on the hot path).
        self._gate: threading.Event | None = None
        self._gate_timeout = 0.0
        self.engine = RoutingEngine(self)
        # The pinned Session classes (sync, asyncio), made on first use: the ORM is not
        # imported by code that never opens a session (the CLI).
        self._session_classes: list[type[PinnedSession] | None] = [None, None]
        self._variants: dict[tuple[type[Session], bool], type[PinnedSession]] = {}
        self._classes_lock = threading.Lock()

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        *,
        sqlite_dir: str | os.PathLike[str] | None = None,
        **overrides: Any,
    ) -> Switchboard:
        """Build a board from ``.env``, ``.env.local`` and the environment (later wins).

        Relative SQLite paths resolve against ``sqlite_dir`` if given (e.g. a Flask
        app's instance folder), else against ``cwd``.
        """
        base = Path(cwd) if cwd is not None else Path.cwd()
        env = read_environment(environ, base)
        state = env.get("DBSWAP_STATE", "file").strip() or "file"
        redis_state = state.startswith(("redis://", "rediss://", "unix://"))
        if not redis_state and state != "file":
            raise ConfigError(
                f"DBSWAP_STATE={mask_text(state)!r} is not supported; use 'file' (the default) "
                "or a redis://, rediss:// or unix:// URL"
            )
        dbswap_env = env.get("DBSWAP_ENV", "").strip().lower()
        options: dict[str, Any] = {
            "runtime_dir": base / (env.get("DBSWAP_RUNTIME_DIR", "").strip() or ".runtime"),
            "default_target": env.get("DBSWAP_DEFAULT_TARGET", "").strip() or "local",
            "production_lock": dbswap_env == PRODUCTION,
            "allow_remote_local": env.get("DBSWAP_ALLOW_REMOTE_LOCAL", "").lower() in _TRUE,
            "read_only_targets": [
                name for name in env.get("DBSWAP_READONLY", "").split(",") if name.strip()
            ],
            "retire_grace": _seconds(env, "DBSWAP_RETIRE_GRACE", RETIRE_GRACE),
            "max_production": (
                parse_duration(env["DBSWAP_MAX_PRODUCTION"], "DBSWAP_MAX_PRODUCTION")
                if env.get("DBSWAP_MAX_PRODUCTION", "").strip()
                else None
            ),
            "alembic_config": (
                base / env["DBSWAP_ALEMBIC_CONFIG"].strip()
                if env.get("DBSWAP_ALEMBIC_CONFIG", "").strip()
                else None
            ),
        }
        options.update(overrides)
        targets = discover_targets(env, base / sqlite_dir if sqlite_dir is not None else base)
        guard = _testguard.current()
        if guard is not None and guard.replacement(Path(options["runtime_dir"]).absolute()):
            redis_state = False  # a test run: the board gets the run's own runtime dir
        if not redis_state or "store" in options:
            board = cls(targets, **options)
        else:
            from ._relay import RelayedStore

            # Last: its threads must not outlive a bad config. One process per host follows
            # Redis and keeps the host's copy of the state in the runtime dir (_relay).
            lease = _seconds(env, "DBSWAP_LOCK_LEASE")  # a production lock's (_redis_notice)
            runtime_dir = Path(options["runtime_dir"]).absolute()
            store = (
                RelayedStore(state, runtime_dir, lock_lease=lease)
                if lease
                else RelayedStore(state, runtime_dir)
            )
            try:
                board = cls(targets, store=store, **options)
            except BaseException:
                store.close()
                raise
        configure_from_env(board, env)  # DBSWAP_METRICS, DBSWAP_TRACING
        return board

    # -- reading -------------------------------------------------------------

    @property
    def targets(self) -> Mapping[str, Target]:
        return self._targets

    @property
    def active(self) -> str:
        """The name of the target sessions created now will use."""
        return self._current()[0]

    @property
    def read_only(self) -> bool:
        """Whether sessions created now are read-only (enforced by the database server)."""
        return self._current()[1]

    def _current(self) -> tuple[str, bool]:
        if self._open_blocks:
            pinned = self._block_pin.get()
            if pinned is not None:
                return pinned
        if self._fixed is not None:
            return self._fixed, self._default_read_only(self._fixed)
        state = self._store.current()
        if state is not None and state.expires_at is not None:
            state = self._timebox.settle(state)  # its time limit ended: return first (once)
        seen_state, seen_name, seen_read_only = self._seen
        if state is seen_state:
            return seen_name, seen_read_only
        return self._observe(state)

    @property
    def state(self) -> State:
        """The committed state (the default target at generation 0 if none yet)."""
        name, read_only = self._current()
        if self.production_lock:
            return State(PRODUCTION, 0, None, "DBSWAP_ENV=production", read_only)
        if name == self.process_pin:
            return State(name, 0, None, f"{PIN_VARIABLE} (dbswap run)", read_only)
        state = self._store.current()
        if state is None or state.target != name:
            return State(name, state.generation if state else 0, read_only=read_only)
        return State(
            state.target,
            state.generation,
            state.switched_at,
            state.switched_by,
            read_only,
            state.expires_at,
            state.return_to,
        )

    @property
    def time_limit(self) -> TimeLimit | None:
        """When the active switch ends on its own and where it returns (None: it does not)."""
        return self._timebox.time_limit(self.state)

    @property
    def lock_reason(self) -> str | None:
        """Why switching is disabled: this process's production lock, or one sharing its state.

        While another process holds it, that process serves ``production``
        whatever the state says, and every switch from anywhere is refused.
        """
        if self.production_lock:
            return "DBSWAP_ENV=production"
        return self._store.lock_holder()

    @property
    def state_problem(self) -> str | None:
        """Why this process could not confirm the shared state lately (None: it could).

        While there is one, this process keeps what it last knew (or the default
        target, if it never read a valid state): ``dbswap status`` says so and exits 1.
        """
        if self._fixed is not None:
            return None  # a fixed target does not depend on the state
        self._store.current()
        return self._store.trouble()

    @property
    def generation(self) -> int:
        return self.state.generation

    def target(self, name: str | None = None) -> Target:
        """The Target called ``name`` (the active one by default)."""
        key = self.active if name is None else name.strip().lower()
        try:
            return self._targets[key]
        except KeyError:
            raise UnknownTarget(name or "", self._targets) from None

    def url_for(self, target: str | None = None) -> str:
        """The real URL of a target (it may hold a password: never log or show it)."""
        return self.target(target).url

    def setting(self, name: str, target: str | None = None) -> str | None:
        """A per-target setting, e.g. ``setting("BLOB_READ_WRITE_TOKEN")`` for the active one."""
        return self.target(target).settings.get(name.upper())

    def history(self, limit: int | None = 20) -> list[dict[str, Any]]:
        """The audit entries, newest first."""
        return self._audit.history(limit)

    def mask(self, message: str) -> str:
        """``message`` with every password and token of this board masked."""
        return mask_text(message, self._secrets)

    def __repr__(self) -> str:
        return (
            f"<Switchboard active={self.active!r} targets={list(self._targets)} "
            f"runtime_dir={str(self.runtime_dir)!r}>"
        )

    # -- the hot path --------------------------------------------------------

    def _pin(self, is_async: bool) -> tuple[str, bool, Engine]:
        """(target, read-only, engine) for a new session.

        The slow path: sessions and ``board.engine`` first try their fast pin
        (see ``_set_fast``), and come here when it is stale or absent.
        """
        if self._following is None and self._fixed is None:
            self.follow()  # a process that opens sessions serves from this state
        if self._gate is not None:
            self._wait_for_gate()
        # A fixed target ignores the state: nothing to watch, every session comes here.
        before = None if self._fixed is not None else self._store.signal()
        stamp = before[0][0] if before is not None else 0  # read before the state
        epoch = self._engines.epoch
        name, read_only = self._current()
        if name in self._forbidden:
            raise ConfigError(_testguard.refusal(name))
        pinned = (name, read_only, self._engines.bind(self._targets[name], is_async, read_only))
        # The deadline after the state: it counts from the stat that state came from.
        signal = self._store.signal() if before is not None else None
        if signal is not None and epoch == self._engines.epoch:
            deadline = self._timebox.pin_deadline(self._seen[0], signal[1])  # within a time limit
            # Under the lock pinned() counts blocks with: a fast pin set while a block is open
            # could hand this pin to a session inside the block (or the block's to everybody).
            with self._blocks_lock:
                blocked = self._open_blocks > 0
                fast = None if deadline is None or blocked else (signal[0], stamp, deadline, pinned)
                self._set_fast(is_async, fast)
            if self._gate is not None or blocked:
                self._drop_fast()  # a drain or a pinned() block began meanwhile
            elif deadline is not None and deadline != math.inf and not expiry.watch(self):
                self._set_fast(is_async, None)  # nothing would expire it: no fast pin
        return pinned

    def _set_fast(self, is_async: bool, fast: FastPin | None) -> None:
        """Give the session class (and, for sync, ``board.engine``) a pin they check inline.

        ``(counter, stamp, deadline, pinned)``: while ``counter[0]`` is still
        ``stamp``, ``pinned`` is what ``_pin`` would return. Checking that is
        one read of shared memory, with no call into the board and no clock:
        the hot path of every session. The deadline is kept by ``_expiry``.
        """
        cls = self._session_classes[is_async]
        if cls is not None:
            cls._dbswap_fast = fast  # every class made from it (class_=...) inherits it
        if not is_async:
            self.engine._fast = fast

    def _drop_fast(self) -> None:
        """Send every new session through ``_pin`` (a drain, new engines, closing)."""
        self._set_fast(False, None)
        self._set_fast(True, None)

    def _expire_fast(self, now: float) -> None:
        """Drop the fast pins whose deadline has passed (from the ``_expiry`` thread)."""
        for is_async in (False, True):
            cls = self._session_classes[is_async]
            fast = cls._dbswap_fast if cls is not None else None
            if not is_async and fast is None:
                fast = self.engine._fast  # the CLI and Core code may have no session class
            if fast is not None and fast[2] <= now:
                self._set_fast(is_async, None)  # racing a fresh pin costs one slow path

    def _observe(self, state: State | None) -> tuple[str, bool]:
        """Resolve a newly seen state to (target, read-only) and follow it."""
        name = self.default_target
        if state is not None:
            if state.target in self._targets:
                name = state.target
            elif self._warned_unknown != state.target:
                self._warned_unknown = state.target
                logger.warning(
                    "the state names target %r, which is not configured; using %r "
                    "until the next switch",
                    state.target,
                    name,
                )
        read_only = self._default_read_only(name)
        if state is not None and state.target == name and state.read_only is not None:
            read_only = state.read_only
        with self._observe_lock:
            seen, previous, previous_read_only = self._seen
            self._seen = (state, name, read_only)
            if previous != name:
                self._engines.activate(name, read_only)
                self._engines.retire(previous)
            elif previous_read_only != read_only:
                self._engines.activate(name, read_only)
                self._engines.release(name, previous_read_only)  # that mode's pool is unused
        if previous != name and seen is not _NOTHING_SEEN:  # not this process's first look
            generation = state.generation if state is not None else 0
            self._changes.run(Change(previous, name, generation, read_only))
        return name, read_only

    def _default_read_only(self, name: str) -> bool:
        return name in self.read_only_targets

    def _wait_for_gate(self) -> None:
        gate = self._gate
        if gate is None:
            return
        asyncio = sys.modules.get("asyncio")  # not imported: no event loop can be running
        try:
            if asyncio is None:
                raise RuntimeError
            asyncio.get_running_loop()
        except RuntimeError:
            gate.wait(self._gate_timeout)  # a thread may block, for a bounded time
        # In an event loop, blocking would stall the very sessions being drained:
        # async code awaits board.ready() before opening a session instead.

    async def ready(self) -> None:
        """In async code: wait (bounded) while a drained switch pauses new sessions."""
        import asyncio

        gate = self._gate
        if gate is None:
            return
        deadline = time.monotonic() + self._gate_timeout
        while not gate.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.002)

    def engine_for(self, target: str | None = None) -> Engine:
        """The real Engine of a target (created on first use, never connected here)."""
        return self._engines.sync(self._usable(target))

    def async_engine_for(self, target: str | None = None) -> AsyncEngine:
        return self._engines.async_(self._usable(target))

    def _usable(self, name: str | None) -> Target:
        target = self.target(name)
        if target.name in self._forbidden:
            raise ConfigError(_testguard.refusal(target.name))
        return target

    @property
    def session_class(self) -> type[PinnedSession]:
        """The Session class whose instances are pinned to the active target."""
        return self._session_class(False)

    def _session_class(self, is_async: bool, own: type[Session] | None = None) -> type[Any]:
        cls = self._session_classes[is_async]
        if cls is None or own is not None:
            from ._sessions import combined_session_class, pinned_session_class

            with self._classes_lock:
                cls = self._session_classes[is_async]
                if cls is None:
                    cls = pinned_session_class(self, is_async=is_async)
                    cls._dbswap_fast = None  # the next session takes a fresh pin
                    self._session_classes[is_async] = cls
                if own is not None:
                    key = (own, is_async)
                    if key not in self._variants:
                        self._variants[key] = combined_session_class(cls, own)
                    cls = self._variants[key]
        return cls

    def sessionmaker(self, class_: type[Session] | None = None, **kw: Any) -> PinningSessionmaker:
        """A real ``sessionmaker`` whose sessions are pinned to the active target.

        ``class_``: the app's own Session class (e.g. ``sqlmodel.Session``);
        its sessions are of a subclass of it that pins.
        """
        from ._sessions import PinningSessionmaker

        return PinningSessionmaker(self._session_class(False, class_), **kw)

    def async_sessionmaker(
        self,
        class_: type[AsyncSession] | None = None,
        *,
        sync_session_class: type[Session] | None = None,
        **kw: Any,
    ) -> async_sessionmaker[AsyncSession]:
        """A real ``async_sessionmaker`` whose sessions are pinned to the active target.

        ``class_``: the app's own AsyncSession class (e.g. SQLModel's); its
        sessions' ``sync_session`` is of a subclass of ``sync_session_class``
        (default: ``class_.sync_session_class``) that pins.
        """
        from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

        async_class = class_ if class_ is not None else AsyncSession
        own = sync_session_class or getattr(async_class, "sync_session_class", None)
        return async_sessionmaker(
            class_=async_class, sync_session_class=self._session_class(True, own), **kw
        )

    @contextmanager
    def pinned(self, target: str, *, read_only: bool | None = None) -> Iterator[Switchboard]:
        """Sessions, ``board.engine`` and ``board.active`` use ``target`` inside the block.

        Only for the code in the block (this thread, or this asyncio task); the
        shared state and every other process, thread and task are untouched.
        Sessions opened inside keep their target to their end, as always.
        ``read_only``: True or False choose the mode, None takes the target's
        default (``DBSWAP_READONLY``).
        """
        name = self.target(target).name
        mode = self._default_read_only(name) if read_only is None else bool(read_only)
        if mode:
            check_read_only_possible(self._targets[name])
        if self._fixed is not None and name != self._fixed:
            reason = "DBSWAP_ENV=production" if self.production_lock else "dbswap run"
            raise SwitchLocked(
                f"this process is fixed to {self._fixed!r} by {reason}; it cannot pin {name!r}",
                target=name,
            )
        with self._blocks_lock:
            self._open_blocks += 1
        self._drop_fast()  # fast pins ignore blocks: none while one is open
        token = self._block_pin.set((name, mode))
        try:
            yield self
        finally:
            self._block_pin.reset(token)
            with self._blocks_lock:
                self._open_blocks -= 1

    # -- instrumentation: a log record per switch always; metrics and spans when on --

    def enable_metrics(self, registry: CollectorRegistry | None = None) -> BoardMetrics:
        """Prometheus metrics of this board (``dbswap[metrics]``), in prometheus-client's
        default registry unless ``registry`` is given. See ``dbswap.metrics``."""
        from .metrics import enable

        return enable(self, registry)

    def enable_tracing(self, enabled: bool = True, tracer_provider: Any = None) -> None:
        """OpenTelemetry spans of ``use()`` and health checks (``dbswap[otel]``), to
        ``tracer_provider`` or the global one. ``False`` turns them off. By default they
        are made when the app has imported OpenTelemetry itself."""
        self._observer.tracing.set(enabled, tracer_provider)

    # -- switching -----------------------------------------------------------

    def on_switch(self, callback: SwitchCallback) -> SwitchCallback:
        """Register ``callback(result)`` to run after each committed switch (a decorator).

        It runs in the process that switched only; ``on_change`` runs in every process.
        """
        self._callbacks.append(callback)
        return callback

    def follow(self) -> None:
        """Make this process known as a follower of the state, and follow it in the
        background (see ``dbswap._followers``). Done by itself at the first session;
        a process fixed to one target (the production lock, ``dbswap run``) follows nothing."""
        if self._fixed is not None:
            return
        with self._classes_lock:
            first = self._following is None
            if self._following is None:
                self._following = Following(self)
        if first:
            publish(self)  # how this app resolved its targets, for the plain CLI (_published)
        self._following.start()

    def followers(self) -> list[Follower] | None:
        """The live processes following this state (every host), with the target and
        generation each serves; None when the store cannot tell right now."""
        return followers_of(self._store)

    def on_change(self, callback: ChangeCallback) -> ChangeCallback:
        """Register ``callback(change)`` to run in this process whenever it starts serving
        another target (a decorator): after a switch made here or anywhere else, and at a
        time limit's end; never for a preview or a ``pinned()`` block. For clearing what
        the app cached from the previous target (see ``dbswap._changes``)."""
        return self._changes.add(callback)

    @observed_switch  # a dbswap.switch span when tracing is on
    def use(
        self,
        target: str,
        user: str | None = None,
        timeout: float = 3.0,
        *,
        read_only: bool | None = None,
        ignore_schema: bool = False,
        drain: bool = False,
        drain_timeout: float = 5.0,
        lock_timeout: float = LOCK_TIMEOUT,
        for_: timedelta | float | None = None,
        then: str | None = None,
        wait: float | None = None,
    ) -> SwitchResult:
        """Switch to ``target`` if it is healthy; raise and change nothing otherwise.

        ``read_only``: True or False choose the mode, None takes the target's
        default (``DBSWAP_READONLY``). ``ignore_schema`` skips the Alembic guard
        (and says so in the audit line). ``drain``: pause new sessions of this
        process, wait up to ``drain_timeout`` for the sessions holding a
        connection to the current target to finish, then commit; if they do not
        finish, raise ``DrainTimeout`` and stay where we are. ``lock_timeout``:
        how long to wait for another switch to finish before ``SwitchLocked``.
        ``for_`` (a timedelta or seconds, 1 s to 7 days): the switch ends on its own
        then, returning to ``then`` (default: where it came from); ``use()`` of the
        same target again with ``for_`` extends it, without ``for_`` ends the limit.
        ``wait`` (seconds): once committed, wait that long at most until every live
        process following the state serves the new generation; the result's
        ``acknowledgement`` says who does (and who lags). The switch stands either way.
        """
        started = time.perf_counter()
        name = target.strip().lower() if isinstance(target, str) else str(target)
        source = self.active
        audit = _AuditCall(self._audit, user, source, name, started)
        if name not in self._targets:
            audit.write("refused", None, "unknown target")
            raise UnknownTarget(name, self._targets)
        if name in self._forbidden:
            audit.write("refused", None, "production under pytest")
            raise ConfigError(_testguard.refusal(name))
        mode = self._default_read_only(name) if read_only is None else bool(read_only)
        audit.extra["read_only"] = mode
        if ignore_schema and self.schema_guard is not None:
            audit.extra["schema_check"] = "overridden"
        if self.production_lock:
            audit.write("refused", None, "production lock (DBSWAP_ENV=production)")
            raise SwitchLocked(
                "switching is disabled: DBSWAP_ENV=production locks the target to 'production'",
                target=name,
                locked=True,
            )
        if self.process_pin is not None:
            audit.write("refused", None, f"this process is pinned by {PIN_VARIABLE} (dbswap run)")
            raise SwitchLocked(
                f"this process runs pinned to {self.process_pin!r} (dbswap run): it uses that "
                "target and switches nobody; switch from outside it",
                target=name,
            )
        from ._targets import check_seconds  # (local: this edit stays inside use())

        try:  # inf or 1e300 would overflow the check's wait; nan would pass "> 0"
            timeout = check_seconds(timeout, "timeout")
        except ConfigError as exc:
            audit.write("refused", None, str(exc))
            raise
        if mode:
            try:
                check_read_only_possible(self._targets[name])
            except ConfigError as exc:
                audit.write("refused", None, str(exc))
                raise
        try:
            box = self._timebox.request(name, for_, then)
        except DBSwapError as exc:
            audit.write("refused", None, str(exc))
            raise
        if drain and not drain_timeout > 0:
            raise ConfigError(f"drain_timeout must be positive, not {drain_timeout!r}")
        if drain:
            audit.extra["drain"] = True
        if wait is not None and not 0 <= wait <= MAX_WAIT:
            raise ConfigError(f"wait must be from 0 to {MAX_WAIT:g} seconds, not {wait!r}")
        try:
            with self._timebox.lock(lock_timeout):
                result = self._switch_locked(
                    name,
                    mode,
                    user,
                    timeout,
                    ignore_schema,
                    drain_timeout if drain else None,
                    audit,
                    box,
                )
        except SwitchLocked as exc:
            audit.write("refused", None, exc.reason)
            raise
        except DBSwapError:
            raise  # already audited (TargetUnavailable is an OSError too)
        except OSError as exc:
            reason = f"cannot write the state in {self._store.describe()}: {exc.strerror}"
            audit.write("failed", None, reason)
            raise ConfigError(self.mask(reason)) from None
        if wait is None:
            return result
        ack = wait_for(self._store, result.generation, wait)  # the lock is free meanwhile
        return dataclasses.replace(result, acknowledgement=ack)

    def _switch_locked(
        self,
        name: str,
        read_only: bool,
        user: str | None,
        timeout: float,
        ignore_schema: bool,
        drain_timeout: float | None,
        audit: _AuditCall,
        box: Request,
    ) -> SwitchResult:
        holder = self._store.lock_holder()
        if holder is not None:  # a process sharing this state serves production, locked
            raise SwitchLocked(
                f"switching is disabled: {holder} locks the target to 'production'",
                target=name,
                locked=True,
            )
        try:
            state, unreadable = self._store.read(), False
        except StateUnreadable:
            state, unreadable = None, True  # this switch rewrites it, even to the same target
        if state is not None:
            self._audit.recover(state)  # a switcher killed between its commit and its line
        previous, previous_read_only = self._observe(state)
        audit.source = previous
        generation = state.generation if state is not None else 0
        if state is None:  # lost or garbled: never reuse a generation (the trail knows them)
            kept = self._store.current()  # a store that kept its last state (Redis)
            generation = max(kept.generation if kept else 0, self._audit.last_committed() or 0)
        expires_at, return_to = self._timebox.plan(box, state, previous, name, audit)
        if (
            not unreadable
            and (previous, previous_read_only) == (name, read_only)
            and expires_at is None
            and "timebox" not in audit.extra  # else: cancelling the time limit is a switch
        ):
            audit.write("noop", generation, None)
            return SwitchResult(previous, name, generation, audit.elapsed, False, user, read_only)
        # Un-retired first, so the health check's connection stays pooled for the
        # first session after the switch instead of being closed at check-in.
        self._engines.activate(name, read_only)
        new_state = State(name, generation + 1, utc_now(), user, read_only, expires_at, return_to)
        try:
            health = self._check(
                self._targets[name],
                timeout,
                not ignore_schema,
                read_only,
                meanwhile=lambda: self._store.stage(new_state),
                on_app_loop=True,
            )
            if not health.ok:
                audit.write("failed", generation, health.error)
                raise TargetUnavailable(name, health.error or "health check failed")
            if health.schema_ok is False and self.schema_guard is not None:
                mismatch = self.schema_guard.mismatch(
                    name, health.revisions or (), health.expected_revisions or ()
                )
                audit.write("refused", generation, str(mismatch))
                raise mismatch
            if drain_timeout is None:
                self._commit_audited(new_state, audit)
            else:
                self._drain_and_commit(new_state, previous, drain_timeout, audit)
        except BaseException:
            self._store.unstage()
            if name != self._seen[1]:
                self._engines.retire(name)  # not switched: nothing may stay open to it
            elif read_only != self._seen[2]:
                self._engines.release(name, read_only)  # nor to its pool of the other mode
            raise
        result = SwitchResult(
            previous,
            name,
            new_state.generation,
            audit.elapsed,
            True,
            user,
            read_only,
            expires_at,
            return_to,
        )
        self._run_callbacks(result)
        return result

    def _commit_audited(self, state: State, audit: _AuditCall) -> None:
        """Write the switch's line, synced, then commit: no generation without its line."""
        try:
            audit.write("ok", state.generation, None, durable=True)
        except OSError as exc:
            reason = f"cannot write the audit log {self._audit.path}: {exc.strerror}"
            audit.write("failed", state.generation - 1, reason)  # to the loggers, at least
            raise ConfigError(f"{reason}; nothing was switched") from None
        try:
            self._commit(state)
        except BaseException:
            self._audit.void(state.generation, state.target, "its commit failed")
            raise

    def _commit(self, state: State) -> None:
        self._store.write(state)
        self._observe(state)
        self._observer.committed()  # the gauges: the line came first, the state now
        if self._following is not None:
            self._following.publish()  # this process serves it already: say so now

    def _drain_and_commit(
        self,
        state: State,
        previous: str,
        drain_timeout: float,
        audit: _AuditCall,
    ) -> None:
        gate = threading.Event()
        self._gate_timeout = drain_timeout + 1.0  # waiters never hang, even if we fail
        self._gate = gate
        self._drop_fast()
        try:
            deadline = time.monotonic() + drain_timeout
            while (in_flight := self._engines.in_use(previous)) and time.monotonic() < deadline:
                time.sleep(0.002)
            if in_flight:
                audit.write("failed", state.generation - 1, f"drain timed out ({in_flight} busy)")
                raise DrainTimeout(state.target, in_flight, drain_timeout)
            self._commit_audited(state, audit)
        finally:
            self._gate = None
            gate.set()

    def _run_callbacks(self, result: SwitchResult) -> None:
        for callback in self._callbacks:
            try:
                callback(result)
            except Exception as exc:  # the switch is committed; a hook must not undo it
                logger.error(
                    "on_switch callback %r failed: %s",
                    callback,
                    self.mask(f"{type(exc).__name__}: {exc}"),
                )

    def record_run(
        self,
        target: str,
        command: str,
        user: str | None,
        *,
        exit_code: int | None = None,
        duration: float = 0.0,
    ) -> None:
        """Audit a command run pinned to ``target`` (``dbswap run``): a ``run-started`` line
        when it starts (``exit_code`` None), a ``run`` line with its exit code when it ends."""
        self._audit.record(
            outcome="run-started" if exit_code is None else "run",
            user=user,
            source=self.active,
            target=target,
            generation=None,
            duration_ms=duration * 1000,
            command=command,
            exit_code=exit_code,
        )

    def record_refusal(self, target: str, user: str | None, reason: str, **extra: Any) -> None:
        """Audit an attempt refused before it reached ``use()`` (the CLI's unconfirmed
        switch to production, say): every refusal has its line."""
        self._audit.record(
            outcome="refused",
            user=user,
            source=self.active,
            target=target,
            generation=None,
            duration_ms=0.0,
            reason=reason,
            **extra,
        )

    # -- health --------------------------------------------------------------

    def check(self, target: str | None = None, timeout: float = 3.0) -> list[Health]:
        """Health of one target (by name) or of all; never raises for a sick database."""
        names = [self.target(target).name] if target is not None else list(self._targets)
        active, active_read_only = self._current()
        results = [
            self._check(
                self._targets[name],
                timeout,
                schema=True,
                read_only=active_read_only if name == active else self._default_read_only(name),
            )
            for name in names
        ]
        for name in names:
            if name != active:
                self._engines.retire(name)  # a check must not leave connections open
        return results

    @observed_check  # timed for the metrics, a dbswap.health_check span when tracing is on
    def _check(
        self,
        target: Target,
        timeout: float,
        schema: bool,
        read_only: bool,
        meanwhile: Callable[[], None] | None = None,
        on_app_loop: bool = False,
    ) -> Health:
        """Check through the pool the target would be used with, so the connection is reused.

        ``on_app_loop``: when the app uses asyncio sessions, that pool is the app's asyncio
        one, and the checked connection serves the first request after the switch: no
        connect, no dialect to initialise then (a first switch to a SQLite file measured
        as fast as a switch back to it, where a synchronous check left that work to the
        first request).
        """
        if target.name in self._forbidden:
            return Health(target.name, target.dialect, False, None, _testguard.refusal(target.name))
        guard = self.schema_guard if schema else None
        async_only = is_async_only(target.sa_url)
        if on_app_loop or async_only:
            app = self._engines.on_app_loop(target, read_only)
            if app is not None:
                return check_target_on_loop(*app, target, timeout, guard, self.mask, meanwhile)
        if async_only:  # no app loop to check on: a private one, with a connection of its own
            private = self._engines.private_async(target, read_only)
            return check_target_async(private, target, timeout, guard, self.mask, meanwhile)
        engine = self._engines.sync(target, read_only)
        return check_target(engine, target, timeout, guard, self.mask, meanwhile)

    # -- lifecycle -----------------------------------------------------------

    def dispose(self) -> None:
        """Close the pooled connections of every synchronous engine."""
        self._engines.dispose()

    async def adispose(self) -> None:
        """Close the pooled connections of every engine, async ones included."""
        await self._engines.adispose()
        self._engines.dispose()

    def close(self) -> None:
        """Dispose of the engines and stop the state store's background work."""
        self._drop_fast()  # it may hold the store's memory map
        expiry.forget(self)
        if self._following is not None:
            self._following.stop()
        self._observer.close()
        self._engines.dispose()
        self._store.close()


_NOTHING_SEEN = object()


class _AuditCall:
    """The fields one ``use()`` call writes into its audit line."""

    def __init__(
        self, log: AuditLog, user: str | None, source: str, target: str, started: float
    ) -> None:
        self.log, self.user, self.source, self.target = log, user, source, target
        self.started = started
        self.extra: dict[str, Any] = {}

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def write(
        self, outcome: str, generation: int | None, reason: str | None, durable: bool = False
    ) -> None:
        self.log.record(
            outcome=outcome,
            user=self.user,
            source=self.source,
            target=self.target,
            generation=generation,
            duration_ms=self.elapsed * 1000,
            reason=reason,
            durable=durable,
            **self.extra,
        )


def _seconds(env: Mapping[str, str], name: str, default: float = 0.0) -> float:
    """A duration setting: unset is ``default``; inf, nan, negative or huge is a ConfigError
    naming it."""
    from ._targets import check_seconds  # (local: this edit stays inside _seconds)

    raw = env.get(name, "").strip()
    return check_seconds(raw, name, zero_ok=True) if raw else default


def _as_targets(targets: Mapping[str, str | Target] | Iterable[Target]) -> dict[str, Target]:
    if isinstance(targets, Mapping):
        items: Iterable[Target] = (
            value if isinstance(value, Target) else Target(name, normalize_url(value, Path.cwd()))
            for name, value in targets.items()
        )
    else:
        items = targets
    result: dict[str, Target] = {}
    for target in items:
        if not isinstance(target, Target):
            raise ConfigError(f"not a Target: {target!r}")
        result[target.name] = target
    return result
