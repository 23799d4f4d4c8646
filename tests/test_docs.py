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
from typing import Any

import pytest
from sqlalchemy import orm as sa_orm

from dbhelpers import seed

ROOT = Path(__file__).resolve().parent.parent
DOCS, EXAMPLES = ROOT / "docs", ROOT / "docs" / "examples"
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INCLUDE = re.compile(r'^--8<-- "docs/examples/([\w.]+)"$')
SCRIPTS = [
    "pinned_block.py",
    "settings_board.py",
    "background_job.py",
    "using_a_board.py",
    "read_only.py",
    "time_limit.py",
    "observability.py",
    "previews.py",
    "function_cache.py",
    "passing_an_engine.py",
]
# Run in a directory of their own (they make their databases): see the tests below.
ON_THEIR_OWN = {"quickstart.py", "example_databases.py"}


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
        set(SCRIPTS)
        | ON_THEIR_OWN
        | {"fastapi_app.py", "sqlmodel_app.py", "flask_app.py", "alembic_env.py"}
        >= on_disk
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


def test_the_api_reference_describes_every_parameter_and_field() -> None:
    """Its tables of ``Switchboard(...)`` and ``Change`` keep up with the code."""
    import dataclasses
    import inspect

    import dbswap

    page = (DOCS / "reference" / "api.md").read_text(encoding="utf-8")
    names = [*inspect.signature(dbswap.Switchboard).parameters]
    names += [field.name for field in dataclasses.fields(dbswap.Change)]
    assert [name for name in names if f"| `{name}` |" not in page] == []


def _run(script: str, cwd: Path, env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _bare_env() -> dict[str, str]:
    """The environment of a newcomer's shell: no target, no dbswap variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DBSWAP_"))}


def test_the_readme_shows_the_quickstart_as_it_is_tested() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = FENCE.search(readme)
    assert found is not None
    assert found.group(1) == (EXAMPLES / "quickstart.py").read_text(encoding="utf-8")


def test_the_quickstart_makes_what_it_reads_in_an_empty_directory(tmp_path: Path) -> None:
    """Copied into an empty directory and run with no variable set, twice (as people do)."""
    expected = ["local ['local-1']", "production ['production-1']", "production 1"]
    env = _bare_env() | {"DBSWAP_TEST_GUARD": os.environ.get("DBSWAP_TEST_GUARD", "")}
    assert _run("quickstart.py", tmp_path, env) == expected
    assert _run("quickstart.py", tmp_path, env) == expected
    assert {p.name for p in tmp_path.iterdir()} == {"local.db", "production.db", ".runtime"}


def test_the_guides_databases_run_the_examples_from_a_dot_env(tmp_path: Path) -> None:
    """The guides' way: ``python example_databases.py > .env``, then an example."""
    env = _bare_env() | {"DBSWAP_TEST_GUARD": os.environ.get("DBSWAP_TEST_GUARD", "")}
    lines = _run("example_databases.py", tmp_path, env)
    (tmp_path / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert [line.split("=")[0] for line in lines] == [
        "DATABASE_URL_LOCAL",
        "DATABASE_URL_PRODUCTION",
    ]
    assert _run("passing_an_engine.py", tmp_path, env) == [
        "1 ['local-1']",
        "2 ['prod-1', 'prod-2']",
        "production",
        "local 1",
    ]
    assert _run("example_databases.py", tmp_path, env) == lines  # again: anew


def test_the_function_cache_recipe_never_serves_another_targets_value(
    app_env: dict[str, str], tmp_path: Path
) -> None:
    """Keyed by target and cleared by ``on_change``: after a switch made by another board
    (another process, as the CLI), each function reads production; back on local, the
    keyed one serves local's value from its cache."""
    assert _run("function_cache.py", tmp_path, app_env) == [
        "local ('local-1',) 1",
        "production ('prod-1', 'prod-2') 2",
        "local ('local-1',) 1",
        "1 hit",
    ]


def _load(script: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return runpy.run_path(str(EXAMPLES / script))


def test_the_fastapi_example_switches_what_its_page_reads(
    app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.testclient import TestClient

    module = _load("fastapi_app.py", app_env | FASTAPI_ENV, monkeypatch)
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


FASTAPI_ENV = {"ADMIN_TOKEN": "t0ken", "SECRET_KEY": "docs-example-secret-0123456789"}
# User 1 of each target: a plain user on local, the superuser on production.
USERS = {
    "local": ("ann@local.test", "ann-pw", False),
    "production": ("root@prod.test", "root-pw", True),
}


def _seed_users(module: dict[str, Any], user: Any) -> None:
    """The example's ``users`` table in each target, user 1 somebody else on each."""
    board = module["board"]
    for name, (email, password, superuser) in USERS.items():
        engine = board.engine_for(name)
        module["Base"].metadata.create_all(engine)
        with sa_orm.Session(engine) as session:
            hashed = module["hash_password"](password)
            session.add(user(id=1, email=email, password_hash=hashed, is_superuser=superuser))
            session.commit()


def _switch(client: Any, **body: Any) -> None:
    done = client.post(
        "/api/admin/database/switch", json=body, headers={"Authorization": "Bearer t0ken"}
    )
    assert done.status_code == 200, done.text


def test_the_fastapi_example_binds_its_tokens_to_their_target(
    app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copied as it is, the example never serves a local user's token as production's
    superuser of the same id (401), and a write of a read-only switch is a 409."""
    from starlette.testclient import TestClient

    module = _load("fastapi_app.py", app_env | FASTAPI_ENV, monkeypatch)
    _seed_users(module, module["User"])

    def log_in(client: Any, target: str) -> dict[str, str]:
        email, password, _ = USERS[target]
        answer = client.post("/login", data={"username": email, "password": password})
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    with TestClient(module["app"]) as client:  # type: ignore[arg-type]
        ann = log_in(client, "local")
        assert client.get("/users/me", headers=ann).json() == {
            "email": "ann@local.test",
            "is_superuser": False,
        }
        _switch(client, target="production")
        refused = client.get("/users/me", headers=ann)
        assert refused.status_code == 401, refused.text  # never root, production's user 1
        assert "'local'" in refused.json()["detail"]
        assert client.post("/items", params={"label": "x"}, headers=ann).status_code == 401
        root = log_in(client, "production")
        assert client.get("/users/me", headers=root).json()["is_superuser"] is True
        _switch(client, target="local")
        assert client.get("/users/me", headers=root).status_code == 401
        assert client.get("/users/me", headers=ann).json()["email"] == "ann@local.test"

        _switch(client, target="production", readOnly=True)
        root = log_in(client, "production")
        written = client.post("/items", params={"label": "refused"}, headers=root)
        assert written.status_code == 409, written.text
        assert written.json()["error"] == "read_only" and written.json()["preview"] is False
        page = client.post(
            "/items", params={"label": "refused"}, headers=root | {"Accept": "text/html"}
        )
        assert page.status_code == 409 and page.headers["content-type"].startswith("text/html")
        assert client.get("/items").json()["items"] == ["prod-1", "prod-2"]
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


def test_the_sqlmodel_example_binds_its_cookie_logins_to_their_target(
    app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copied as it is, the example never serves a local user's cookie as production's
    superuser of the same id (401); its sync and async SQLModel sessions follow the switch."""
    from starlette.testclient import TestClient

    module = _load("sqlmodel_app.py", app_env | {"SECRET_KEY": "sqlmodel-secret-0123"}, monkeypatch)
    board, user = module["board"], module["User"]
    for name, (email, password, superuser) in USERS.items():
        engine = board.engine_for(name)
        with sa_orm.Session(engine) as session:
            hashed = module["hash_password"](password, email)
            session.add(user(id=1, name=email, password_hash=hashed, is_superuser=superuser))
            session.commit()

    def log_in(client: Any, target: str) -> None:
        email, password, _ = USERS[target]
        answer = client.post("/login", params={"name": email, "password": password})
        assert answer.status_code == 200, answer.text

    with TestClient(module["app"]) as client:  # type: ignore[arg-type]
        log_in(client, "local")
        assert client.get("/me").json() == {
            "name": "ann@local.test",
            "is_superuser": False,
            "target": "local",
        }
        assert client.post("/heroes", json={"name": "Deadpond"}).status_code == 201
        board.use("production", user="docs")
        refused = client.get("/me")
        assert refused.status_code == 401, refused.text  # never root, production's user 1
        assert client.post("/heroes", json={"name": "Spider-Boy"}).status_code == 401
        assert client.get("/heroes").json() == []
        log_in(client, "production")
        assert client.get("/me").json()["is_superuser"] is True
        assert client.post("/heroes", json={"name": "Rusty-Man"}).status_code == 201
        assert client.get("/heroes").json() == ["Rusty-Man"]
        board.use("local", user="docs")
        assert client.get("/me").status_code == 401
        assert client.get("/heroes").json() == ["Deadpond"]
    board.close()
