"""The admin core shared by every web adapter (FastAPI now; Flask and Django reuse it).

Adapters stay thin: they turn a request into plain values (bytes, header
strings, query values), call one method of :class:`AdminCore`, and turn the
returned dict, or the :class:`AdminError` raised, into a response. Every
status code, message and payload is decided here, so all adapters agree.

Nothing here reads a switched database: authorization is the app's
``authorize`` callable and the history is the board's audit log, so an admin
can always switch back, whichever database is active.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2

from ._csrf import CsrfGuard, CsrfRefused, RequestFacts, shared_key
from ._errors import (
    ConfigError,
    DBSwapError,
    SchemaMismatch,
    SwitchLocked,
    TargetUnavailable,
    UnknownTarget,
)
from ._followers import Acknowledgement, Follower
from ._health import Health
from ._switchboard import PRODUCTION, Switchboard
from ._targets import check_seconds
from ._timebox import MAX_SECONDS as MAX_LIMIT_SECONDS
from ._timebox import MIN_SECONDS as MIN_LIMIT_SECONDS

logger = logging.getLogger("dbswap")

EXPECTED_BODY = (
    '{"useProduction": true|false} or {"target": "<name>"}, '
    'optionally with "readOnly": true|false, "ignoreSchema": true|false, '
    '"forSeconds": 1 to 604800 (the switch ends on its own), "thenTarget": "<name>" and '
    '"wait": 0 to 60 (seconds to wait for every process to follow)'
)
_FIELDS = (
    "useProduction",
    "target",
    "readOnly",
    "ignoreSchema",
    "forSeconds",
    "thenTarget",
    "wait",
)
MAX_API_WAIT = 60.0
MAX_BODY_BYTES = 16 * 1024
MAX_TARGET_CHARS = 64
DEFAULT_HISTORY = 20
MAX_HISTORY = 1000
LOCK_REASON = "DBSWAP_ENV=production locks the target to 'production'; switching is disabled"


def _lock_message(holder: str | None) -> str | None:
    """The page's and API's words for a production lock, held here or by a process sharing it."""
    if holder is None:
        return None
    if holder == "DBSWAP_ENV=production":
        return LOCK_REASON
    return f"{holder} locks the target to 'production'; switching is disabled"


class AdminError(Exception):
    """A refused admin request: an HTTP status, a short code and a message for people."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.extra = extra
        self._headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"success": False, "error": self.code, "message": self.message, **self.extra}

    @property
    def headers(self) -> dict[str, str]:
        """Response headers: a 401 always says how to authenticate."""
        if self.status == 401:
            return {"WWW-Authenticate": 'Bearer realm="dbswap admin"', **self._headers}
        return dict(self._headers)


class NotAuthenticated(AdminError):
    """Raise from ``authorize`` when nobody is logged in (401)."""

    status = 401
    code = "not_authenticated"

    def __init__(self, message: str = "log in as an administrator first", **extra: Any) -> None:
        super().__init__(message, **extra)


class Forbidden(AdminError):
    """Raise from ``authorize`` when the user is logged in but not an admin (403)."""

    status = 403
    code = "forbidden"

    def __init__(self, message: str = "only administrators may do this", **extra: Any) -> None:
        super().__init__(message, **extra)


def read_only_refusal(target: str, *, previewing: bool) -> AdminError:
    """A write of an app's request that a read-only target refused: 409, never a 500.

    In a read-only preview the advice is a writable preview, which moves only
    the admin's own requests; never a writable switch, which would move everybody.
    """
    if previewing:
        advice = (
            "stop this preview and start a writable one from dbswap's admin page "
            '(POST /api/admin/database/preview {"target": '
            f'"{target}", "readOnly": false}}): only your own requests use it'
        )
        what = f"your preview of {target!r} is read-only"
    else:
        advice = (
            "an administrator can make it writable from dbswap's admin page, or with "
            f"`dbswap use {target} --writable`"
        )
        what = f"the {target!r} database is in read-only mode"
    return AdminError(
        f"{what}: the database refused this write, and nothing was written; to write, {advice}",
        status=409,
        code="read_only",
        target=target,
        preview=previewing,
    )


def _invalid(message: str, expected: str = EXPECTED_BODY) -> AdminError:
    return AdminError(f"{message}; expected {expected}", status=422, code="invalid_body")


def json_object(
    body: bytes, content_type: str | None, expected: str, fields: Collection[str]
) -> dict[str, Any]:
    """A JSON object of only ``fields``, or the AdminError that says what is expected."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise AdminError(
            f"send the body as JSON with Content-Type: application/json; expected {expected}",
            status=415,
            code="unsupported_media_type",
        )
    if len(body) > MAX_BODY_BYTES:
        raise AdminError(
            f"the body is larger than {MAX_BODY_BYTES} bytes; expected {expected}",
            status=413,
            code="body_too_large",
        )
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise AdminError(
            f"the body is not valid JSON ({_json_error(exc)}); expected {expected}",
            status=400,
            code="malformed_json",
        ) from None
    if not isinstance(data, dict):
        raise _invalid(f"the body must be a JSON object, not {_json_type(data)}", expected)
    unexpected = sorted(str(k) for k in data if k not in fields)
    if unexpected:
        names = ", ".join(repr(k[:40]) for k in unexpected[:5])
        raise _invalid(f"unexpected field(s) {names}", expected)
    return data


@dataclass(frozen=True)
class SwitchRequest:
    """A validated switch body."""

    target: str
    read_only: bool | None = None  # None: the target's default (DBSWAP_READONLY)
    ignore_schema: bool = False
    for_seconds: float | None = None  # the switch ends on its own after this long
    then: str | None = None  # and returns there (None: where it came from)
    wait: float | None = None  # seconds to wait for the followers (None: do not)


class AdminCore:
    """Status, switch, history and the page for one Switchboard."""

    def __init__(
        self,
        board: Switchboard,
        *,
        csrf_secret: str | bytes | None = None,
        trusted_origins: Iterable[str] = (),
        switch_timeout: float = 3.0,
        check_timeout: float = 1.0,
    ) -> None:
        switch_timeout = check_seconds(switch_timeout, "switch_timeout")
        check_timeout = check_seconds(check_timeout, "check_timeout")
        self.board = board
        if csrf_secret is None:  # shared by the processes of this host through the runtime dir
            csrf_secret = shared_key(board.runtime_dir)
        self.csrf = CsrfGuard(csrf_secret, trusted_origins)
        self.switch_timeout = switch_timeout
        self.check_timeout = check_timeout

    # -- who is asking ---------------------------------------------------------

    @staticmethod
    def user_id(value: object) -> str:
        """The id ``authorize`` returned, as a string; nobody at all is a 401."""
        if value is None or value == "":
            raise NotAuthenticated()
        return str(value)

    def check_csrf(self, facts: RequestFacts) -> None:
        try:
            self.csrf.check(facts)
        except CsrfRefused as exc:
            raise AdminError(str(exc), status=403, code="csrf") from None

    # -- reading ---------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        board = self.board
        state, lock = board.state, board.lock_reason
        served = PRODUCTION if lock is not None else state.target  # a locked app ignores the state
        limit = board.time_limit if lock is None else None  # asking may make the return
        return {
            "target": served,
            "useProduction": served == PRODUCTION,
            "readOnly": bool(state.read_only),
            "locked": lock is not None,
            "lockReason": _lock_message(lock),
            "generation": state.generation,
            "switchedAt": state.switched_at,
            "switchedBy": state.switched_by,
            "expiresAt": limit.expires_at if limit else None,
            "returnTo": limit.return_to if limit else None,
            "secondsLeft": round(limit.seconds_left, 1) if limit else None,
            "returnProblem": board.mask(limit.problem) if limit and limit.problem else None,
            "defaultTarget": board.default_target,
            "followers": followers_payload(board.followers(), state.generation),
            "targets": [
                {
                    "name": name,
                    "dialect": target.dialect,
                    "url": board.mask(target.masked_url),
                    "production": name == PRODUCTION,
                    "active": name == served,
                    "readOnlyDefault": name in board.read_only_targets,
                }
                for name, target in board.targets.items()
            ],
        }

    def history(self, limit_values: Sequence[str] = ()) -> dict[str, Any]:
        """The audit entries, newest first (blocking file read: call it off the event loop)."""
        limit = parse_limit(limit_values)
        entries = [self._masked(entry) for entry in self.board.history(limit)]
        return {"limit": limit, "entries": entries}

    def health(self) -> dict[str, Health]:
        """Every target's reachability, checked in parallel (blocks up to ``check_timeout``)."""
        names = list(self.board.targets)
        with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="dbswap-page") as pool:
            results = pool.map(lambda n: self.board.check(n, timeout=self.check_timeout), names)
            return {h.target: h for batch in results for h in batch}

    def _masked(self, value: Any) -> Any:
        """Every string in ``value`` masked (the audit log already is: belt and braces)."""
        if isinstance(value, str):
            return self.board.mask(value)
        if isinstance(value, Mapping):
            return {key: self._masked(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._masked(item) for item in value]
        return value

    # -- switching -------------------------------------------------------------

    def parse_switch(self, body: bytes, content_type: str | None) -> SwitchRequest:
        """The switch a body asks for, or an AdminError that says what is expected."""
        data = json_object(body, content_type, EXPECTED_BODY, _FIELDS)
        if ("useProduction" in data) == ("target" in data):
            raise _invalid("give exactly one of 'useProduction' and 'target'")
        for flag_name in ("useProduction", "readOnly", "ignoreSchema"):
            flag = data.get(flag_name, False)
            if not isinstance(flag, bool) and not (flag_name == "readOnly" and flag is None):
                raise _invalid(f"'{flag_name}' must be true or false, not {_json_type(flag)}")
        wait = data.get("wait")
        if wait is not None and (
            not isinstance(wait, (int, float))
            or isinstance(wait, bool)
            or not 0 <= wait <= MAX_API_WAIT
        ):
            raise _invalid(f"'wait' must be a number of seconds from 0 to {MAX_API_WAIT:g}")
        options = {
            "read_only": data.get("readOnly"),
            "ignore_schema": data.get("ignoreSchema", False),
            "wait": None if wait is None else float(wait),
            **_time_limit(data),
        }
        if "useProduction" in data:
            target = PRODUCTION if data["useProduction"] else self.board.default_target
            return _checked(SwitchRequest(target, **options))
        name = data["target"]
        known = ", ".join(self.board.targets)
        if not isinstance(name, str):
            raise _invalid(f"'target' must be a string (one of: {known}), not {_json_type(name)}")
        name = name.strip().lower()
        if not name or len(name) > MAX_TARGET_CHARS:
            raise _invalid(f"'target' must name a target (one of: {known})")
        return _checked(SwitchRequest(name, **options))

    def switch(self, request: SwitchRequest, user: str) -> dict[str, Any]:
        """Switch, blocking up to ``switch_timeout``: run it in a thread, never on an event loop."""
        board, target = self.board, request.target
        try:
            result = board.use(
                target,
                user=user,
                timeout=self.switch_timeout,
                read_only=request.read_only,
                ignore_schema=request.ignore_schema,
                lock_timeout=self.switch_timeout + 2,  # an HTTP client should not hang on a peer
                for_=request.for_seconds,
                then=request.then,
                wait=request.wait,
            )
        except UnknownTarget as exc:
            raise AdminError(
                board.mask(str(exc)),
                status=404,
                code="unknown_target",
                knownTargets=list(exc.known),
            ) from None
        except SwitchLocked as exc:
            if exc.locked:
                message = _lock_message(board.lock_reason) or board.mask(exc.reason)
                raise AdminError(message, status=403, code="locked", reason=message) from None
            raise AdminError(board.mask(exc.reason), status=409, code="busy") from None
        except TargetUnavailable as exc:
            raise AdminError(
                f"{board.mask(str(exc))}; the active target is still {board.active!r}",
                status=503,
                code="target_unavailable",
                target=exc.target,
                active=board.active,
            ) from None
        except ConfigError as exc:
            logger.error("admin switch to %r failed: %s", target, board.mask(str(exc)))
            raise AdminError(
                "the server could not record the switch; see its log", status=500, code="server"
            ) from None
        except SchemaMismatch as exc:
            raise AdminError(
                board.mask(str(exc)),
                status=409,
                code="schema_mismatch",
                databaseRevisions=list(exc.database_revisions),
                codeRevisions=list(exc.code_revisions),
            ) from None
        except DBSwapError as exc:  # any other refusal: nothing changed
            raise AdminError(board.mask(str(exc)), status=409, code="refused") from None
        return {
            "success": True,
            "target": result.target,
            "previous": result.previous,
            "generation": result.generation,
            "changed": result.changed,
            "durationMs": round(result.duration * 1000, 3),
            "useProduction": result.target == PRODUCTION,
            "readOnly": result.read_only,
            "expiresAt": result.expires_at,
            "returnTo": result.return_to,
            "hotSwap": True,
            "requiresRestart": False,
            **_acknowledged(result.acknowledgement),
        }

    # -- the page --------------------------------------------------------------

    def render_page(
        self,
        *,
        user: str,
        csrf_token: str,
        urls: Mapping[str, str],
        script_nonce: str,
        health: Mapping[str, Health],
        history: Sequence[Mapping[str, Any]],
        home: str = "/",
    ) -> str:
        status = self.status()
        for row in status["targets"]:
            h = health.get(row["name"])
            row["health"] = {
                "checked": h is not None,
                "ok": bool(h and h.ok),
                "latencyMs": h.latency_ms if h else None,
                "error": self.board.mask(h.error) if h and h.error else None,
            }
        return _template("configuration.html").render(
            status=status,
            user=user,
            csrf_token=csrf_token,
            urls=dict(urls),
            nonce=script_nonce,
            history=list(history),
            home=home,
            error=None,
        )

    @staticmethod
    def render_token_page(*, urls: Mapping[str, str], script_nonce: str, home: str = "/") -> str:
        """The page for bearer-token admins: a shell with no data; its script asks for the token."""
        return _template("token_page.html").render(urls=dict(urls), nonce=script_nonce, home=home)

    @staticmethod
    def render_error_page(status: int, message: str, *, script_nonce: str, home: str = "/") -> str:
        return _template("configuration.html").render(
            status=None,
            error={"status": status, "message": message, "home": home},
            nonce=script_nonce,
        )


def page_headers(script_nonce: str) -> dict[str, str]:
    """Headers for the HTML page: no caching, no framing, only our own inline code."""
    csp = (
        f"default-src 'none'; script-src 'nonce-{script_nonce}'; "
        f"style-src 'nonce-{script_nonce}'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    return {
        "Cache-Control": "no-store",
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
    }


def parse_limit(values: Sequence[str]) -> int:
    """``?limit=N`` for the history: one whole number from 1 to MAX_HISTORY."""
    expected = f"limit must be a whole number from 1 to {MAX_HISTORY}"
    if not values:
        return DEFAULT_HISTORY
    if len(values) > 1:
        raise AdminError(f"give limit once; {expected}", status=422, code="invalid_query")
    raw = values[0].strip()
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6 and 1 <= int(raw) <= MAX_HISTORY):
        shown = values[0][:20]
        raise AdminError(f"{expected}, not {shown!r}", status=422, code="invalid_query")
    return int(raw)


def _checked(request: SwitchRequest) -> SwitchRequest:
    if request.then == request.target:
        raise _invalid("'thenTarget' must name another target than the one switched to")
    return request


def _time_limit(data: Mapping[str, Any]) -> dict[str, Any]:
    """``forSeconds`` and ``thenTarget`` of a switch body, checked (422 otherwise)."""
    seconds, then = data.get("forSeconds"), data.get("thenTarget")
    if seconds is not None:
        bounds = f"{MIN_LIMIT_SECONDS:g} to {MAX_LIMIT_SECONDS:g}"
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
            raise _invalid(f"'forSeconds' must be a number of seconds ({bounds}) or null")
        if not MIN_LIMIT_SECONDS <= seconds <= MAX_LIMIT_SECONDS:  # inf (1e400) fails too
            raise _invalid(f"'forSeconds' must be from {bounds} seconds, not {seconds!r:.20}")
    if then is not None:
        if not isinstance(then, str) or not then.strip() or len(then) > MAX_TARGET_CHARS:
            raise _invalid(f"'thenTarget' must name a target, not {_json_type(then)}")
        if seconds is None:
            raise _invalid("'thenTarget' needs 'forSeconds' (where a time-boxed switch returns)")
        then = then.strip().lower()
    return {"for_seconds": None if seconds is None else float(seconds), "then": then}


def followers_payload(found: list[Follower] | None, generation: int) -> dict[str, Any] | None:
    """How many processes on how many hosts follow the state, and which lag (None: unknown)."""
    if found is None:
        return None
    lagging = [f for f in found if f.generation < generation]
    return {
        "total": len(found),
        "hosts": len({f.host for f in found}),
        "current": len(found) - len(lagging),
        "lagging": [f.to_dict() for f in lagging],
        "processes": [f.to_dict() for f in found],
    }


def _acknowledged(ack: Acknowledgement | None) -> dict[str, Any]:
    """A switch with ``wait``: who serves the new generation (``acknowledged`` of ``followers``)."""
    if ack is None:
        return {}
    followers = [
        f.to_dict() | {"acknowledged": f.generation >= ack.generation} for f in ack.followers or ()
    ]
    return {
        "acknowledged": ack.acknowledged if ack.followers is not None else None,
        "followers": followers if ack.followers is not None else None,
        "waitedMs": round(ack.seconds * 1000, 1),
    }


def _json_error(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return "a value cannot be read"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("dbswap", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def _template(name: str) -> jinja2.Template:
    return _environment().get_template(name)
