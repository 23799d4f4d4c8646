"""Personal previews: one admin's own requests on another target, everybody else's unmoved.

On a shared dev or staging server a switch moves everybody. A preview moves
only the admin who asks for it: the answer to ``POST
/api/admin/database/preview`` sets a cookie, signed with the app's key, that
names the admin (as ``authorize`` returned them), the target, the mode and
when it ends (15 min by default, 1 h at most). The adapters' request pinning
honours it: a request that carries a valid cookie *and* whose ``authorize``
names the same admin is pinned to the preview's target instead of the active
one. Nothing is switched: the shared state, its generation and every other
request stay where they are. Starting and stopping are audited (outcomes
``preview`` and ``preview-ended``, with no generation).

A preview of ``production`` is read-only unless the admin asks otherwise
(``"readOnly": false``); of another target, it takes that target's default
mode (``DBSWAP_READONLY``). ``DBSWAP_MAX_PRODUCTION`` caps a preview of
production as it caps a switch there: it lasts that long at most.

A stopped preview is over for every copy of its cookie: each cookie carries a
random id, and stopping a preview (or starting another) revokes that id in the
state store (the runtime dir, or Redis for a fleet) until the cookie would
have expired anyway.

The key is the one the admin page's CSRF tokens are made with (``csrf_secret``,
Flask's ``SECRET_KEY``, or the runtime dir's shared key; Django's
``SECRET_KEY``), derived for this one use, so a CSRF token is never a valid
signature. A cookie that is malformed, forged, expired, another admin's or of a
target this app does not have is ignored, and the response clears it.

This module decides everything (payloads, statuses, the cookie); the adapters
only translate requests and responses, as with ``dbswap._admin``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine

from . import _testguard
from ._admin import MAX_TARGET_CHARS, AdminError, _json_type, json_object
from ._audit import AuditLog
from ._csrf import CsrfGuard, CsrfRefused, RequestFacts, shared_key
from ._engines import check_read_only_possible
from ._errors import ConfigError, DBSwapError
from ._state import utc_text
from ._switchboard import PRODUCTION, Switchboard
from ._timebox import format_duration

COOKIE_NAME = "dbswap_preview"
DEFAULT_SECONDS = 900.0
MIN_SECONDS = 1.0
MAX_SECONDS = 3600.0
MAX_COOKIE_CHARS = 2048  # a real one is ~150 characters: anything longer is not ours
STARTED, ENDED = "preview", "preview-ended"  # the audit lines' outcomes
EXPECTED_BODY = (
    '{"target": "<name>"}, optionally with "forSeconds": 1 to 3600 (default 900) and '
    '"readOnly": true|false (default: read-only for production, else the target\'s '
    'default); or {"stop": true}'
)
_FIELDS = ("target", "forSeconds", "readOnly", "stop")
_VERSION = b"dbswap-preview-v2\0"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")

Pin = tuple[str, bool, Engine]  # (target, read-only, engine), as sessions are pinned


@dataclass(frozen=True)
class Preview:
    """One admin's preview: who, which target, in which mode, until when."""

    user: str
    target: str
    read_only: bool
    expires: float  # seconds since the epoch
    id: str = ""  # random: what stopping the preview revokes

    @property
    def expires_at(self) -> str:
        """The end, written as the state writes times (``2025-01-31T12:15:00.000Z``)."""
        return utc_text(datetime.fromtimestamp(self.expires, timezone.utc))

    def seconds_left(self, now: float | None = None) -> float:
        return max(0.0, self.expires - (time.time() if now is None else now))

    def payload(self, now: float | None = None) -> dict[str, Any]:
        return {
            "user": self.user,
            "target": self.target,
            "readOnly": self.read_only,
            "expiresAt": self.expires_at,
            "secondsLeft": round(self.seconds_left(now), 1),
        }


@dataclass(frozen=True)
class PreviewRequest:
    """A validated preview body: start (``target``) or stop (``target`` None)."""

    target: str | None
    for_seconds: float = DEFAULT_SECONDS
    read_only: bool | None = None  # None: read-only for production, else the target's default


def _invalid(message: str) -> AdminError:
    return AdminError(f"{message}; expected {EXPECTED_BODY}", status=422, code="invalid_body")


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # whatever authorize returned


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Previews:
    """The previews of one board: the cookie, and starting, stopping and reading them.

    ``secret`` is the admin page's CSRF secret (None: the runtime dir's shared
    key, as ``AdminCore`` does), so every process that accepts the page's
    tokens accepts its previews too. ``clock`` tells the time (tests pass their own).
    """

    def __init__(
        self,
        board: Switchboard,
        secret: str | bytes | None = None,
        *,
        check_timeout: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if secret is None:
            secret = shared_key(board.runtime_dir)
        if secret is None:  # shared_key said why; previews then hold in this process only
            secret = secrets.token_bytes(32)
        key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        # Derived: a CSRF token (HMAC of a nonce with the same secret) is never a signature.
        self._key = hmac.new(key, b"dbswap preview cookies", hashlib.sha256).digest()
        self.board = board
        self.check_timeout = check_timeout
        self._clock = clock

    # -- the cookie ------------------------------------------------------------

    def sign(self, preview: Preview) -> str:
        """The cookie value: ``<base64 JSON>.<base64 HMAC-SHA256>`` (cookie-safe characters)."""
        fields = {
            "u": preview.user,
            "t": preview.target,
            "r": preview.read_only,
            "e": round(preview.expires, 3),
            "i": preview.id,
        }
        data = _b64(json.dumps(fields, separators=(",", ":"), sort_keys=True).encode("utf-8"))
        return f"{data}.{_b64(self._mac(data))}"

    def _mac(self, data: str) -> bytes:
        return hmac.new(self._key, _VERSION + data.encode("ascii"), hashlib.sha256).digest()

    def read(self, value: str | None) -> Preview | None:
        """The preview a cookie holds, or None: absent, malformed, forged, expired, or of a
        target this board cannot pin (unknown, refused under pytest, another than a
        fixed process's)."""
        if not value or len(value) > MAX_COOKIE_CHARS:
            return None
        data, _, mac = value.partition(".")
        try:
            if not data.isascii() or not hmac.compare_digest(self._mac(data), _unb64(mac)):
                return None
            fields = json.loads(_unb64(data))
        except (ValueError, binascii.Error, RecursionError):
            return None
        if not isinstance(fields, dict):
            return None
        user, target, read_only, expires, token = (fields.get(k) for k in "utrei")
        if not (
            isinstance(user, str)
            and user
            and isinstance(target, str)
            and isinstance(read_only, bool)
            and isinstance(expires, (int, float))
            and not isinstance(expires, bool)
            and math.isfinite(expires)
            and isinstance(token, str)
            and _TOKEN.fullmatch(token)
        ):
            return None
        preview = Preview(user, target, read_only, float(expires), token)
        now = self._clock()
        if not now < preview.expires <= now + MAX_SECONDS + 60:  # ended, or never ours
            return None
        if self._unusable(target) is not None or self.board._store.revoked(token):
            return None  # stopped: every copy of the cookie is over
        return preview

    def honoured(self, value: str | None, user: Callable[[], str | None]) -> Preview | None:
        """The preview to pin a request to: a valid cookie of the admin ``user()`` names.

        ``user`` runs the app's ``authorize`` (None when it refuses); it is called
        only for a valid cookie, so requests without one cost a dictionary lookup.
        """
        preview = self.read(value)
        if preview is None:
            return None
        who = user()
        if who is None or not hmac.compare_digest(_bytes(who), _bytes(preview.user)):
            return None  # another admin's cookie, or nobody's: it does nothing
        return preview

    def _unusable(self, target: str) -> AdminError | None:
        """Why this board cannot pin ``target`` for a preview (None: it can)."""
        board = self.board
        if target not in board.targets:
            known = ", ".join(board.targets)
            return AdminError(
                f"unknown target {target[:MAX_TARGET_CHARS]!r}; known targets: {known}",
                status=404,
                code="unknown_target",
                knownTargets=list(board.targets),
            )
        if target in board._forbidden:
            return AdminError(_testguard.refusal(target), status=403, code="refused")
        fixed = board._fixed
        if fixed is not None and target != fixed:
            reason = "DBSWAP_ENV=production" if board.production_lock else "dbswap run"
            return AdminError(
                f"this process is fixed to {fixed!r} by {reason}: it cannot preview {target!r}",
                status=403,
                code="locked",
            )
        return None

    def pin(self, preview: Preview, is_async: bool = False) -> Pin:
        """What a session of a previewing request is pinned to (Flask's request pin)."""
        target = self.board.targets[preview.target]
        return (
            preview.target,
            preview.read_only,
            self.board._engines.bind(target, is_async, preview.read_only),
        )

    # -- the API -----------------------------------------------------------------

    def parse(self, body: bytes, content_type: str | None) -> PreviewRequest:
        """The preview a body asks for, or an AdminError that says what is expected."""
        data = json_object(body, content_type, EXPECTED_BODY, _FIELDS)
        if "stop" in data:
            if data["stop"] is not True or len(data) > 1:
                raise _invalid("'stop' must be true, and alone")
            return PreviewRequest(None)
        name, seconds, read_only = (data.get(k) for k in ("target", "forSeconds", "readOnly"))
        known = ", ".join(self.board.targets)
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_TARGET_CHARS:
            raise _invalid(f"'target' must name a target (one of: {known})")
        if seconds is None:
            seconds = DEFAULT_SECONDS
        bounds = f"{MIN_SECONDS:g} to {MAX_SECONDS:g}"
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
            raise _invalid(f"'forSeconds' must be a number of seconds ({bounds}) or null")
        if not MIN_SECONDS <= seconds <= MAX_SECONDS:  # nan and 1e400 (inf) fail too
            raise _invalid(f"'forSeconds' must be from {bounds} seconds, not {seconds!r:.20}")
        if read_only is not None and not isinstance(read_only, bool):
            raise _invalid(f"'readOnly' must be true, false or null, not {_json_type(read_only)}")
        return PreviewRequest(name.strip().lower(), float(seconds), read_only)

    def start(
        self, wanted: PreviewRequest, user: str, cookie: str | None = None
    ) -> tuple[dict[str, Any], Preview]:
        """Check the target and audit the preview; the caller sets the cookie (``sign``).

        ``cookie``: the request's preview cookie; the preview it holds is over (revoked).
        Blocks up to ``check_timeout`` (a health check): run it off an event loop.
        """
        assert wanted.target is not None
        started = time.perf_counter()
        board, name = self.board, wanted.target
        refused = self._unusable(name)
        if refused is not None:
            raise refused
        mode = wanted.read_only
        if mode is None:
            mode = name == PRODUCTION or name in board.read_only_targets
        if mode:
            try:
                check_read_only_possible(board.targets[name])
            except ConfigError as exc:
                raise AdminError(board.mask(str(exc)), status=409, code="refused") from None
        health = board.check(name, timeout=self.check_timeout)[0]
        if not health.ok:
            raise AdminError(
                f"{name!r} did not answer its health check "
                f"({board.mask(health.error or 'no answer')}): no preview started",
                status=503,
                code="target_unavailable",
                target=name,
            )
        seconds, capped = wanted.for_seconds, None
        most = board._timebox.max_production
        if name == PRODUCTION and most is not None and seconds > most:
            seconds, capped = most, f"capped to {format_duration(most)} by DBSWAP_MAX_PRODUCTION"
        self._revoke(self.honoured(cookie, lambda: user))  # the preview it replaces
        token = secrets.token_urlsafe(18)
        preview = Preview(user, name, mode, self._clock() + seconds, token)
        active, generation = self.shared(board)
        self._audit(
            STARTED,
            user,
            active,
            name,
            started,
            read_only=mode,
            for_seconds=seconds,
            expires_at=preview.expires_at,
            **({"capped": capped} if capped else {}),
        )
        payload = {
            "success": True,
            **preview.payload(self._clock()),
            "forSeconds": seconds,
            "capped": capped,
            "activeTarget": active,
            "generation": generation,
            "durationMs": round((time.perf_counter() - started) * 1000, 3),
            "cookie": COOKIE_NAME,
        }
        return payload, preview

    def stop(self, cookie: str | None, user: str) -> dict[str, Any]:
        """End this admin's preview (audited if there was one); the caller clears the cookie."""
        started = time.perf_counter()
        preview = self.honoured(cookie, lambda: user)
        active, generation = self.shared(self.board)
        if preview is not None:
            self._revoke(preview)
            self._audit(ENDED, user, active, preview.target, started, read_only=preview.read_only)
        return {
            "success": True,
            "stopped": preview is not None,
            "target": preview.target if preview is not None else None,
            "activeTarget": active,
            "generation": generation,
        }

    def state(self, cookie: str | None, user: str) -> dict[str, Any]:
        """This admin's preview (None without one), and the target everybody else uses."""
        preview = self.honoured(cookie, lambda: user)
        active, generation = self.shared(self.board)
        return {
            "preview": preview.payload(self._clock()) if preview is not None else None,
            "activeTarget": active,
            "generation": generation,
            "defaultSeconds": DEFAULT_SECONDS,
            "maxSeconds": MAX_SECONDS,
        }

    def _revoke(self, preview: Preview | None) -> None:
        """Make every copy of ``preview``'s cookie worthless (until it would have ended)."""
        if preview is None:
            return
        try:
            self.board._store.revoke(preview.id, preview.expires)
        except (OSError, DBSwapError) as exc:
            raise AdminError(
                f"cannot end the preview for every copy of its cookie "
                f"({self.board.mask(str(exc))}); try again",
                status=503,
                code="state_unavailable",
            ) from None

    @staticmethod
    def shared(board: Switchboard) -> tuple[str, int]:
        """The target and generation everybody uses, even from inside a previewing request."""
        with unpinned(board):
            state = board.state
        return state.target, state.generation

    def _audit(
        self,
        outcome: str,
        user: str,
        active: str,
        target: str,
        started: float,
        **extra: Any,
    ) -> None:
        # The plain AuditLog's record: a preview is not a switch, so it is neither counted
        # nor logged as one (dbswap.switch, metrics); its line still goes to dbswap.audit.
        AuditLog.record(
            self.board._audit,
            outcome=outcome,
            user=user,
            source=active,
            target=target,
            generation=None,  # nothing was committed
            duration_ms=(time.perf_counter() - started) * 1000,
            **extra,
        )


@contextmanager
def unpinned(board: Switchboard) -> Iterator[None]:
    """The shared target for the code in the block, even inside a ``board.pinned()`` one."""
    token = board._block_pin.set(None)
    try:
        yield
    finally:
        board._block_pin.reset(token)


def check_same_origin(guard: CsrfGuard, facts: RequestFacts) -> None:
    """Refuse a browser's request from another origin (403); API clients pass.

    Stopping a preview needs no CSRF token, so a banner on any page of the app
    can offer it: it only brings the caller back to what everybody sees, and
    the cookie is SameSite=Strict. Starting one takes the token, as a switch does.
    """
    if facts.header("authorization") is not None:
        return
    try:
        guard.check_origin(facts)
    except CsrfRefused as exc:
        raise AdminError(str(exc), status=403, code="csrf") from None


def cookie_header_to_clear(secure: bool) -> str:
    """A ``Set-Cookie`` value that makes the browser forget the preview cookie."""
    return (
        f"{COOKIE_NAME}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; HttpOnly; "
        f"SameSite=Strict{'; Secure' if secure else ''}"
    )


def cookie_options(preview: Preview, now: float | None = None) -> Mapping[str, Any]:
    """What every adapter's ``set_cookie`` gets besides the name, value and ``secure``.

    HttpOnly: the page reads the preview from the API, never from the cookie.
    SameSite=Strict: a request from another site carries none, so it cannot
    start, stop or ride on a preview. ``Path=/``: every page of the app.
    """
    return {
        "max_age": max(1, math.ceil(preview.seconds_left(now))),
        "httponly": True,
        "path": "/",
    }
