"""The web surfaces of read-only switches and the schema guard (admin API, page, demo)."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import dbswap
from dbswap.demo import create_app
from webhelpers import ADMIN, PAGE, STATUS, SWITCH, TestClient, admin_app, snapshot


@pytest.fixture
def board(sqlite_url: Callable[[str], str], tmp_path: Path) -> Iterator[dbswap.Switchboard]:
    board = dbswap.Switchboard(
        {"local": sqlite_url("local"), "production": sqlite_url("production")},
        runtime_dir=tmp_path / "rt",
        read_only_targets=["production"],
    )
    yield board
    board.dispose()


@pytest.fixture
def client(board: dbswap.Switchboard) -> Iterator[TestClient]:
    with TestClient(admin_app(board)) as client:
        yield client


def test_switch_read_only_and_writable_through_the_api(
    client: TestClient, board: dbswap.Switchboard
) -> None:
    status = client.get(STATUS, headers=ADMIN).json()
    assert status["readOnly"] is False
    defaults = {t["name"]: t["readOnlyDefault"] for t in status["targets"]}
    assert defaults == {"local": False, "production": True}
    default = client.post(SWITCH, json={"target": "production"}, headers=ADMIN)
    assert default.status_code == 200 and default.json()["readOnly"] is True
    assert client.get(STATUS, headers=ADMIN).json()["readOnly"] is True
    writable = client.post(SWITCH, json={"useProduction": True, "readOnly": False}, headers=ADMIN)
    body = writable.json()
    assert writable.status_code == 200 and body["changed"] and body["readOnly"] is False
    assert board.read_only is False and board.generation == 2
    assert board.history(1)[0]["read_only"] is False


@pytest.mark.parametrize(
    "body",
    [
        {"target": "production", "readOnly": "yes"},
        {"target": "production", "readOnly": 1},
        {"target": "production", "readOnly": []},
        {"target": "production", "ignoreSchema": "true"},
        {"useProduction": True, "ignoreSchema": None},
    ],
)
def test_wrong_json_types_are_refused_and_change_nothing(
    client: TestClient, board: dbswap.Switchboard, body: dict[str, object]
) -> None:
    before = snapshot(board)
    response = client.post(SWITCH, json=body, headers=ADMIN)
    assert response.status_code in (400, 422)
    assert "true or false" in response.json()["message"]
    assert snapshot(board) == before


def test_the_page_marks_read_only_and_presets_the_choice(
    client: TestClient, board: dbswap.Switchboard
) -> None:
    hidden_badge = re.compile(r'id="read-only-badge" class="badge read-only"\s+hidden')
    page = client.get(PAGE, headers=ADMIN).text
    assert hidden_badge.search(page)
    assert page.count('class="read-only" checked') == 1  # production, preset by DBSWAP_READONLY
    board.use("production")
    page = client.get(PAGE, headers=ADMIN).text
    assert 'id="read-only-badge"' in page and not hidden_badge.search(page)


def test_the_demo_banner_says_read_only(board: dbswap.Switchboard) -> None:
    app = create_app(board, admin_password="pw-demo-1234", admin_token="demo-token-1234")
    with TestClient(app) as client:
        board.use("production")
        page = client.get("/").text
        assert "READ-ONLY" in page and "PRODUCTION DATABASE" in page
        assert client.get("/api/tracks").json()["readOnly"] is True
        board.use("local", read_only=True)
        assert 'id="read-only-banner"' in client.get("/").text
        board.use("local", read_only=False)
        assert "READ-ONLY" not in client.get("/").text


def test_a_schema_mismatch_is_a_409_and_the_override_works(
    sqlite_url: Callable[[str], str], tmp_path: Path
) -> None:
    versions = tmp_path / "migrations" / "versions"
    versions.mkdir(parents=True)
    (versions / "r1.py").write_text(
        textwrap.dedent(
            """
            revision = "r1"
            down_revision = None
            def upgrade():
                pass
            """
        )
    )
    ini = tmp_path / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {tmp_path / 'migrations'}\n")
    urls = {"local": sqlite_url("local"), "production": sqlite_url("production")}
    board = dbswap.Switchboard(urls, runtime_dir=tmp_path / "rt", alembic_config=ini)
    with TestClient(admin_app(board)) as client:
        before = snapshot(board)
        refused = client.post(SWITCH, json={"target": "production"}, headers=ADMIN)
        assert refused.status_code == 409
        body = refused.json()
        assert body["error"] == "schema_mismatch" and body["codeRevisions"] == ["r1"]
        assert body["databaseRevisions"] == []
        assert snapshot(board) == before
        forced = client.post(
            SWITCH, json={"target": "production", "ignoreSchema": True}, headers=ADMIN
        )
        assert forced.status_code == 200
        assert board.history(1)[0]["schema_check"] == "overridden"
    board.dispose()
