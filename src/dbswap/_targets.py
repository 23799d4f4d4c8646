"""Targets, and reading them from the environment (the one place that reads it).

A target is a name, a database URL and per-target settings. Every
``DATABASE_URL_<NAME>`` makes a target ``<name>``; every ``<SETTING>_<NAME>``
is a setting of that target. ``.env`` then ``.env.local`` are read (later
wins) and the real environment beats both. Nothing here writes anything.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType

from dotenv import dotenv_values
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from ._errors import ConfigError
from ._masking import is_secret_name, mask_setting, mask_url, password_forms

logger = logging.getLogger("dbswap")

URL_PREFIX = "DATABASE_URL_"
MAX_SECONDS = 3600.0  # the longest timeout or grace a setting may ask for
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_LOOPBACK_NAMES = {"", "localhost", "localhost.localdomain", "ip6-localhost"}

# Bare schemes get the driver that dbswap's extras install.
_DEFAULT_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


@dataclass(frozen=True)
class Target:
    """A named database: its URL and its own settings (masked in every repr)."""

    name: str
    url: str = field(repr=False)
    settings: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(
                f"invalid target name {self.name!r}: use lower-case letters, digits and _"
            )
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))

    def __repr__(self) -> str:
        return f"Target(name={self.name!r}, url={self.masked_url!r})"

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    @cached_property  # parsed once: a switch asks for it several times
    def sa_url(self) -> URL:
        return make_url(self.url)

    @cached_property
    def dialect(self) -> str:
        return self.sa_url.get_backend_name()

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_loopback(self) -> bool:
        """True when the database lives on this machine (SQLite, socket, loopback)."""
        if self.is_sqlite:
            return True
        host = (self.sa_url.host or "").strip("[]").lower()
        if host in _LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be shown: secret settings, the URL password in every form."""
        found = {str(v) for k, v in self.settings.items() if is_secret_name(k) and v}
        found |= password_forms(self.url)
        # As SQLAlchemy writes it, which may differ from how it was given (not a URL:
        # password_forms(self.url) and mask_url() cover it).
        with contextlib.suppress(ArgumentError, ValueError):
            found |= password_forms(self.sa_url.render_as_string(hide_password=False))
        return tuple(sorted(found))

    def masked_settings(self) -> dict[str, str]:
        return {k: mask_setting(k, v) for k, v in sorted(self.settings.items())}


def normalize_url(url: str, base_dir: Path) -> str:
    """Give bare schemes a driver and make relative SQLite paths absolute.

    Every process then opens the same file whatever its working directory.
    """
    try:
        parsed = make_url(url.strip())
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise ConfigError(
            f"not a database URL: {mask_url(url)!r} ({_unparsable(url, exc)}); "
            "expected e.g. postgresql://user:password@host:5432/dbname"
        ) from None
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ConfigError(f"the port of {mask_url(url)!r} must be from 1 to 65535")
    _check_dialect(parsed, url)
    driver = _DEFAULT_DRIVERS.get(parsed.drivername)
    if driver:
        parsed = parsed.set(drivername=driver)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            parsed = parsed.set(database=str((base_dir / database).resolve()))
    return parsed.render_as_string(hide_password=False)


def _unparsable(url: str, exc: Exception) -> str:
    """Why SQLAlchemy could not read ``url``, in words."""
    if isinstance(exc, ValueError):
        host = url.split("://", 1)[-1]
        host = host[host.rfind("@") + 1 :].split("/", 1)[0]
        if host.startswith("[") and "]" not in host:
            return "an IPv6 host needs its closing ']', e.g. [::1]:5432"
        return "its port is not a number"
    if "://" not in url:
        if "=" in url:
            return "a key=value connection string: write it as a URL"
        return "it does not begin with a database type such as postgresql://"
    return "SQLAlchemy cannot read it"


# Dialects of SQLAlchemy itself that have no module of their own name.
_BUILTIN_WITHOUT_MODULE = {"mariadb"}


def _check_dialect(parsed: URL, url: str) -> None:
    """Refuse a database type SQLAlchemy does not know, without importing its dialect."""
    backend = parsed.get_backend_name()
    if backend in _BUILTIN_WITHOUT_MODULE or backend in _DEFAULT_DRIVERS:
        return
    try:
        if backend and importlib.util.find_spec(f"sqlalchemy.dialects.{backend}") is not None:
            return  # one of SQLAlchemy's own: loaded when its engine is made
    except (ImportError, ValueError):
        pass
    try:
        parsed.get_dialect()  # a third-party dialect: loading it is the check
    except NoSuchModuleError:
        raise ConfigError(
            f"unknown database type {backend!r} in {mask_url(url)!r}: use postgresql://, "
            "mysql://, mariadb:// or sqlite:// (or install a SQLAlchemy dialect for it)"
        ) from None
    except Exception as exc:  # its module is there but does not load
        raise ConfigError(
            f"cannot load the SQLAlchemy dialect for {backend!r} ({type(exc).__name__})"
        ) from None


def check_seconds(value: object, what: str, *, zero_ok: bool = False) -> float:
    """``value`` as a number of seconds within bounds (0 allowed if ``zero_ok``), or ConfigError.

    inf, nan, huge and negative values would hang or crash a thread later, far from
    their cause: they are refused here, where the message can name them.
    """
    bounds = f"{'from 0 to' if zero_ok else 'more than 0 and at most'} {MAX_SECONDS:g}"
    refused = ConfigError(f"{what} must be a number of seconds {bounds}, not {repr(value)[:40]}")
    if isinstance(value, bool):
        raise refused
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise refused from None
    low_ok = seconds >= 0 if zero_ok else seconds > 0
    if not (low_ok and seconds <= MAX_SECONDS):  # nan fails both comparisons
        raise refused
    return seconds


def read_environment(
    environ: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None
) -> dict[str, str]:
    """``.env``, then ``.env.local``, then the real (or injected) environment."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    merged: dict[str, str] = {}
    for name in (".env", ".env.local"):
        path = base / name
        if path.is_file():
            try:
                values = dotenv_values(path)
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read {name}: {exc.__class__.__name__}") from None
            merged.update({k: v for k, v in values.items() if v is not None})
    merged.update(os.environ if environ is None else environ)
    return merged


def discover_targets(env: Mapping[str, str], base_dir: Path) -> dict[str, Target]:
    """Every ``DATABASE_URL_<NAME>`` as a target, with its ``<SETTING>_<NAME>`` values."""
    urls = {
        key[len(URL_PREFIX) :].lower(): value
        for key, value in env.items()
        if key.startswith(URL_PREFIX) and value.strip()
    }
    if "DATABASE_URL" in env:
        logger.warning(
            "DATABASE_URL is ignored by dbswap; set DATABASE_URL_LOCAL and "
            "DATABASE_URL_PRODUCTION (one DATABASE_URL_<NAME> per target) instead"
        )
    # Longest names first, so FOO_READ_REPLICA belongs to read_replica, not replica.
    suffixes = sorted(urls, key=len, reverse=True)
    settings: dict[str, dict[str, str]] = {name: {} for name in urls}
    for key, value in env.items():
        if key.startswith((URL_PREFIX, "DBSWAP_")):
            continue
        for name in suffixes:
            suffix = "_" + name.upper()
            if key.endswith(suffix) and len(key) > len(suffix):
                settings[name][key[: -len(suffix)]] = value
                break
    targets = {}
    for name, url in sorted(urls.items()):
        try:
            targets[name] = Target(name, normalize_url(url, base_dir), settings[name])
        except ConfigError as exc:  # say which variable to fix
            raise ConfigError(f"{URL_PREFIX}{name.upper()}: {exc}") from None
    return targets


def validate_targets(targets: Mapping[str, Target], allow_remote_local: bool) -> None:
    """Refuse configurations that point somewhere dangerous or ambiguous."""
    local = targets.get("local")
    if local is not None and not local.is_loopback and not allow_remote_local:
        raise ConfigError(
            f"target 'local' points at a remote host ({local.masked_url}); "
            "point it at this machine or set DBSWAP_ALLOW_REMOTE_LOCAL=1"
        )
    seen: dict[str, str] = {}
    for target in targets.values():
        key = target.sa_url.render_as_string(hide_password=True)
        if key in seen:
            raise ConfigError(
                f"targets {seen[key]!r} and {target.name!r} have the same URL "
                f"({target.masked_url}); each target needs its own database"
            )
        seen[key] = target.name
