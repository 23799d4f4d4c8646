"""Switches that end on their own: ``board.use("production", for_=timedelta(minutes=15))``.

The time limit lives in the shared state (``State.expires_at`` and
``State.return_to``), so every process sharing it knows when the switch ends
and where it goes back to, and no process has to be running at that instant:
the first one that needs the active target afterwards (a new session,
``board.active``, ``dbswap status``, the admin page) makes the return, as one
switch like any other: under the switch lock, health-checked, committed one
generation higher and audited with outcome ``expired``. Processes racing to
do it wait for the lock and find it done.

The hot path does not read the clock: a fast pin (``Switchboard._set_fast``)
simply never lasts past the end of a time limit, so the first session after
it takes the slow path, which does. If the return target is down, the app
stays where it is, logs an error and says so (``board.time_limit.problem``,
``dbswap status``, the admin page); one thread tries again in the background
at most every ``RETRY_SECONDS``, so no session waits for a retry.

The end never waits for the switch lock: when another switch holds it (a slow
health check, perhaps for minutes), the process checks the return target
itself and serves it at once, as the state says it must, and one thread
commits the return (or finds it made) when the lock frees. A return to
production carries ``DBSWAP_MAX_PRODUCTION`` like any switch to production.

Not to be confused with ``_expiry.py``, which expires fast pins.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from . import _testguard
from ._errors import ConfigError, SwitchLocked, TargetUnavailable, UnknownTarget
from ._expiry import TICKS_PER_PERIOD
from ._state import REVALIDATE, State, parse_utc, utc_now, utc_text

if TYPE_CHECKING:
    from ._switchboard import Switchboard, _AuditCall

logger = logging.getLogger("dbswap")

MIN_SECONDS = 1.0
MAX_SECONDS = 7 * 24 * 3600.0
RETRY_SECONDS = 5.0  # a failed return is tried again at most this often (per process)
RETURN_TIMEOUT = 3.0  # the return's health check, as use()'s default
LOCK_WAIT = RETURN_TIMEOUT + 2.0  # a background commit's wait for the lock (then again)
# The first session after the end waits this long for the lock, no more: then it serves
# the return target unlocked (a switch holding the lock may even need this event loop).
RETURN_LOCK_WAIT = 0.1
# The _expiry thread drops a fast pin up to one tick after its deadline, later on a starved
# machine: fast pins end a whole second before the limit (sessions then check the clock).
PIN_MARGIN = REVALIDATE / TICKS_PER_PERIOD + 0.75
RETURNED_BY = "time limit"  # switched_by of the state a return commits
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([smhd])")


@dataclass(frozen=True)
class TimeLimit:
    """When the active switch ends and where it returns (``board.time_limit``)."""

    expires_at: str  # UTC, ISO 8601, as ``State.switched_at``
    return_to: str
    seconds_left: float  # 0 once it has ended
    problem: str | None = None  # it ended, and this process could not return yet: why

    @property
    def ended(self) -> bool:
        return self.seconds_left <= 0


@dataclass(frozen=True)
class Request:
    """A validated ``use(for_=..., then=...)``."""

    seconds: float | None = None  # None: no time limit
    then: str | None = None  # None: where the switch came from
    capped: str | None = None  # why ``seconds`` is less than asked (DBSWAP_MAX_PRODUCTION)


def check_duration(value: object, what: str) -> float:
    """``value`` (a timedelta or seconds) as seconds from 1 s to 7 days, or ConfigError."""
    refused = ConfigError(
        f"{what} must be a duration from 1s to 7d (e.g. 90s, 15m, 2h or a number of "
        f"seconds), not {repr(value)[:40]}"
    )
    try:
        if isinstance(value, timedelta):
            seconds = value.total_seconds()
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        else:
            raise refused
    except OverflowError:
        raise refused from None
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:  # nan fails too
        raise refused
    return seconds


def parse_duration(text: str, what: str) -> float:
    """``90s``, ``15m``, ``2h``, ``1h30m``, ``1d`` or plain seconds, as seconds (or ConfigError)."""
    compact = text.strip().lower().replace(" ", "")
    try:
        seconds = float(compact)
    except ValueError:
        parts = _PART.findall(compact)
        if not compact or "".join(n + u for n, u in parts) != compact:
            return check_duration(text, what)  # raises, naming the text
        seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    try:
        return check_duration(seconds, what)
    except ConfigError:
        return check_duration(text, what)  # the same refusal, naming what was written


def format_duration(seconds: float) -> str:
    """``15m``, ``1h30m``, ``45s``: whole seconds, rounded up."""
    left = max(0, math.ceil(seconds))
    days, left = divmod(left, 86400)
    hours, left = divmod(left, 3600)
    minutes, left = divmod(left, 60)
    parts = ((days, "d"), (hours, "h"), (minutes, "m"), (left, "s"))
    return "".join(f"{value}{unit}" for value, unit in parts if value) or "0s"


class Timebox:
    """One board's time limits: planning them in ``use()``, and the return at their end."""

    def __init__(self, board: Switchboard, max_production: timedelta | float | None) -> None:
        self._board = board
        self.max_production = (
            None if max_production is None else check_duration(max_production, "max_production")
        )
        self._ends: tuple[State | None, float] = (None, math.inf)  # a state and its end, parsed
        self._failure: tuple[int, str] | None = None  # (generation, why) of a failed return
        self._retry_at = 0.0  # monotonic: no new attempt for that generation before
        self._retrying = threading.Lock()  # one background retry (or commit) at a time
        # (an ended state, what this process serves for it until its return is committed)
        self._meanwhile: tuple[State, State] | None = None
        self._pid = os.getpid()  # a child forked during a retry starts with a free lock
        self._holding = threading.local()  # .on: this thread holds the switch lock

    # -- use() ---------------------------------------------------------------------

    def request(self, name: str, for_: timedelta | float | None, then: str | None) -> Request:
        """Check ``for_`` and ``then`` before the lock (ConfigError, UnknownTarget)."""
        from ._switchboard import PRODUCTION

        seconds = None if for_ is None else check_duration(for_, "for_")
        capped = None
        most = self.max_production
        if most is not None and name == PRODUCTION and (seconds is None or seconds > most):
            seconds, capped = most, f"capped to {format_duration(most)} by DBSWAP_MAX_PRODUCTION"
        if then is None:
            return Request(seconds, None, capped)
        if seconds is None:
            raise ConfigError("a return target (then, --then) needs a time limit (for_, --for)")
        board = self._board
        back = then.strip().lower() if isinstance(then, str) else str(then)
        if back not in board.targets:
            raise UnknownTarget(back, board.targets)
        if back in board._forbidden:
            raise ConfigError(_testguard.refusal(back))
        if back == name:
            raise ConfigError(f"the return target {back!r} is the target itself: name another")
        return Request(seconds, back, capped)

    def return_limit(self, name: str) -> float | None:
        """The time limit a return to ``name`` carries (``DBSWAP_MAX_PRODUCTION``), if any."""
        from ._switchboard import PRODUCTION

        return self.max_production if name == PRODUCTION else None

    def plan(
        self, request: Request, state: State | None, previous: str, name: str, audit: _AuditCall
    ) -> tuple[str | None, str | None]:
        """``(expires_at, return_to)`` of the state a switch commits; the audit line says which."""
        same = state is not None and state.target == name and state.expires_at is not None
        if request.seconds is None:
            if same:
                audit.extra["timebox"] = "cancelled"
            return None, None
        then = request.then or self._default_return(state, previous, name, audit)
        expires_at = utc_text(datetime.now(timezone.utc) + timedelta(seconds=request.seconds))
        audit.extra.update(
            timebox="extended" if same else "set",
            for_seconds=request.seconds,
            expires_at=expires_at,
            return_to=then,
        )
        if request.capped is not None:
            audit.extra["capped"] = request.capped
        return expires_at, then

    def _default_return(
        self, state: State | None, previous: str, name: str, audit: _AuditCall
    ) -> str:
        """Where the switch came from; if that was time-boxed itself, where it would return."""
        earlier = state.return_to if state is not None and state.expires_at is not None else None
        for candidate in (earlier, previous, self._board.default_target):
            if candidate is not None and candidate != name:
                return candidate
        reason = f"{name!r} is already active: name the return target (then, --then)"
        audit.write("refused", None, reason)
        raise ConfigError(reason)

    @contextlib.contextmanager
    def lock(self, timeout: float) -> Iterator[None]:
        """The switch lock, marked as held by this thread: it must not wait for itself."""
        with self._board._store.lock(timeout):
            self._holding.on = True
            try:
                yield
            finally:
                self._holding.on = False

    # -- reading the state ---------------------------------------------------------

    def ends(self, state: State) -> float:
        """When ``state``'s time limit ends, in seconds since the epoch (inf: never)."""
        parsed_state, end = self._ends
        if parsed_state is state:
            return end
        try:
            end = parse_utc(state.expires_at) if state.expires_at is not None else math.inf
        except ValueError:  # from_json refuses such a state; one made in code may hold anything
            end = math.inf
        self._ends = (state, end)
        return end

    def settle(self, state: State) -> State | None:
        """``state``, or, once its time limit has ended, the state after the return."""
        if time.time() < self.ends(state) or getattr(self._holding, "on", False):
            return state
        meanwhile = self._meanwhile
        if meanwhile is not None and meanwhile[0] is state:
            self._commit_later(state)  # (started already, unless a retry ran meanwhile)
            return meanwhile[1]  # the return is served; its commit waits for the lock
        failure = self._failure
        if failure is not None and failure[0] == state.generation:
            self._retry_later(state)
            return state  # stay where we are, loudly: see _failed
        return self._return(state, retry=False)

    def pin_deadline(self, seen: object, deadline: float) -> float | None:
        """A fast pin's monotonic deadline, never past the time limit; None: no fast pin."""
        if not isinstance(seen, State) or seen.expires_at is None:
            return deadline
        now, wall = time.monotonic(), time.time()
        end = self.ends(seen)
        # Once the end has passed (a return that failed), until the next attempt.
        left = end - wall if wall < end else self._retry_at - now
        limit = now + left - PIN_MARGIN
        return min(deadline, limit) if limit > now else None

    def time_limit(self, state: State) -> TimeLimit | None:
        if state.expires_at is None or state.return_to is None:
            return None
        try:
            left = max(0.0, parse_utc(state.expires_at) - time.time())
        except ValueError:
            return None
        failure = self._failure
        problem = failure[1] if failure and failure[0] == state.generation and not left else None
        return TimeLimit(state.expires_at, state.return_to, left, problem)

    # -- the return ----------------------------------------------------------------

    def _retry_later(self, state: State) -> None:
        """Try the failed return again, in the background, if it is time (one thread at a time)."""
        if self._pid != os.getpid():
            self._pid, self._retrying = os.getpid(), threading.Lock()
        if time.monotonic() < self._retry_at or self._retrying.locked():
            return
        self._retry_at = time.monotonic() + RETRY_SECONDS  # not twice while this one runs
        self._in_background(lambda: self._return(state, retry=True), "dbswap-timebox-return")

    def _in_background(self, work: Callable[[], object], name: str) -> None:
        """Run ``work`` in a daemon thread, one at a time (a later session tries if busy)."""
        if not self._retrying.acquire(blocking=False):
            return

        def run() -> None:
            try:
                work()
            finally:
                self._retrying.release()

        try:
            threading.Thread(target=run, name=name, daemon=True).start()
        except RuntimeError:  # interpreter shutdown, a thread limit: a later session tries
            self._retrying.release()

    def _return(self, seen: State, *, retry: bool) -> State | None:
        board = self._board
        started = time.perf_counter()
        try:
            with self.lock(LOCK_WAIT if retry else RETURN_LOCK_WAIT):
                state = board._store.read()
                if state is None or time.time() < self.ends(state):
                    board._observe(state)  # returned, extended or cancelled meanwhile
                    return state
                failure = self._failure
                if not retry and failure is not None and failure[0] == state.generation:
                    return state  # another thread of this process has just tried
                return self._switch_back(state, started)
        except SwitchLocked as exc:
            if exc.locked or retry:  # a production lock; or a retry that found it busy
                self._failed(seen, exc)
                return seen
            return self._serve_meanwhile(seen)  # a switch holds the lock: do not wait for it
        except Exception as exc:
            self._failed(seen, exc)
            return seen

    def _serve_meanwhile(self, ended: State) -> State:
        """Serve the return target of ``ended`` now, checked, and commit the return later.

        The switch lock only orders commits: what the state means once its time
        limit has ended (its return target) needs no lock to be served.
        """
        board = self._board
        try:
            name = self._return_target(ended)
            read_only = board._default_read_only(name)
            health = board._check(board.targets[name], RETURN_TIMEOUT, True, read_only)
            if not health.ok:
                raise TargetUnavailable(name, health.error or "health check failed")
            if health.schema_ok is False and board.schema_guard is not None:
                expected = health.expected_revisions or ()
                raise board.schema_guard.mismatch(name, health.revisions or (), expected)
        except Exception as exc:
            self._failed(ended, exc)
            return ended
        served = State(name, ended.generation, ended.expires_at, RETURNED_BY, read_only)
        self._meanwhile = (ended, served)
        logger.warning(
            "the time limit of the switch to %r ended at %s while another switch holds the "
            "lock: serving %r now; the return is committed when the lock frees",
            ended.target,
            ended.expires_at,
            name,
        )
        self._commit_later(ended)
        return served

    def _commit_later(self, ended: State) -> None:
        self._in_background(lambda: self._commit_meanwhile(ended), "dbswap-timebox-commit")

    def _commit_meanwhile(self, ended: State) -> None:
        """Wait for the lock (as long as it takes), then commit the return or find it made."""
        board = self._board
        while self._meanwhile is not None and self._meanwhile[0] is ended:
            try:
                with self.lock(LOCK_WAIT):
                    state = board._store.read()
                    if state is not None and state.generation == ended.generation:
                        self._switch_back(state, time.perf_counter())
                    else:
                        board._observe(state)  # a peer returned, or a switch moved on
            except SwitchLocked as exc:
                if not exc.locked:
                    continue  # still busy: wait again
                self._failed(ended, exc)
            except Exception as exc:
                self._failed(ended, exc)
            self._meanwhile = None

    def _switch_back(self, state: State, started: float) -> State:
        """Under the lock: check the return target, commit, audit ``expired``."""
        from ._switchboard import SwitchResult

        board, store = self._board, self._board._store
        holder = store.lock_holder()
        if holder is not None:
            raise SwitchLocked(f"{holder} locks the target to 'production'", locked=True)
        board._audit.recover(state)  # a switcher killed between its commit and its line
        board._observe(state)
        name = self._return_target(state)
        read_only = board._default_read_only(name)
        limit = self.return_limit(name)  # a return to production is capped like a switch
        expires_at = return_to = None
        if limit is not None:
            expires_at = utc_text(datetime.now(timezone.utc) + timedelta(seconds=limit))
            return_to = state.target
        new_state = State(
            name, state.generation + 1, utc_now(), RETURNED_BY, read_only, expires_at, return_to
        )
        board._engines.activate(name, read_only)  # as use(): the checked connection stays pooled
        try:
            health = board._check(
                board.targets[name],
                RETURN_TIMEOUT,
                True,
                read_only,
                meanwhile=lambda: store.stage(new_state),
                on_app_loop=True,
            )
            if not health.ok:
                raise TargetUnavailable(name, health.error or "health check failed")
            if health.schema_ok is False and board.schema_guard is not None:
                expected = health.expected_revisions or ()
                raise board.schema_guard.mismatch(name, health.revisions or (), expected)
            elapsed = time.perf_counter() - started
            capped: dict[str, Any] = {}
            if limit is not None:
                capped = {
                    "timebox": "set",
                    "for_seconds": limit,
                    "expires_at": expires_at,
                    "return_to": return_to,
                    "capped": f"capped to {format_duration(limit)} by DBSWAP_MAX_PRODUCTION",
                }
            board._audit.record(  # before the commit, synced: no generation without its line
                outcome="expired",
                user=state.switched_by,
                source=state.target,
                target=name,
                generation=new_state.generation,
                duration_ms=elapsed * 1000,
                reason=f"the time limit ended at {state.expires_at}",
                durable=True,
                read_only=read_only,
                expired_at=state.expires_at,
                **capped,
            )
            try:
                board._commit(new_state)
            except BaseException:
                board._audit.void(new_state.generation, name, "its commit failed")
                raise
        except BaseException:
            store.unstage()
            if name != board._seen[1]:
                board._engines.retire(name)  # not switched: nothing may stay open to it
            elif read_only != board._seen[2]:
                board._engines.release(name, read_only)
            raise
        self._failure = None
        logger.info(
            "the time limit of the switch to %r ended at %s: returned to %r (generation %d)",
            state.target,
            state.expires_at,
            name,
            new_state.generation,
        )
        result = SwitchResult(
            state.target,
            name,
            new_state.generation,
            elapsed,
            True,
            state.switched_by,
            read_only,
            expires_at,
            return_to,
        )
        board._run_callbacks(result)
        return new_state

    def _return_target(self, state: State) -> str:
        board = self._board
        name = state.return_to or board.default_target
        if name not in board.targets:
            raise UnknownTarget(name, board.targets)
        if name in board._forbidden:
            raise ConfigError(_testguard.refusal(name))
        return name

    def _failed(self, state: State, exc: BaseException) -> None:
        reason = exc.reason if isinstance(exc, TargetUnavailable) else str(exc)
        reason = self._board.mask(reason.strip().splitlines()[0] if reason.strip() else repr(exc))
        self._failure = (state.generation, reason)
        self._retry_at = time.monotonic() + RETRY_SECONDS
        logger.error(
            "the time limit of the switch to %r ended at %s, but returning to %r failed: %s; "
            "staying on %r, trying again in %g s",
            state.target,
            state.expires_at,
            state.return_to,
            reason,
            state.target,
            RETRY_SECONDS,
        )


def describe(limit: TimeLimit) -> str:
    """One line for people: ``ends in 14m32s (at ...), then back to local`` or why it did not."""
    if limit.problem is not None:
        return f"expired, return to {limit.return_to} failed: {limit.problem}"
    if limit.ended:
        return f"expired at {limit.expires_at}, returning to {limit.return_to}"
    return (
        f"ends in {format_duration(limit.seconds_left)} (at {limit.expires_at}), "
        f"then back to {limit.return_to}"
    )


def limit_fields(limit: TimeLimit | None) -> dict[str, Any]:
    """The time limit as the CLI's JSON shows it (all None without one)."""
    return {
        "expires_at": limit.expires_at if limit else None,
        "return_to": limit.return_to if limit else None,
        "seconds_left": round(limit.seconds_left, 1) if limit else None,
        "return_problem": limit.problem if limit else None,
    }
