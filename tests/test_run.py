"""One command, or one block of code, against one target, without switching anybody.

``dbswap run TARGET -- COMMAND`` runs COMMAND (a real subprocess) with every
board in it pinned; ``board.pinned(name)`` does the same for a block of code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from dbhelpers import ITEMS, labels, seed, tables
from dbswap import ConfigError, Switchboard, SwitchLocked, UnknownTarget

# What a migration or init script does: build the app's board, report, write a row.
CHILD = textwrap.dedent(
    """
    import json, sys
    import sqlalchemy as sa
    from dbswap import Switchboard

    board = Switchboard.from_env()
    with board.sessionmaker()() as s:
        s.execute(sa.text("INSERT INTO items (id, label) VALUES (99, 'from-the-run')"))
        s.commit()
        session_target = s.dbswap_target
    with board.engine.connect() as conn:
        engine_url = conn.engine.url.database
    print(json.dumps({"active": board.active, "session": session_target, "engine": engine_url}))
    sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    """
)


@pytest.fixture
def project(
    tmp_path: Path, sqlite_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """An app's environment: two seeded SQLite targets and a shared runtime dir."""
    local, production = sqlite_url("local"), sqlite_url("production")
    seed(local, ["l"])
    seed(production, ["p"])
    (tmp_path / "child.py").write_text(CHILD)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "DBSWAP_"))
    }
    env |= {
        "DATABASE_URL_LOCAL": local,
        "DATABASE_URL_PRODUCTION": production,
        "DBSWAP_RUNTIME_DIR": str(tmp_path / "rt"),
    }
    monkeypatch.chdir(tmp_path)
    return env


def dbswap(
    env: dict[str, str], *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dbswap", *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_pins_the_command_and_moves_nobody(project: dict[str, str]) -> None:
    before = json.loads(dbswap(project, "status", "--json").stdout)
    done = dbswap(project, "run", "production", "--yes", "--", sys.executable, "child.py")
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["active"] == seen["session"] == "production"
    assert seen["engine"].endswith("production.db")
    assert labels(project["DATABASE_URL_PRODUCTION"]) == ["p", "from-the-run"]
    assert labels(project["DATABASE_URL_LOCAL"]) == ["l"]  # nothing written elsewhere
    after = json.loads(dbswap(project, "status", "--json").stdout)
    assert (after["target"], after["generation"]) == (before["target"], before["generation"])
    board = Switchboard.from_env(project)
    try:
        assert board.active == "local"  # another process, same runtime dir: not moved
    finally:
        board.close()


def test_run_asks_before_production_and_runs_nothing_without_a_yes(
    project: dict[str, str],
) -> None:
    refused = dbswap(project, "run", "production", "--", sys.executable, "child.py", input="n\n")
    assert refused.returncode == 1
    assert "not confirmed" in refused.stderr
    assert labels(project["DATABASE_URL_PRODUCTION"]) == ["p"]
    confirmed = dbswap(project, "run", "production", "--", sys.executable, "child.py", input="y\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert labels(project["DATABASE_URL_PRODUCTION"]) == ["p", "from-the-run"]


def test_run_exits_with_the_commands_code_and_is_audited(project: dict[str, str]) -> None:
    done = dbswap(project, "run", "local", "--user", "ops", "--", sys.executable, "child.py", "3")
    assert done.returncode == 3
    history = json.loads(dbswap(project, "history", "--json").stdout)
    run = history[0]
    assert run["outcome"] == "run"
    assert (run["to"], run["user"], run["exit_code"]) == ("local", "ops", 3)
    assert run["command"] == os.path.basename(sys.executable)  # its name, never its arguments
    assert "child.py" not in json.dumps(run)


def test_run_refuses_an_unknown_target_or_command_clearly(project: dict[str, str]) -> None:
    unknown = dbswap(project, "run", "staging", "--", "true")
    assert unknown.returncode == 1
    assert "staging" in unknown.stderr and "local" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    missing = dbswap(project, "run", "local", "--", "no-such-command-dbswap")
    assert missing.returncode == 127
    assert "cannot run 'no-such-command-dbswap'" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_a_pinned_process_refuses_to_switch_the_others(project: dict[str, str]) -> None:
    inside = dbswap(
        project, "run", "local", "--", sys.executable, "-m", "dbswap", "use", "production", "--yes"
    )
    assert inside.returncode == 1
    assert "pinned" in inside.stderr
    assert json.loads(dbswap(project, "status", "--json").stdout)["generation"] == 0


def test_a_pin_to_a_target_the_app_lacks_is_a_config_error(
    sqlite_url: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBSWAP_PINNED_TARGET", "staging")
    with pytest.raises(ConfigError, match="DBSWAP_PINNED_TARGET='staging'"):
        Switchboard({"local": sqlite_url("local")}, runtime_dir=tmp_path / "rt")


# -- board.pinned(): the same for a block of code -----------------------------


@pytest.fixture
def board(tmp_path: Path, sqlite_url: Callable[[str], str]) -> Switchboard:
    urls = {"local": sqlite_url("local"), "production": sqlite_url("production")}
    seed(urls["local"], ["l"])
    seed(urls["production"], ["p"])
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")
    yield board
    board.close()


def read(board: Switchboard) -> tuple[str | None, list[str]]:
    with board.sessionmaker()() as s:
        return s.dbswap_target, list(s.scalars(sa.select(ITEMS.c.label)))


def test_pinned_block_uses_its_target_and_leaves_the_state_alone(board: Switchboard) -> None:
    assert read(board) == ("local", ["l"])  # a warm fast pin to local
    with board.pinned("production"):
        assert board.active == "production"
        assert read(board) == ("production", ["p"])
        with board.engine.connect() as conn:
            assert conn.execute(sa.select(ITEMS.c.label)).scalar() == "p"
    assert board.active == "local" and board.generation == 0
    assert read(board) == ("local", ["l"])


def test_pinned_block_does_not_move_other_threads(board: Switchboard) -> None:
    inside, seen = threading.Event(), threading.Event()
    others: list[tuple[str | None, list[str]]] = []

    def other_thread() -> None:
        inside.wait(10)
        others.extend(read(board) for _ in range(20))
        seen.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with board.pinned("production"):
        inside.set()
        mine = [read(board) for _ in range(20)]
        seen.wait(10)
    thread.join(10)
    assert {(t, tuple(rows)) for t, rows in mine} == {("production", ("p",))}
    assert {(t, tuple(rows)) for t, rows in others} == {("local", ("l",))}


def test_pinned_refuses_an_unknown_target_and_a_locked_process(
    board: Switchboard, tmp_path: Path, sqlite_url: Callable[[str], str]
) -> None:
    with pytest.raises(UnknownTarget), board.pinned("staging"):
        pass
    locked = Switchboard(
        {"local": sqlite_url("l2"), "production": sqlite_url("p2")},
        runtime_dir=tmp_path / "rt2",
        production_lock=True,
    )
    try:
        with pytest.raises(SwitchLocked), locked.pinned("local"):
            pass
    finally:
        locked.close()


def test_flask_dbswap_run_pins_the_command_to_the_apps_target(
    project: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``flask dbswap run`` is the same command on the app's own board."""
    from flask import Flask

    from dbswap.flask import DBSwap

    for key, value in project.items():
        monkeypatch.setenv(key, value)
    app = Flask(__name__)
    DBSwap(app)  # board from the environment: the command's child builds the same one
    report = tmp_path / "seen.txt"
    child = (
        "import sys; from dbswap import Switchboard; "
        f"open({str(report)!r}, 'w').write(Switchboard.from_env().active)"
    )
    runner = app.test_cli_runner()
    done = runner.invoke(
        args=["dbswap", "run", "production", "--yes", "--", sys.executable, "-c", child]
    )
    assert done.exit_code == 0, done.output
    assert report.read_text() == "production"
    board = app.extensions["dbswap"].board
    assert board.active == "local"
    assert board.history(1)[0]["outcome"] == "run"


ALEMBIC_ENV = (Path(__file__).parent.parent / "docs" / "examples" / "alembic_env.py").read_text()

ALEMBIC_REVISION = """
from alembic import op
import sqlalchemy as sa

revision = "aaaa00000001"
down_revision = None


def upgrade():
    op.create_table("tracks", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("tracks")
"""


def test_alembic_upgrade_under_dbswap_run_migrates_that_target_only(
    project: dict[str, str], tmp_path: Path
) -> None:
    """The README's recipe: `dbswap run production -- alembic upgrade head`."""
    root = tmp_path / "migrations"
    (root / "versions").mkdir(parents=True)
    (root / "env.py").write_text(ALEMBIC_ENV)
    (root / "script.py.mako").write_text("")
    (root / "versions" / "aaaa00000001.py").write_text(ALEMBIC_REVISION)
    (tmp_path / "alembic.ini").write_text(f"[alembic]\nscript_location = {root}\n")
    alembic = str(Path(sys.executable).with_name("alembic"))
    done = dbswap(project, "run", "production", "--yes", "--", alembic, "upgrade", "head")
    assert done.returncode == 0, done.stderr

    assert {"tracks", "alembic_version"} <= tables(project["DATABASE_URL_PRODUCTION"])
    assert tables(project["DATABASE_URL_LOCAL"]) == {"items"}
