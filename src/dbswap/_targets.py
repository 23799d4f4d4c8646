"""Targets, and reading them from the environment (the one place that reads it).

A target is a name, a database URL and per-target settings. Every
``DATABASE_URL_<NAME>`` makes a target ``<name>``; every ``<SETTING>_<NAME>``
is a setting of that target. ``.env`` then ``.env.local`` are read (later
wins) and the real environment beats both. Nothing here writes anything.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from dotenv import dotenv_values
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ._errors import ConfigError
from ._masking import is_secret_name, mask_setting, mask_url

logger = logging.getLogger("dbswap")

URL_PREFIX = "DATABASE_URL_"
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

    @property
    def sa_url(self) -> URL:
        return make_url(self.url)

    @property
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
        """Values that must never be shown: the URL password, secret settings."""
        found = [str(v) for k, v in self.settings.items() if is_secret_name(k) and v]
        password = self.sa_url.password
        if password:
            found.append(str(password))
        return tuple(found)

    def masked_settings(self) -> dict[str, str]:
        return {k: mask_setting(k, v) for k, v in sorted(self.settings.items())}


def normalize_url(url: str, base_dir: Path) -> str:
    """Give bare schemes a driver and make relative SQLite paths absolute.

    Every process then opens the same file whatever its working directory.
    """
    try:
        parsed = make_url(url.strip())
    except ArgumentError:
        raise ConfigError(f"not a database URL: {mask_url(url)!r}") from None
    driver = _DEFAULT_DRIVERS.get(parsed.drivername)
    if driver:
        parsed = parsed.set(drivername=driver)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            parsed = parsed.set(database=str((base_dir / database).resolve()))
    return parsed.render_as_string(hide_password=False)


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
    return {
        name: Target(name, normalize_url(url, base_dir), settings[name])
        for name, url in sorted(urls.items())
    }


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
