"""The same project with its identity on one control database (``DBSWAP_FIXED_APPS``)."""

from __future__ import annotations

from djproject.settings import *  # noqa: F403

DBSWAP_FIXED_APPS = ["auth", "sessions", "admin", "contenttypes"]
