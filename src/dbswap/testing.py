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

It loads in every pytest run of a venv where dbswap is installed, so it
imports nothing of dbswap (nor SQLAlchemy) until a test asks for a fixture:
a run that does not use it cannot be broken by it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._switchboard import Switchboard


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "dbswap_target(name): start the test with the dbswap_board on target NAME"
    )


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
