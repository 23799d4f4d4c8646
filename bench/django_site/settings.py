"""Plain Django: one ``default`` database, no dbswap anywhere.

``BENCH_DJANGO_URL`` is the ``default`` database as dj-database-url spells it;
the harness checks that it parses to the very ``default`` alias that
``databases_from_env()`` gives the dbswap variant.
"""

from __future__ import annotations

import os

import dj_database_url

from ._common import *  # noqa: F403
from ._common import CONN_HEALTH_CHECKS, CONN_MAX_AGE

DATABASES = {
    "default": dj_database_url.parse(
        os.environ["BENCH_DJANGO_URL"],
        conn_max_age=CONN_MAX_AGE,
        conn_health_checks=CONN_HEALTH_CHECKS,
    )
}
