"""A pytest plugin, so an app's test suite never touches the developer's real state.

Installed with dbswap (entry point ``pytest11``), it gives:

- ``dbswap_board``: an isolated Switchboard (its own runtime dir in
  ``tmp_path``, two SQLite targets ``local`` and ``production``), installed as
  the default board for the test so ``get_session()`` and friends use it.
- ``@pytest.mark.dbswap_target("production")``: the board starts the test on
  that target.
- ``dbswap_urls``: override this fixture to give the board your own targets.
- ``forced_target(board, name)``: a context manager that switches for a block
  and switches back.
- A guard for the whole run, installed before pytest imports any conftest
  (and so before the app modules they import build their boards), and passed
  to every process the tests start (``subprocess``, the app's CLI,
  ``manage.py``, pytest-xdist workers) through the environment: every board
  whose runtime dir is not inside the run's temporary directories, however it
  was built, gets a runtime dir of the run's own instead of the developer's
  shared state (their dev server may be switched to production), starts on
  the default target, and refuses production targets unless pytest runs with
  ``--dbswap-allow-production``. A test marked
  ``@pytest.mark.dbswap_shared_state`` asks for the shared state.

It loads in every pytest run of a venv where dbswap is installed, so it
imports nothing of dbswap but the guard (nor SQLAlchemy) until a test asks
for a fixture: a run that does not use it cannot be broken by it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._switchboard import Switchboard

_PREVIOUS = pytest.StashKey["str | None"]()  # DBSWAP_TEST_GUARD before this run set it


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("dbswap").addoption(
        "--dbswap-allow-production",
        action="store_true",
        help="let boards of this run (and of processes it starts) use a target named production",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Guard the run before pytest imports any conftest (and the app modules they import)."""
    from ._testguard import ENVIRONMENT, protect

    options = early_config.known_args_namespace
    early_config.stash[_PREVIOUS] = os.environ.get(ENVIRONMENT)
    protect(allow_production=bool(getattr(options, "dbswap_allow_production", False)))


@pytest.hookimpl(trylast=True)  # after pytest's tmp_path plugin is configured
def pytest_configure(config: pytest.Config) -> None:
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None and _PREVIOUS in config.stash:
        from ._testguard import current, protect

        # This run's tmp_path directories (xdist workers' are inside): the runtime
        # dirs tests make there are theirs, in this process and the ones it starts.
        guard = current()
        allow = guard.allow_production if guard is not None else False
        protect(allow_production=allow, roots=(factory.getbasetemp(),))
    config.addinivalue_line(
        "markers", "dbswap_target(name): start the test with the dbswap_board on target NAME"
    )
    config.addinivalue_line(
        "markers", "dbswap_shared_state: boards from the environment follow the shared state"
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    if _PREVIOUS not in config.stash:
        return  # the guard was not installed by this run (pytest.main() with this plugin)
    from ._testguard import current, unprotect

    previous = config.stash[_PREVIOUS]
    guard = current()
    unprotect(previous)
    if previous is None and guard is not None:  # the run's own dir, not a parent run's
        shutil.rmtree(guard.runtime_dir.parent, ignore_errors=True)


@pytest.fixture(autouse=True)
def _dbswap_shared_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test marked ``dbswap_shared_state`` gets boards that follow the shared state."""
    if request.node.get_closest_marker("dbswap_shared_state") is None:
        yield
        return
    from ._testguard import ENVIRONMENT, unprotect

    lifted = os.environ.get(ENVIRONMENT)
    unprotect(None)  # for the processes the test starts too
    try:
        yield
    finally:
        unprotect(lifted)


@pytest.fixture
def dbswap_urls(tmp_path: Path) -> dict[str, str]:
    """Targets of the isolated board: two fresh SQLite files. Override to use yours."""
    urls = {}
    for name in ("local", "production"):
        path = tmp_path / f"dbswap-{name}.db"
        sqlite3.connect(path).close()  # the health check wants an existing file
        urls[name] = f"sqlite:///{path}"
    return urls


@pytest.fixture
def dbswap_board(
    request: pytest.FixtureRequest, tmp_path: Path, dbswap_urls: dict[str, str]
) -> Iterator[Switchboard]:
    """An isolated Switchboard, also the default board while the test runs."""
    from ._defaults import set_default_board
    from ._switchboard import Switchboard

    board = Switchboard(dbswap_urls, runtime_dir=tmp_path / "dbswap-runtime")
    marker = request.node.get_closest_marker("dbswap_target")
    if marker is not None:
        board.use(marker.args[0], user="pytest")
    previous = set_default_board(board)
    try:
        yield board
    finally:
        set_default_board(previous)
        board.dispose()


@contextmanager
def forced_target(board: Switchboard, name: str, user: str = "pytest") -> Iterator[Switchboard]:
    """Switch ``board`` to ``name`` for the block, then back to where it was."""
    previous = board.active
    board.use(name, user=user)
    try:
        yield board
    finally:
        board.use(previous, user=user)
