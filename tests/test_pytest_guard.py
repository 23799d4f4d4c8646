"""A developer's test run never touches production, whatever their dev server is switched to.

Each test runs a real inner pytest session in a project directory, as a
developer would: the project's state is switched to production, and its
conftest deletes every row before each test (as common app templates do).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from dbhelpers import labels, seed

CONFTEST = """
import pytest
import sqlalchemy as sa
from dbswap import Switchboard


@pytest.fixture(autouse=True)
def clean_database():
    board = Switchboard.from_env()
    with board.sessionmaker()() as s:
        s.execute(sa.text("DELETE FROM items"))
        s.commit()
    yield
    board.close()
"""

TESTS = """
from dbswap import Switchboard


def test_runs_on_the_default_target():
    assert Switchboard.from_env().active == "local"


def test_switching_to_production_is_refused():
    import pytest
    from dbswap import ConfigError

    with pytest.raises(ConfigError, match="--dbswap-allow-production"):
        Switchboard.from_env().use("production")
"""


@pytest.fixture
def project(tmp_path: Path, sqlite_url: Callable[[str], str]) -> tuple[Path, dict[str, str]]:
    """An app's directory, switched to production by its developer's dev tooling."""
    app = tmp_path / "app"
    app.mkdir()
    urls = {"local": sqlite_url("local"), "production": sqlite_url("production")}
    seed(urls["local"], ["l1", "l2"])
    seed(urls["production"], ["p1", "p2"])
    (app / ".env").write_text(
        f"DATABASE_URL_LOCAL={urls['local']}\nDATABASE_URL_PRODUCTION={urls['production']}\n"
    )
    (app / "conftest.py").write_text(CONFTEST)
    (app / "test_app.py").write_text(TESTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DBSWAP_"))}
    switched = subprocess.run(
        [sys.executable, "-m", "dbswap", "use", "production", "--yes"],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert switched.returncode == 0, switched.stderr
    return app, urls


def inner_pytest(app: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DBSWAP_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=app,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_test_run_beside_a_dev_server_on_production_leaves_production_alone(
    project: tuple[Path, dict[str, str]],
) -> None:
    app, urls = project
    done = inner_pytest(app)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
    assert labels(urls["production"]) == ["p1", "p2"]  # untouched
    assert labels(urls["local"]) == []  # the tests ran on the default target
    status = subprocess.run(
        [sys.executable, "-m", "dbswap", "status", "--json"],
        cwd=app,
        env={k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DBSWAP_"))},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert '"target": "production"' in status.stdout  # the dev server's state is unchanged


def test_production_needs_the_explicit_flag(project: tuple[Path, dict[str, str]]) -> None:
    app, urls = project
    (app / "test_app.py").write_text(
        "import sqlalchemy as sa\nfrom dbswap import Switchboard\n\n"
        "def test_empties_production():\n"
        "    board = Switchboard.from_env()\n"
        "    board.use('production')\n"
        "    with board.sessionmaker()() as s:\n"
        "        s.execute(sa.text('DELETE FROM items'))\n"
        "        s.commit()\n"
    )
    refused = inner_pytest(app)
    assert refused.returncode == 1
    assert "--dbswap-allow-production" in refused.stdout
    assert labels(urls["production"]) == ["p1", "p2"]
    allowed = inner_pytest(app, "--dbswap-allow-production")
    assert allowed.returncode == 0, allowed.stdout
    assert labels(urls["production"]) == []  # asked for, and done


def test_a_production_lock_in_the_environment_refuses_the_test_session(
    project: tuple[Path, dict[str, str]],
) -> None:
    app, urls = project
    done = inner_pytest(app, DBSWAP_ENV="production")
    assert done.returncode != 0
    assert "DBSWAP_ENV=production" in done.stdout and "--dbswap-allow-production" in done.stdout
    assert labels(urls["production"]) == ["p1", "p2"]


def test_a_test_marked_shared_state_follows_the_dev_servers_target(
    project: tuple[Path, dict[str, str]],
) -> None:
    app, _ = project
    (app / "conftest.py").unlink()
    (app / "test_app.py").write_text(
        "import pytest\nfrom dbswap import Switchboard\n\n"
        "@pytest.mark.dbswap_shared_state\n"
        "def test_follows():\n"
        "    assert Switchboard.from_env().active == 'production'\n\n"
        "def test_does_not():\n"
        "    assert Switchboard.from_env().active == 'local'\n"
    )
    done = inner_pytest(app)
    assert done.returncode == 0, done.stdout
