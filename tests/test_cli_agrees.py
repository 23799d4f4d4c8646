"""The plain CLI agrees with the running app, and says what it is doing.

Real processes: the app runs (and publishes how it resolved its targets in its
runtime dir), and the real ``dbswap`` command is run from a shell, as a
developer would, in the app's directory or elsewhere.
"""

from __future__ import annotations

import json
import os
import pty
import select
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbhelpers import seed

PY = sys.executable

FLASK_APP = textwrap.dedent(
    """
    import sys
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy
    from dbswap.flask import DBSwap, Session

    db = SQLAlchemy(session_options={"class_": Session})
    app = Flask("flaskr", instance_path=sys.argv[1])
    DBSwap(app, db=db)  # relative SQLite paths: in the instance folder, as Flask-SQLAlchemy
    print("ready", flush=True)
    sys.stdin.readline()
    """
)


def shell_env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DBSWAP_"))}
    return base | extra


def dbswap(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "dbswap", *args],
        cwd=cwd,
        env=shell_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def running(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.communicate("stop\n", timeout=20)


def start(
    running: list[subprocess.Popen[str]], cwd: Path, code: str, *args: str
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [PY, "-c", code, *args],
        cwd=cwd,
        env=shell_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    running.append(process)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line == "ready\n", line + (process.stderr.read() if process.stderr else "")
    return process


def test_the_cli_resolves_a_flask_apps_relative_sqlite_paths_as_the_app_does(
    tmp_path: Path, running: list[subprocess.Popen[str]]
) -> None:
    app, instance = tmp_path / "flaskr", tmp_path / "flaskr" / "instance"
    instance.mkdir(parents=True)
    for name in ("flaskr", "prod"):
        seed(f"sqlite:///{instance / name}.sqlite", [name])
    (app / ".env").write_text(
        "DATABASE_URL_LOCAL=sqlite:///flaskr.sqlite\nDATABASE_URL_PRODUCTION=sqlite:///prod.sqlite\n"
    )
    start(running, app, FLASK_APP, str(instance))
    done = dbswap(app, "use", "production", "--yes")
    assert done.returncode == 0, done.stderr  # not "file does not exist" in the cwd
    status = json.loads(dbswap(app, "status", "--json").stdout)
    assert status["target"] == "production"
    assert status["url"] == f"sqlite:///{instance / 'prod.sqlite'}"
    assert [f["target"] for f in status["followers"]] == ["production"]


PUBLISHER = textwrap.dedent(
    """
    import sys
    from dbswap import Switchboard

    board = Switchboard({"local": sys.argv[1], "production": sys.argv[2]})
    board.follow()
    print("ready", flush=True)
    sys.stdin.readline()
    board.close()
    """
)


def test_a_target_the_shell_resolves_differently_is_refused_with_what_to_set(
    tmp_path: Path, running: list[subprocess.Popen[str]]
) -> None:
    local = f"sqlite:///{tmp_path / 'local.db'}"
    seed(local, ["l"])
    app_url = "postgresql+psycopg://app:S3cretPw@db.internal:5432/shop"
    start(running, tmp_path, PUBLISHER, local, app_url)
    done = dbswap(
        tmp_path,
        "status",
        DATABASE_URL_LOCAL=local,
        DATABASE_URL_PRODUCTION="postgresql+psycopg://me@127.0.0.1:5432/shop_copy",
    )
    assert done.returncode == 2
    assert "resolves targets differently from the app" in done.stderr
    assert "set DATABASE_URL_PRODUCTION" in done.stderr and "db.internal" in done.stderr
    assert "S3cretPw" not in done.stderr + done.stdout


def test_env_file_and_where_the_cli_looked(tmp_path: Path) -> None:
    project, sub = tmp_path / "project", tmp_path / "project" / "src"
    sub.mkdir(parents=True)
    for name in ("local", "production"):
        seed(f"sqlite:///{project / name}.db", [name])
    (project / ".env").write_text(
        f"DATABASE_URL_LOCAL=sqlite:///{project / 'local.db'}\n"
        f"DATABASE_URL_PRODUCTION=sqlite:///{project / 'production.db'}\n"
        f"DBSWAP_RUNTIME_DIR={project / '.runtime'}\n"
    )
    lost = dbswap(sub, "status")
    assert lost.returncode == 2
    assert str(sub / ".env") in lost.stderr and "--env-file" in lost.stderr
    found = dbswap(sub, "--env-file", str(project / ".env"), "use", "production", "--yes")
    assert found.returncode == 0, found.stderr
    # history needs no target: the runtime dir is enough
    history = dbswap(tmp_path, "history", DBSWAP_RUNTIME_DIR=str(project / ".runtime"))
    assert history.returncode == 0, history.stderr
    assert "local -> production" in history.stdout


def test_a_misspelled_target_gets_a_suggestion(tmp_path: Path) -> None:
    for name in ("local", "production"):
        seed(f"sqlite:///{tmp_path / name}.db", [name])
    urls = {
        "DATABASE_URL_LOCAL": f"sqlite:///{tmp_path / 'local.db'}",
        "DATABASE_URL_PRODUCTION": f"sqlite:///{tmp_path / 'production.db'}",
    }
    done = dbswap(tmp_path, "use", "prodution", **urls)
    assert done.returncode == 1
    assert "did you mean 'production'?" in done.stderr


def test_a_slow_health_check_says_what_it_is_doing_on_a_terminal(tmp_path: Path) -> None:
    server = socket.socket()  # a database server that accepts and never answers
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    seed(f"sqlite:///{tmp_path / 'local.db'}", ["l"])
    env = shell_env(
        DATABASE_URL_LOCAL=f"sqlite:///{tmp_path / 'local.db'}",
        DATABASE_URL_STAGING=f"postgresql+psycopg://x@127.0.0.1:{server.getsockname()[1]}/x",
    )
    leader, follower = pty.openpty()  # the CLI's stderr is a terminal
    try:
        process = subprocess.Popen(
            [PY, "-m", "dbswap", "use", "staging", "--timeout", "2"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
        )
        os.close(follower)
        shown = b""
        deadline = time.monotonic() + 20
        while process.poll() is None and time.monotonic() < deadline:
            if select.select([leader], [], [], 0.1)[0]:
                try:
                    shown += os.read(leader, 4096)
                except OSError:
                    break
        process.communicate(timeout=20)
        assert process.returncode == 1
        assert "checking 'staging' (up to 2 s)..." in shown.decode()
    finally:
        os.close(leader)
        stop.set()
        for conn in held:
            conn.close()
        server.close()
