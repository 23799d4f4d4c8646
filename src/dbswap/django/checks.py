"""System checks (``manage.py check``): a misconfiguration is reported, never guessed around."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Warning

from .._errors import ConfigError
from ._board import get_board
from ._identity import fixed_apps, is_fixed
from ._settings import alias_for

ROUTER = "dbswap.django.DBSwapRouter"
MIDDLEWARE = "dbswap.django.DBSwapMiddleware"
_VENDORS = {"sqlite": "sqlite3", "postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}


def check_setup(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    problems: list[Any] = []
    if ROUTER not in getattr(settings, "DATABASE_ROUTERS", []):
        problems.append(
            Error(
                "dbswap's router is not installed, so models ignore the switch",
                hint=f'add "{ROUTER}" to DATABASE_ROUTERS',
                id="dbswap.E001",
            )
        )
    if MIDDLEWARE not in getattr(settings, "MIDDLEWARE", []):
        problems.append(
            Warning(
                "dbswap's middleware is not installed: a request is not pinned and may "
                "straddle two databases across a switch",
                hint=f'put "{MIDDLEWARE}" first in MIDDLEWARE',
                id="dbswap.W001",
            )
        )
    problems += _check_fixed_apps()
    try:
        board = get_board()
    except ConfigError as exc:
        return [*problems, Error(str(exc), id="dbswap.E002")]
    for name, target in board.targets.items():
        alias = alias_for(name, board.default_target)
        config = settings.DATABASES.get(alias)
        if config is None:
            problems.append(
                Error(
                    f"target {name!r} has no DATABASES alias {alias!r}",
                    hint="build DATABASES with dbswap.django.databases_from_env()",
                    id="dbswap.E003",
                )
            )
        elif not str(config.get("ENGINE", "")).endswith(_VENDORS.get(target.dialect, "?")):
            problems.append(
                Error(
                    f"DATABASES[{alias!r}] uses {config.get('ENGINE')!r} but target {name!r} "
                    f"is a {target.dialect} database",
                    hint="build DATABASES with dbswap.django.databases_from_env()",
                    id="dbswap.E004",
                )
            )
    return problems


def _check_fixed_apps() -> list[Any]:
    """DBSWAP_FIXED_APPS names installed apps, and a fixed model points at fixed ones only."""
    fixed = fixed_apps()
    labels = {config.label for config in apps.get_app_configs()}
    unknown = sorted(fixed - labels)
    problems: list[Any] = [
        Error(
            f"DBSWAP_FIXED_APPS names {label!r}, which is not an installed app's label",
            hint='use app labels, e.g. "auth" for django.contrib.auth',
            id="dbswap.E005",
        )
        for label in unknown
    ]
    for model in apps.get_models(include_auto_created=True):
        if not is_fixed(model):
            continue
        for field in model._meta.get_fields():
            related = field.related_model if field.concrete else None
            if related is not None and not is_fixed(related):
                problems.append(
                    Error(
                        f"{model._meta.label}.{field.name} points at {related._meta.label}, "
                        "which follows the switch while its app is fixed on 'default'",
                        hint=f'add "{related._meta.app_label}" to DBSWAP_FIXED_APPS',
                        id="dbswap.E006",
                    )
                )
    return problems
