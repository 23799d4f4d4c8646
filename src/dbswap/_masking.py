"""Hiding passwords and tokens. Every output of dbswap goes through here.

Three layers: the known secrets of the configured targets, in every form they
may take (decoded, as written in the URL, percent-encoded); the password of
anything that looks like a URL; and ``password=...`` values (URL queries,
libpq ``key=value`` strings). A string that is not a URL SQLAlchemy can read
is masked conservatively: whatever precedes an ``@`` may be a password.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote

MASK = "***"
_SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "KEY")

# One URL, by SQLAlchemy's own grammar: the password runs from the user's ':' to the
# first '@', whatever it holds (spaces, '/', percent-escapes).
_URL_USERINFO = re.compile(r"^(?P<head>\s*[\w+]+://[^:/]*:)(?P<password>[^@]*)@")
_URL_SCHEME = re.compile(r"^\s*[\w+]+://")
# A URL inside free text: the same, but never across a line end, a quote or a
# backslash, so a JSON line or a repr around it stays intact.
_TEXT_URL_PASSWORD = re.compile(
    r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s'\"\\]*:)[^@\n\r'\"\\]*@"
)
# ?password=...&sslkey=...  ->  ?password=***&sslkey=***
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&](?:[a-z_]*(?:password|passwd|pwd|token|secret|key)[a-z_]*)=)[^&\s'\"\\]*",
    re.IGNORECASE,
)
# libpq's key=value form: host=h user=u password=...  ->  password=***
_KEY_VALUE_SECRET = re.compile(
    r"(?P<head>(?<![\w.\-])(?:[a-z_]*(?:password|passwd|pwd|token|secret)[a-z_]*)\s*=\s*)"
    r"(?:'[^'\n]*'|[^\s'\"&\\]+)",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """True for setting names whose values must never be shown."""
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS)


def mask_url(url: str) -> str:
    """A URL (or what was given as one) with its password and secret values replaced by ``***``."""
    masked = url
    if _URL_SCHEME.match(url):
        masked = _URL_USERINFO.sub(lambda m: m.group("head") + MASK + "@", url, count=1)
    elif "://" not in url:
        # No scheme at all: anything before an '@' may be a password (user:pw@host).
        at = url.rfind("@")
        if at > 0 and ":" in url[:at]:
            masked = MASK + url[at:]
    return mask_text(masked)


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask every known secret value, URL passwords and secret ``key=value`` values."""
    # Known values first and longest first, so a secret that contains another is masked whole.
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, MASK)
    text = _TEXT_URL_PASSWORD.sub(lambda m: m.group("head") + MASK + "@", text)
    text = _QUERY_SECRET.sub(lambda m: m.group("head") + MASK, text)
    return _KEY_VALUE_SECRET.sub(lambda m: m.group("head") + MASK, text)


def mask_setting(name: str, value: str) -> str:
    """A setting as it may be shown: secret ones fully masked, URLs without passwords."""
    return MASK if is_secret_name(name) else mask_url(value)


def password_forms(url: str) -> set[str]:
    """Every form a URL's password may be shown in: as written, decoded, re-encoded."""
    match = _URL_USERINFO.match(url)
    if match is None or not match.group("password"):
        return set()
    written = match.group("password")
    decoded = unquote(written)
    return {written, decoded, quote(decoded, safe=""), quote_plus(decoded)} - {""}
