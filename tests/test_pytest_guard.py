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


# -- the layouts real apps use -----------------------------------------------------
# FastAPI's full-stack template builds its engine when ``app/core/db.py`` is imported,
# and its tests/conftest.py imports the app and deletes every row at the end of the run.

DB_MODULE = """
from dbswap import Switchboard

board = Switchboard.from_env()  # at import, as app modules do
Session = board.sessionmaker()
"""

SETTINGS_DB_MODULE = """
import os
from dbswap import Switchboard

board = Switchboard(  # the settings-object recipe: an explicit runtime_dir
    {"local": os.environ["APP_LOCAL"], "production": os.environ["APP_PRODUCTION"]},
    runtime_dir=os.path.join(os.path.dirname(__file__), "..", "..", ".runtime"),
)
Session = board.sessionmaker()
"""

CLI_MODULE = """
import sqlalchemy as sa
from app.core.db import Session

with Session() as s:  # the app's own command: empties the items
    s.execute(sa.text("DELETE FROM items"))
    s.commit()
print("purged", s.dbswap_target if hasattr(s, "dbswap_target") else "")
"""

TEMPLATE_CONFTEST = """
import pytest
import sqlalchemy as sa
from app.main import Session  # the app, and the board it builds at import


@pytest.fixture(scope="session", autouse=True)
def db():
    with Session() as s:
        yield s
        s.execute(sa.text("DELETE FROM items"))  # the template's clean-up
        s.commit()
"""

TEMPLATE_TESTS = """
import sqlalchemy as sa


def test_reads_the_items(db):
    assert db.dbswap_target == "local"
    assert db.scalars(sa.text("SELECT label FROM items")).all() == ["l1", "l2"]
"""


def make_template(app: Path, db_module: str = DB_MODULE) -> None:
    """``app/core/db.py`` (board at import), ``app/main.py``, ``tests/conftest.py``."""
    (app / "app" / "core").mkdir(parents=True)
    (app / "app" / "__init__.py").write_text("")
    (app / "app" / "core" / "__init__.py").write_text("")
    (app / "app" / "core" / "db.py").write_text(db_module)
    (app / "app" / "main.py").write_text("from app.core.db import Session, board\n")
    (app / "app" / "purge.py").write_text(CLI_MODULE)
    (app / "tests").mkdir()
    (app / "tests" / "__init__.py").write_text("")
    (app / "tests" / "conftest.py").write_text(TEMPLATE_CONFTEST)
    (app / "tests" / "test_items.py").write_text(TEMPLATE_TESTS)
    (app / "conftest.py").unlink()
    (app / "test_app.py").unlink()
    (app / "pytest.ini").write_text("[pytest]\npythonpath = .\n")


@pytest.mark.parametrize(
    "command",
    [
        ["pytest"],
        ["pytest", "tests/"],
        ["python", "-m", "pytest"],
        ["python", "-m", "pytest", "tests/test_items.py"],
    ],
    ids=["pytest", "pytest-tests-dir", "python-m-pytest", "one-file"],
)
def test_a_board_built_while_conftests_are_imported_never_reaches_production(
    project: tuple[Path, dict[str, str]], command: list[str]
) -> None:
    app, urls = project
    make_template(app)
    executable = {
        "pytest": [str(Path(sys.executable).parent / "pytest")],
        "python": [sys.executable],
    }
    done = run_in(app, [*executable[command[0]], *command[1:], "-q", "-p", "no:cacheprovider"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert labels(urls["production"]) == ["p1", "p2"]  # untouched
    assert labels(urls["local"]) == []  # the session fixture emptied the default target


def test_a_board_with_an_explicit_runtime_dir_is_guarded_too(
    project: tuple[Path, dict[str, str]],
) -> None:
    app, urls = project
    make_template(app, SETTINGS_DB_MODULE)
    done = run_in(
        app,
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        APP_LOCAL=urls["local"],
        APP_PRODUCTION=urls["production"],
    )
    # The explicit board shares the dev server's state (switched to production): it
    # starts on local anyway and its clean-up cannot reach production.
    assert done.returncode == 0, done.stdout + done.stderr
    assert labels(urls["production"]) == ["p1", "p2"]
    assert labels(urls["local"]) == []


def test_child_processes_a_test_starts_are_guarded(project: tuple[Path, dict[str, str]]) -> None:
    app, urls = project
    make_template(app)
    (app / "tests" / "conftest.py").write_text("")
    (app / "tests" / "test_items.py").write_text(
        "import os, subprocess, sys\n\n"
        "def test_the_apps_command():\n"
        "    done = subprocess.run([sys.executable, '-m', 'app.purge'], capture_output=True,\n"
        "                          text=True)\n"
        "    assert done.returncode == 0, done.stderr\n"
        "    assert 'purged local' in done.stdout\n\n"
        "def test_the_dbswap_cli_sees_the_runs_state():\n"
        "    done = subprocess.run([sys.executable, '-m', 'dbswap', 'status', '--json'],\n"
        "                          capture_output=True, text=True)\n"
        '    assert \'"target": "local"\' in done.stdout, done.stdout + done.stderr\n\n'
        "def test_a_child_cannot_switch_to_production():\n"
        "    done = subprocess.run([sys.executable, '-m', 'dbswap', 'use', 'production',\n"
        "                           '--yes'], capture_output=True, text=True)\n"
        "    assert done.returncode != 0\n"
        "    assert '--dbswap-allow-production' in done.stderr\n\n"
        "def test_a_child_pinned_to_production_by_dbswap_run_refuses():\n"
        "    done = subprocess.run([sys.executable, '-m', 'dbswap', 'run', 'production',\n"
        "                           '--yes', '--', sys.executable, '-m', 'app.purge'],\n"
        "                          capture_output=True, text=True)\n"
        "    assert done.returncode != 0\n"
    )
    done = run_in(app, [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout
    assert labels(urls["production"]) == ["p1", "p2"]
    assert labels(urls["local"]) == []  # the child ran, on the default target


def test_xdist_workers_are_guarded(project: tuple[Path, dict[str, str]]) -> None:
    pytest.importorskip("xdist")
    app, urls = project
    make_template(app)
    (app / "tests" / "test_more.py").write_text(
        "import sqlalchemy as sa\n"
        "from app.core.db import Session\n\n"
        "def test_worker_writes_where_it_may():\n"
        "    with Session() as s:\n"
        "        assert s.dbswap_target == 'local'\n"
        "        s.execute(sa.text(\"DELETE FROM items WHERE label = 'l1'\"))\n"
        "        s.commit()\n"
    )
    (app / "tests" / "test_items.py").write_text("def test_other_worker():\n    pass\n")
    done = run_in(app, [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
    assert labels(urls["production"]) == ["p1", "p2"]
    assert labels(urls["local"]) == []


def run_in(app: Path, command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """``command`` in the app's directory, as its developer types it (no dbswap variables)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DBSWAP_"))}
    return subprocess.run(
        command, cwd=app, env=base | env, capture_output=True, text=True, timeout=180
    )
