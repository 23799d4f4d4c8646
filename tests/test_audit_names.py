"""Odd characters in a refused target name never break a reader of the history.

A lone surrogate (a badly encoded argument), control characters (a terminal
escape, a NUL, a newline) and a very long name are refused as unknown and
audited; then ``board.history()``, the admin API and page (real HTTP) and
``dbswap history`` all work and show the name escaped and shortened.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dbswap import Switchboard, UnknownTarget
from dbswap.cli import board_commands
from webhelpers import ADMIN, HISTORY, PAGE, TestClient, admin_app

SURROGATE = "\udcffprod"
CONTROL = "a\x00b\x1b[31mred\nnext"
LONG = "x" * 5000
ESCAPED_SURROGATE = "\\udcffprod"  # as every reader shows it
ESCAPED_CONTROL = "a\\x00b\\x1b[31mred\\nnext"


@pytest.fixture
def board(sqlite_url: Callable[[str], str], tmp_path: Path) -> Iterator[Switchboard]:
    board = Switchboard(
        {"local": sqlite_url("local"), "production": sqlite_url("production")},
        runtime_dir=tmp_path / "rt",
    )
    for name in (SURROGATE, CONTROL, LONG):
        with pytest.raises(UnknownTarget):
            board.use(name, user="alice\x1b]0;pwned\x07")
    yield board
    board.dispose()


def test_the_refusal_shows_the_name_escaped_and_short(
    sqlite_url: Callable[[str], str], tmp_path: Path
) -> None:
    board = Switchboard({"local": sqlite_url("local")}, runtime_dir=tmp_path / "rt")
    for name in (SURROGATE, CONTROL, LONG):
        with pytest.raises(UnknownTarget) as info:
            board.use(name)
        message = str(info.value)
        assert message.isprintable() and len(message) < 300
        assert info.value.target == name.strip().lower()  # the exact name stays available


def _check_entries(entries: list[dict[str, object]]) -> None:
    names = [entry["to"] for entry in entries]
    assert names[1:] == [ESCAPED_CONTROL, ESCAPED_SURROGATE]
    assert isinstance(names[0], str) and names[0].startswith("xxx") and names[0].endswith("...")
    assert len(names[0]) <= 100
    assert all(entry["outcome"] == "refused" for entry in entries)
    assert all(entry["user"] == "alice\\x1b]0;pwned\\x07" for entry in entries)


def test_board_history_shows_odd_names_escaped_and_short(board: Switchboard) -> None:
    entries = board.history()
    _check_entries(entries)
    # Every string is printable and encodes as UTF-8: any reader can show it.
    for entry in entries:
        for value in entry.values():
            if isinstance(value, str):
                assert value.isprintable()
                value.encode("utf-8")


def test_lines_written_before_the_fix_are_made_safe_when_read(board: Switchboard) -> None:
    """An older line kept a raw lone surrogate (JSON ``\\udcff``): readers escape it too."""
    old = {"time": "2024-01-01T00:00:00.000Z", "to": "\udcffold\x1b", "outcome": "refused"}
    with (board.runtime_dir / "db-switch.log").open("a", encoding="utf-8") as log:
        log.write(json.dumps(old) + "\n")
    newest = board.history(1)[0]
    assert newest["to"] == "\\udcffold\\x1b"


def test_the_admin_api_and_page_serve_the_history(board: Switchboard) -> None:
    with TestClient(admin_app(board)) as client:
        response = client.get(HISTORY, headers=ADMIN)
        assert response.status_code == 200
        _check_entries(response.json()["entries"])
        page = client.get(PAGE, headers=ADMIN)
        assert page.status_code == 200
        assert ESCAPED_SURROGATE in page.text and "\x1b" not in page.text


def test_dbswap_history_prints_the_history(board: Switchboard) -> None:
    commands = board_commands(board)  # the dbswap commands, on this board
    text = CliRunner().invoke(commands, ["history"], catch_exceptions=False)
    assert text.exit_code == 0
    lines = text.output.splitlines()
    assert len(lines) == 3  # a newline in a name does not make a line of its own
    assert ESCAPED_SURROGATE in lines[2] and ESCAPED_CONTROL in lines[1]
    assert "\x1b" not in text.output
    as_json = CliRunner().invoke(commands, ["history", "--json"], catch_exceptions=False)
    assert as_json.exit_code == 0
    _check_entries(json.loads(as_json.output))
