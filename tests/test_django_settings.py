"""``databases_from_env()``: the connection settings of ``dj_database_url.config()``.

``conn_max_age``, ``conn_health_checks`` and ``ssl_require`` mean what they
mean to dj-database-url, on every alias; ``options`` is merged into every
alias's ``OPTIONS``; ``per_target`` overrides them for one target. The last test
runs the project in ``tests/django_project`` with such settings in a fresh
process and reads them back from Django's connections, across real requests.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dj_database_url
import pytest

import dbswap
from dbswap.django import databases_from_env

PROJECT = Path(__file__).parent / "django_project"
ENV = {
    "DATABASE_URL_LOCAL": "sqlite:///local.db",
    "DATABASE_URL_PRODUCTION": "postgresql://app:S3cret@db.example.com:5432/shop",
}


def test_connection_settings_reach_every_alias_as_dj_database_url_sets_them(
    tmp_path: Path,
) -> None:
    databases = databases_from_env(
        ENV,
        tmp_path,
        conn_max_age=600,
        conn_health_checks=True,
        ssl_require=True,
        options={"connect_timeout": 5},
    )
    assert list(databases) == ["default", "production"]
    for alias, config in databases.items():
        assert (config["CONN_MAX_AGE"], config["CONN_HEALTH_CHECKS"]) == (600, True), alias
    prod = databases["production"]
    assert prod["OPTIONS"] == {"sslmode": "require", "connect_timeout": 5}
    # What dj_database_url.config(conn_max_age=600, ..., ssl_require=True) gives, plus options.
    expected = dict(
        dj_database_url.parse(
            "postgresql://app:S3cret@db.example.com:5432/shop",
            conn_max_age=600,
            conn_health_checks=True,
            ssl_require=True,
        )
    )
    expected["OPTIONS"] = {"sslmode": "require", "connect_timeout": 5}
    assert prod == expected
    # A SQLite file has no connection to encrypt: no sslmode (sqlite3 would refuse it).
    assert databases["default"]["OPTIONS"] == {"connect_timeout": 5}
    assert databases["default"]["NAME"] == str(tmp_path / "local.db")


def test_conn_max_age_none_means_persistent_connections(tmp_path: Path) -> None:
    databases = databases_from_env(ENV, tmp_path, conn_max_age=None)
    assert [config["CONN_MAX_AGE"] for config in databases.values()] == [None, None]
    default = databases_from_env(ENV, tmp_path)  # dj-database-url's own defaults
    assert [(c["CONN_MAX_AGE"], c["CONN_HEALTH_CHECKS"]) for c in default.values()] == [
        (0, False),
        (0, False),
    ]
    assert all("OPTIONS" not in config for config in default.values())


def test_options_merge_over_the_urls_query_and_ssl_require_wins_as_in_dj_database_url(
    tmp_path: Path,
) -> None:
    env = ENV | {"DATABASE_URL_PRODUCTION": "postgresql://app@db.example.com/shop?sslmode=disable"}
    plain = databases_from_env(env, tmp_path, options={"application_name": "web"})
    assert plain["production"]["OPTIONS"] == {"sslmode": "disable", "application_name": "web"}
    required = databases_from_env(env, tmp_path, ssl_require=True)
    assert required["production"]["OPTIONS"] == {"sslmode": "require"}


def test_per_target_overrides_one_target(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = ENV | {"DATABASE_URL_REPLICA": "mariadb://app:pw@db.example.com/shop"}
    with caplog.at_level(logging.WARNING, logger="dbswap"):
        databases = databases_from_env(
            env,
            tmp_path,
            conn_max_age=60,
            options={"connect_timeout": 5},
            per_target={
                "production": {
                    "conn_max_age": 600,
                    "conn_health_checks": True,
                    "ssl_require": True,
                    "options": {"application_name": "web"},
                },
                "local": {"conn_max_age": 0, "options": {"connect_timeout": None}},
                "staging": {"conn_max_age": 5},  # not configured here: skipped, with a warning
            },
        )
    prod, local, replica = databases["production"], databases["default"], databases["replica"]
    assert (prod["CONN_MAX_AGE"], prod["CONN_HEALTH_CHECKS"]) == (600, True)
    assert prod["OPTIONS"] == {
        "sslmode": "require",
        "connect_timeout": 5,
        "application_name": "web",
    }
    assert (local["CONN_MAX_AGE"], local["OPTIONS"]) == (0, {"connect_timeout": None})
    assert (replica["CONN_MAX_AGE"], replica["CONN_HEALTH_CHECKS"]) == (60, False)
    assert replica["OPTIONS"]["connect_timeout"] == 5 and "sslmode" not in replica["OPTIONS"]
    assert [r.getMessage() for r in caplog.records if "'staging'" in r.getMessage()]
    with pytest.raises(dbswap.ConfigError, match="unknown setting"):
        databases_from_env(env, tmp_path, per_target={"production": {"CONN_MAX_AGE": 600}})


def test_ssl_require_on_mysql_is_refused_rather_than_misspelled(tmp_path: Path) -> None:
    """dj-database-url would give MySQL ``sslmode``, which its drivers do not know."""
    env = ENV | {"DATABASE_URL_REPLICA": "mariadb://app:pw@db.example.com/shop"}
    with pytest.raises(dbswap.ConfigError, match="ssl_require applies to PostgreSQL"):
        databases_from_env(env, tmp_path, ssl_require=True)
    databases = databases_from_env(
        env,
        tmp_path,
        per_target={
            "production": {"ssl_require": True},
            "replica": {"options": {"ssl_mode": "REQUIRED"}},
        },
    )
    assert databases["production"]["OPTIONS"] == {"sslmode": "require"}
    assert databases["replica"]["OPTIONS"]["ssl_mode"] == "REQUIRED"


SETTINGS = """
from djproject.settings import *  # noqa: F403
from dbswap.django import databases_from_env

DATABASES = databases_from_env(
    cwd=BASE_DIR,  # noqa: F405
    conn_max_age=600,
    conn_health_checks=True,
    per_target={"production": {"conn_max_age": 30}, "local": {"options": {"timeout": 7}}},
)
"""

PROBE = """
import json

import django

django.setup()
from django.core.management import call_command
from django.db import connections
from django.test import Client

call_command("migrate", database="default", verbosity=0)
client = Client()
seen = []
for _ in range(2):
    assert client.get("/items").status_code == 200
    seen.append(id(connections["default"].connection))
print(json.dumps({
    "settings": {
        alias: [
            connections[alias].settings_dict[key]
            for key in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS", "OPTIONS")
        ]
        for alias in connections
    },
    "kept": seen[0] == seen[1] and connections["default"].connection is not None,
}))
"""


@pytest.mark.postgres
def test_the_django_project_gets_what_was_passed(
    tmp_path: Path, pg_url: Callable[[str], str]
) -> None:
    """Through Django's own settings and connections, across two real requests (the
    middleware and dbswap's end-of-request cleanup run): nothing resets CONN_MAX_AGE,
    and the connection is kept between requests as CONN_MAX_AGE=600 asks."""
    (tmp_path / "probe_settings.py").write_text(SETTINGS)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "DBSWAP_"))
    }
    env |= {
        "DATABASE_URL_LOCAL": f"sqlite:///{tmp_path / 'local.db'}",
        "DATABASE_URL_PRODUCTION": pg_url("production"),
        "DBSWAP_RUNTIME_DIR": str(tmp_path / "rt"),
        "DJANGO_SETTINGS_MODULE": "probe_settings",
        "PYTHONPATH": os.pathsep.join(
            [str(tmp_path), str(PROJECT), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["settings"] == {
        "default": [600, True, {"timeout": 7}],
        "production": [30, True, {}],
    }
    assert result["kept"] is True
