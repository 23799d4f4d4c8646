"""The same project with dbswap, as docs/guides/django.md says: nothing else differs.

Targets from ``DATABASE_URL_LOCAL`` / ``DATABASE_URL_PRODUCTION``, the board's
state in ``DBSWAP_RUNTIME_DIR``; local (the default target) is the ``default``
alias, the same database and options as plain Django's.
"""

from __future__ import annotations

from dbswap.django import databases_from_env

from ._common import *  # noqa: F403
from ._common import BASE_DIR, CONN_HEALTH_CHECKS, CONN_MAX_AGE, INSTALLED_APPS, MIDDLEWARE

ROOT_URLCONF = "bench.django_site.urls_dbswap"
DATABASES = databases_from_env(
    cwd=BASE_DIR, conn_max_age=CONN_MAX_AGE, conn_health_checks=CONN_HEALTH_CHECKS
)
DATABASE_ROUTERS = ["dbswap.django.DBSwapRouter"]
INSTALLED_APPS = [*INSTALLED_APPS, "dbswap.django"]
MIDDLEWARE = ["dbswap.django.DBSwapMiddleware", *MIDDLEWARE]  # first
