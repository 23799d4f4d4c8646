"""``DATABASES`` from the same ``DATABASE_URL_<NAME>`` variables as the rest of dbswap.

The default target (``DBSWAP_DEFAULT_TARGET``, ``local`` unless set) is the
``default`` alias, so Django's test machinery and every ``using=``-less call
keep working; every other target is an alias named after it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.db import DEFAULT_DB_ALIAS

from .._errors import ConfigError
from .._targets import Target, discover_targets, read_environment

# SQLAlchemy backend names that Django (and dj-database-url) spell differently.
_SCHEMES = {"mariadb": "mysql"}


def databases_from_env(
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    *,
    conn_max_age: int | None = 0,
    conn_health_checks: bool = False,
) -> dict[str, dict[str, Any]]:
    """``DATABASES`` for settings.py: one alias per target, parsed with dj-database-url.

    Pass ``cwd=BASE_DIR`` so ``.env`` files and relative SQLite paths are
    read from the project, as the board does.
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
    default = env.get("DBSWAP_DEFAULT_TARGET", "").strip().lower() or "local"
    if default not in targets:
        raise ConfigError(
            f"default target {default!r} is not configured; set DBSWAP_DEFAULT_TARGET to "
            f"one of: {', '.join(targets)}"
        )
    databases: dict[str, dict[str, Any]] = {}
    for name in [default, *(n for n in targets if n != default)]:
        alias = alias_for(name, default)
        try:
            config = dj_database_url.parse(
                _django_url(targets[name]),
                conn_max_age=conn_max_age,
                conn_health_checks=conn_health_checks,
            )
        except ValueError as exc:  # an unknown scheme; the message names no password
            raise ConfigError(f"DATABASE_URL_{name.upper()}: {exc}") from None
        databases[alias] = dict(config)
    return databases


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
