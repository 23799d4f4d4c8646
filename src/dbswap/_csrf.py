"""CSRF protection for the admin page: a signed double-submit token plus an Origin check.

The page sets a random *nonce* in an HttpOnly, SameSite=Strict cookie and
renders ``HMAC(secret, nonce)`` into the page. Its JavaScript sends that token
back in the ``X-CSRF-Token`` header. A hostile page can make the browser send
the cookie, but it can neither read the token nor set a custom header on a
cross-origin request, and a forged cookie without the secret yields no valid
token. Requests from another origin are refused before anything else.

Requests that carry an ``Authorization`` header are API clients, not
browsers riding on a cookie: browsers never add that header cross-origin on
their own, so those requests are exempt.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ._files import read_file

COOKIE_NAME = "dbswap_csrf"
HEADER_NAME = "X-CSRF-Token"
_NONCE = re.compile(r"^[A-Za-z0-9_\-]{32,128}$")
_SAFE_FETCH_SITES = {"same-origin", "none"}
logger = logging.getLogger("dbswap")


class CsrfRefused(Exception):
    """The request looks forged; the message says what a real client must send."""


@dataclass(frozen=True)
class RequestFacts:
    """What the CSRF check needs from a request, whatever the framework.

    ``origin`` is this server's own origin as the client addressed it
    (``scheme://host[:port]``); header names are case-insensitive.
    """

    origin: str
    headers: Mapping[str, str]
    cookies: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


KEY_FILE = "csrf.key"


def shared_key(runtime_dir: Path) -> bytes | None:
    """A random key in ``<runtime dir>/csrf.key``, made once, then read by every process.

    So the workers of one host accept each other's tokens without configuration.
    None (and a warning) when the directory cannot hold it.
    """
    path = runtime_dir / KEY_FILE
    try:
        with contextlib.suppress(FileNotFoundError):
            key = read_file(path, 4096)  # never through a planted link (a known key)
            if len(key) >= 32:
                return key
        runtime_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".csrf.", dir=runtime_dir)  # mode 0600
        try:
            os.write(fd, secrets.token_bytes(32))
            os.fsync(fd)
            os.close(fd)
            try:
                os.link(tmp, path)  # whole or not at all; the first process to get here wins
            except FileExistsError:
                if len(read_file(path, 4096)) < 32:  # a truncated leftover: replace it
                    os.replace(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return read_file(path, 4096)
    except OSError as exc:
        logger.warning(
            "cannot keep the CSRF key in %s (%s): each process makes its own, so give every "
            "worker the same csrf_secret",
            path,
            exc.strerror or type(exc).__name__,
        )
        return None


class CsrfGuard:
    """Issues and verifies tokens with a per-app secret.

    Give every process of one app the same ``secret`` (a random one is made
    otherwise, which suits a single process).
    """

    def __init__(
        self, secret: str | bytes | None = None, trusted_origins: Iterable[str] = ()
    ) -> None:
        if secret is None:
            secret = secrets.token_bytes(32)
        self._key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        if len(self._key) < 16:
            raise ValueError("the CSRF secret must be at least 16 bytes long")
        self._trusted = {o.rstrip("/").lower() for o in trusted_origins}

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_urlsafe(32)

    @staticmethod
    def valid_nonce(nonce: str | None) -> bool:
        return nonce is not None and bool(_NONCE.match(nonce))

    def token_for(self, nonce: str) -> str:
        return hmac.new(self._key, nonce.encode("ascii"), hashlib.sha256).hexdigest()

    def issue(self, cookie_nonce: str | None) -> tuple[str | None, str]:
        """``(nonce to set as the cookie, or None to keep it; token for the page)``."""
        if cookie_nonce is not None and self.valid_nonce(cookie_nonce):
            return None, self.token_for(cookie_nonce)
        nonce = self.new_nonce()
        return nonce, self.token_for(nonce)

    def check(self, facts: RequestFacts) -> None:
        """Raise ``CsrfRefused`` unless the request is an API client or same-origin with a token."""
        if facts.header("authorization") is not None:
            return
        self.check_origin(facts)
        nonce = facts.cookies.get(COOKIE_NAME)
        token = facts.header(HEADER_NAME)
        if not token:
            raise CsrfRefused(
                f"missing {HEADER_NAME} header: send the token of the admin page, "
                "or authenticate with an Authorization header"
            )
        if nonce is None or not self.valid_nonce(nonce):
            raise CsrfRefused(f"missing or malformed {COOKIE_NAME} cookie: reload the admin page")
        expected = self.token_for(nonce).encode("ascii")
        if not hmac.compare_digest(expected, token.strip().encode("utf-8", "surrogatepass")):
            raise CsrfRefused(f"invalid {HEADER_NAME} token: reload the admin page")

    def check_origin(self, facts: RequestFacts) -> None:
        """Refuse a browser request sent by a page of another origin."""
        origin = facts.header("origin")
        if origin is not None:
            allowed = {facts.origin.rstrip("/").lower(), *self._trusted}
            if origin.rstrip("/").lower() not in allowed:
                raise CsrfRefused(f"cross-origin request refused (Origin {origin[:100]!r})")
            return
        site = facts.header("sec-fetch-site")
        if site is not None and site.lower() not in _SAFE_FETCH_SITES:
            raise CsrfRefused(f"cross-site request refused (Sec-Fetch-Site: {site[:40]})")
