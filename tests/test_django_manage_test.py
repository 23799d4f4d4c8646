"""``manage.py test`` never touches production, even with the developer's app switched there.

The project of ``tests/django_project`` as a developer runs it from a shell: its
own ``local`` (a SQLite file) and ``production`` (a PostgreSQL database with rows),
a shared runtime dir switched to production with the real CLI, and no guard of
this pytest run in the environment (a developer's shell has none).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbhelpers import labels
from dbswap._testguard import ENVIRONMENT
from djangohelpers import PROJECT, create_pg_database, drop_pg_database, reset_rows

pytestmark = pytest.mark.postgres

ROWS = ["prod-1", "prod-2"]


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def developer(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a developer's shell whose app is switched to production."""
    urls = {"local": f"sqlite:///{tmp_path / 'local.db'}", "production": create_pg_database()}
    env = {
        key: value
        for key, value in os.environ.items()
        if key != ENVIRONMENT and not key.startswith(("DATABASE_URL", "DBSWAP_"))
    }
    env |= {f"DATABASE_URL_{name.upper()}": url for name, url in urls.items()}
    env["DBSWAP_RUNTIME_DIR"] = str(tmp_path / "shared-runtime")
    env["PRODUCTION_URL"] = urls["production"]
    try:
        for database in ("default", "production"):
            done = _run(env, "manage.py", "migrate", f"--database={database}", "-v", "0")
            assert done.returncode == 0, done.stderr
        reset_rows(urls["production"], ROWS)
        switched = _run(env, "-m", "dbswap", "use", "production", "--yes", "--user", "dev")
        assert switched.returncode == 0, switched.stderr
        yield env
    finally:
        drop_pg_database(urls["production"])


def _state(env: dict[str, str]) -> str:
    return (Path(env["DBSWAP_RUNTIME_DIR"]) / "db-target.json").read_text()


@pytest.mark.parametrize("parallel", [[], ["--parallel", "2"]], ids=["serial", "parallel"])
def test_manage_py_test_uses_the_default_target_while_the_app_is_on_production(
    developer: dict[str, str], parallel: list[str]
) -> None:
    state = _state(developer)
    assert '"production"' in state
    done = _run(developer, "manage.py", "test", "shop", "--noinput", "-v", "2", *parallel)
    assert done.returncode == 0, done.stderr
    assert "Ran 3 tests" in done.stderr and "OK" in done.stderr
    assert done.stderr.count("Cloning test database") == (2 if parallel else 0)  # 2 workers
    assert labels(developer["PRODUCTION_URL"]) == ROWS  # untouched
    assert _state(developer) == state  # the developer's app is still where it was


def test_manage_py_test_refuses_production_unless_allowed(developer: dict[str, str]) -> None:
    """A test that asks for production is refused; ``--dbswap-allow-production`` lets it."""
    command = ["manage.py", "test", "shop.production_checks", "--noinput", "-v", "2"]
    refused = _run(developer, *command)
    assert refused.returncode == 1, refused.stderr
    assert "never touch production" in refused.stderr
    allowed = _run(developer, *command, "--dbswap-allow-production")
    assert allowed.returncode == 0, allowed.stderr
    assert labels(developer["PRODUCTION_URL"]) == ROWS
