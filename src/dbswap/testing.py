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
- A guard for the whole run: boards built from the environment
  (``Switchboard.from_env()``, and so the Flask and Django adapters' defaults)
  never follow the developer's shared state (their dev server may be switched
  to production): outside the tests' temporary directories they get a runtime
  dir of the session's own, start on the default target, and refuse production
  targets unless pytest runs with ``--dbswap-allow-production``. A test marked
  ``@pytest.mark.dbswap_shared_state`` asks for the shared state.

It loads in every pytest run of a venv where dbswap is installed, so it
imports nothing of dbswap (nor SQLAlchemy) until a test asks for a fixture:
a run that does not use it cannot be broken by it.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._switchboard import Switchboard


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("dbswap").addoption(
        "--dbswap-allow-production",
        action="store_true",
        help="let boards built from the environment use a target named production",
    )


def pytest_configure(config: pytest.Config) -> None:
    from ._testguard import Guard, install

    config.addinivalue_line(
        "markers", "dbswap_target(name): start the test with the dbswap_board on target NAME"
    )
    config.addinivalue_line(
        "markers", "dbswap_shared_state: boards from the environment follow the shared state"
    )

    def test_roots() -> tuple[Path, ...]:  # pytest's temporary directory, made on demand
        factory = getattr(config, "_tmp_path_factory", None)
        return (factory.getbasetemp(),) if factory is not None else ()

    own = Path(tempfile.mkdtemp(prefix="dbswap-pytest-"))
    allow = bool(config.getoption("dbswap_allow_production", False))
    install(Guard(own / "runtime", test_roots, allow_production=allow))


def pytest_unconfigure(config: pytest.Config) -> None:
    from ._testguard import current, install

    guard = current()
    install(None)
    if guard is not None:
        shutil.rmtree(guard.runtime_dir.parent, ignore_errors=True)


@pytest.fixture(autouse=True)
def _dbswap_shared_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test marked ``dbswap_shared_state`` gets boards that follow the shared state."""
    if request.node.get_closest_marker("dbswap_shared_state") is None:
        yield
        return
    from ._testguard import current

    guard = current()
    if guard is not None:
        guard.suspended = True
    try:
        yield
    finally:
        if guard is not None:
            guard.suspended = False


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
