"""The documentation's code runs: every example it includes is run or driven here.

The site's Python blocks are either included from ``docs/examples/`` (run below,
against real SQLite files) or open with a ``# not run:`` line saying why (a
settings fragment, a worker command). ``mkdocs build --strict`` itself runs in
``scripts/test``; ``docs/examples/alembic_env.py`` is the env.py of the Alembic test in
``tests/test_run.py``.
"""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dbhelpers import seed

ROOT = Path(__file__).resolve().parent.parent
DOCS, EXAMPLES = ROOT / "docs", ROOT / "docs" / "examples"
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INCLUDE = re.compile(r'^--8<-- "docs/examples/([\w.]+)"$')
SCRIPTS = [
    "quickstart.py",
    "pinned_block.py",
    "settings_board.py",
    "sqlmodel_app.py",
    "background_job.py",
    "using_a_board.py",
    "read_only.py",
    "time_limit.py",
    "observability.py",
    "previews.py",
]


def blocks() -> Iterator[tuple[str, str]]:
    for page in sorted(DOCS.rglob("*.md")):
        for match in FENCE.finditer(page.read_text(encoding="utf-8")):
            yield str(page.relative_to(ROOT)), match.group(1).strip()


def test_every_python_block_is_an_example_that_runs_or_says_why_not() -> None:
    included = set()
    for page, block in blocks():
        first = block.splitlines()[0] if block else ""
        found = INCLUDE.match(first)
        if found:
            assert (EXAMPLES / found.group(1)).is_file(), (page, first)
            included.add(found.group(1))
        else:
            assert first.startswith("# not run:"), f"{page}: a block neither included nor marked"
    on_disk = {p.name for p in EXAMPLES.glob("*.py")}
    assert on_disk <= included, f"examples no page shows: {on_disk - included}"
    assert (
        set(SCRIPTS) | {"fastapi_app.py", "flask_app.py", "alembic_env.py"} >= on_disk
    )  # each one run


@pytest.fixture
def app_env(tmp_path: Path, sqlite_url: Callable[[str], str]) -> dict[str, str]:
    """An app's environment: two SQLite targets with an ``items`` table, a fresh runtime dir."""
    urls = {"local": sqlite_url("local"), "production": sqlite_url("production")}
    seed(urls["local"], ["local-1"])
    seed(urls["production"], ["prod-1", "prod-2"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DBSWAP_"))}
    return env | {
        "DATABASE_URL_LOCAL": urls["local"],
        "DATABASE_URL_PRODUCTION": urls["production"],
        "DBSWAP_RUNTIME_DIR": str(tmp_path / "runtime"),
    }


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_example_script_runs(script: str, app_env: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=tmp_path,
        env=app_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_the_quickstart_reads_each_target(app_env: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")],
        cwd=tmp_path,
        env=app_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.splitlines() == ["local ['local-1']", "production ['prod-1', 'prod-2']", "2"]


def _load(script: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return runpy.run_path(str(EXAMPLES / script))


def test_the_fastapi_example_switches_what_its_page_reads(
    app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.testclient import TestClient

    module = _load("fastapi_app.py", app_env | {"ADMIN_TOKEN": "t0ken"}, monkeypatch)
    admin = {"Authorization": "Bearer t0ken"}
    with TestClient(module["app"]) as client:  # type: ignore[arg-type]
        assert client.get("/items").json() == {"target": "local", "items": ["local-1"]}
        switched = client.post(
            "/api/admin/database/switch", json={"target": "production"}, headers=admin
        )
        assert switched.status_code == 200, switched.text
        assert client.get("/items").json()["items"] == ["prod-1", "prod-2"]
        refused = client.post("/api/admin/database/switch", json={"target": "local"})
        assert refused.status_code == 401
    module["board"].close()  # type: ignore[attr-defined]


def test_the_flask_example_switches_what_its_page_reads(
    app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    module = _load("flask_app.py", app_env, monkeypatch)
    app = module["create_app"]()  # type: ignore[operator]
    client = app.test_client()
    assert client.get("/items").json == {"target": "local", "items": ["local-1"]}
    board = app.extensions["dbswap"].board
    board.use("production")
    assert client.get("/items").json == {"target": "production", "items": ["prod-1", "prod-2"]}
    with client.session_transaction() as session:
        session["user"] = "admin"
    page = client.get("/admin/configuration")
    assert page.status_code == 200 and b"production" in page.data
    board.close()
