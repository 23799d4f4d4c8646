"""``DATABASES`` from the same ``DATABASE_URL_<NAME>`` variables as the rest of dbswap.

The default target (``DBSWAP_DEFAULT_TARGET``, ``local`` unless set) is the
``default`` alias, so Django's test machinery and every ``using=``-less call
keep working; every other target is an alias named after it. Under ``dbswap
run TARGET``, TARGET is the ``default`` alias, so ``manage.py migrate`` (and
every other command) acts on it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.db import DEFAULT_DB_ALIAS

from .._errors import ConfigError
from .._pinning import process_pin
from .._targets import Target, discover_targets, read_environment

logger = logging.getLogger("dbswap")

# SQLAlchemy backend names that Django (and dj-database-url) spell differently.
_SCHEMES = {"mariadb": "mysql"}


def databases_from_env(
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    *,
    conn_max_age: int | None = 0,
    conn_health_checks: bool = False,
    ssl_require: bool = False,
    options: Mapping[str, Any] | None = None,
    per_target: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """``DATABASES`` for settings.py: one alias per target, parsed with dj-database-url.

    Pass ``cwd=BASE_DIR`` so ``.env`` files and relative SQLite paths are
    read from the project, as the board does. ``conn_max_age``,
    ``conn_health_checks`` and ``ssl_require`` mean what they mean to
    ``dj_database_url.config()``, on every alias; ``ssl_require`` sets
    ``OPTIONS["sslmode"] = "require"`` on PostgreSQL aliases (a SQLite file has
    no connection to encrypt; MySQL and MariaDB are refused: their drivers
    spell it differently, pass it in ``options``). ``options`` is merged into
    every alias's ``OPTIONS`` (over the URL's query). ``per_target`` overrides
    any of these four for one target, by target name (its ``options`` merged over
    the shared ones):
    ``per_target={"production": {"conn_max_age": 600, "options": {...}}}``.
    """
    try:
        import dj_database_url
    except ModuleNotFoundError:
        raise ImportError(
            "databases_from_env needs dj-database-url: pip install 'dbswap[django]'"
        ) from None
    base = Path(cwd) if cwd is not None else Path.cwd()
    env = read_environment(environ, base)
    targets = discover_targets(env, base)
    if not targets:
        raise ConfigError(
            "no database targets: set DATABASE_URL_LOCAL and DATABASE_URL_PRODUCTION "
            "(one DATABASE_URL_<NAME> per target)"
        )
    # Under `dbswap run TARGET`, TARGET is `default`: manage.py migrate, shell... act on it.
    default = default_target(env)
    if default not in targets:
        raise ConfigError(
            f"default target {default!r} is not configured; set DBSWAP_DEFAULT_TARGET to "
            f"one of: {', '.join(targets)}"
        )
    shared = {
        "conn_max_age": conn_max_age,
        "conn_health_checks": conn_health_checks,
        "ssl_require": ssl_require,
        "options": options,
    }
    overrides = _overrides(per_target or {}, targets)
    databases: dict[str, dict[str, Any]] = {}
    for name in [default, *(n for n in targets if n != default)]:
        alias = alias_for(name, default)
        wanted = shared | overrides.get(name, {})
        url = _django_url(targets[name])
        try:
            config: dict[str, Any] = dict(
                dj_database_url.parse(
                    url,
                    conn_max_age=wanted["conn_max_age"],
                    conn_health_checks=bool(wanted["conn_health_checks"]),
                    ssl_require=_ssl_require(name, url, bool(wanted["ssl_require"])),
                )
            )
        except ValueError as exc:  # an unknown scheme; the message names no password
            raise ConfigError(f"DATABASE_URL_{name.upper()}: {exc}") from None
        extra = {**(options or {}), **(overrides.get(name, {}).get("options") or {})}
        if extra:
            config["OPTIONS"] = {**config.get("OPTIONS", {}), **extra}
        databases[alias] = config
    return databases


_SETTINGS = frozenset({"conn_max_age", "conn_health_checks", "ssl_require", "options"})


def _overrides(
    per_target: Mapping[str, Mapping[str, Any]], targets: Mapping[str, Target]
) -> dict[str, dict[str, Any]]:
    """``per_target`` checked: known settings only; a target not configured here is skipped
    (with a warning)."""
    found: dict[str, dict[str, Any]] = {}
    for raw_name, settings in per_target.items():
        name = raw_name.strip().lower()
        unknown = set(settings) - _SETTINGS
        if unknown:
            raise ConfigError(
                f"per_target[{raw_name!r}]: unknown setting(s) {', '.join(sorted(unknown))}; "
                f"use {', '.join(sorted(_SETTINGS))}"
            )
        if name in targets:
            found[name] = dict(settings)
        else:  # e.g. production, absent from a developer's environment; or a typo
            logger.warning(
                "databases_from_env: per_target names %r, which is not a configured target "
                "(targets: %s); its settings are not used",
                raw_name,
                ", ".join(targets),
            )
    return found


def _ssl_require(name: str, url: str, wanted: bool) -> bool:
    """Whether to ask dj-database-url for ``sslmode=require`` (PostgreSQL only)."""
    scheme = url.split(":", 1)[0]
    if not wanted or scheme == "sqlite":
        return False
    if scheme != "postgresql":
        raise ConfigError(
            f"ssl_require applies to PostgreSQL; target {name!r} is {scheme}: require TLS "
            "with its driver's own option, e.g. per_target={"
            f"{name!r}: {{'options': {{'ssl_mode': 'REQUIRED'}}}}}} (mysqlclient)"
        )
    return True


def default_target(env: Mapping[str, str]) -> str:
    """The target behind the ``default`` alias: ``dbswap run``'s pin, else the default one."""
    return process_pin(env) or env.get("DBSWAP_DEFAULT_TARGET", "").strip().lower() or "local"


def alias_for(target: str, default_target: str) -> str:
    """The DATABASES alias of a target: ``default`` for the default target, else its name."""
    if target == default_target:
        return str(DEFAULT_DB_ALIAS)
    if target == DEFAULT_DB_ALIAS:
        raise ConfigError(
            "a target named 'default' would clash with Django's default alias; rename "
            "DATABASE_URL_DEFAULT (the default target is DBSWAP_DEFAULT_TARGET)"
        )
    return target


def target_for(alias: str, default_target: str) -> str:
    """The target behind a DATABASES alias."""
    return default_target if alias == DEFAULT_DB_ALIAS else alias


def _django_url(target: Target) -> str:
    url = target.sa_url
    backend = url.get_backend_name()
    return url.set(drivername=_SCHEMES.get(backend, backend)).render_as_string(hide_password=False)
