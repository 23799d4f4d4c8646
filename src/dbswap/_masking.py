"""Hiding passwords and tokens. Every output of dbswap goes through here."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
_SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "KEY")

# scheme://user:password@host  ->  scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)[^@\s]*@")
# ?password=...&sslkey=...  ->  ?password=***&sslkey=***
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&](?:[a-z_]*(?:password|passwd|pwd|token|secret|key)[a-z_]*)=)[^&\s'\"]*",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """True for setting names whose values must never be shown."""
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS)


def mask_url(url: str) -> str:
    """The URL with its password (and secret query values) replaced by ``***``."""
    return mask_text(url)


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask URL passwords, secret query values and every known secret value."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + "@", text)
    text = _QUERY_SECRET.sub(lambda m: m.group("head") + MASK, text)
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, MASK)
    return text


def mask_setting(name: str, value: str) -> str:
    """A setting as it may be shown: secret ones fully masked, URLs without passwords."""
    return MASK if is_secret_name(name) else mask_url(value)
