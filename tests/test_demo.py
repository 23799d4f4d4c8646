"""The demo app behind ``dbswap demo``: its data follows each switch, with no restart."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import dbswap
from dbswap.demo import SEED_EVENTS, SEED_TRACKS, create_app, demo_board
from dbswap.demo._app import SESSION_COOKIE
from dbswap.demo._data import seed_rows
from dbswap.demo.cli import demo_command
from webhelpers import PAGE, STATUS, SWITCH, TestClient, live_server

PASSWORD = "demo-Pa55word-x1"
TOKEN = "demo-T0ken-7d1e"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def _titles(target: str) -> list[str]:
    return [title for title, _, _ in SEED_TRACKS[target]]


@pytest.fixture
def make_board(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], dbswap.Switchboard]]:
    """Factory: a board on two fresh databases of the given backend."""
    boards: list[dbswap.Switchboard] = []

    def make(backend: str) -> dbswap.Switchboard:
        factory = request.getfixturevalue(f"{backend}_url")
        urls = {name: factory(name) for name in ("local", "production")}
        board = dbswap.Switchboard(urls, runtime_dir=tmp_path / "rt")
        boards.append(board)
        return board

    yield make
    for board in boards:
        board.dispose()


@pytest.fixture
def board(make_board: Callable[[str], dbswap.Switchboard]) -> dbswap.Switchboard:
    return make_board("sqlite")


@pytest.fixture
def client(board: dbswap.Switchboard) -> Iterator[TestClient]:
    app = create_app(board, admin_password=PASSWORD, admin_token=TOKEN)
    with TestClient(app) as client:
        yield client


def _switch(client: TestClient, target: str) -> None:
    response = client.post(SWITCH, json={"target": target}, headers=BEARER)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "backend",
    [
        "sqlite",
        pytest.param("pg", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_api_tracks_serves_the_other_database_after_each_switch(
    make_board: Callable[[str], dbswap.Switchboard], backend: str
) -> None:
    """Switch, switch back, and again: every request reads the target just switched to."""
    board = make_board(backend)
    app = create_app(board, admin_password=PASSWORD, admin_token=TOKEN)
    with TestClient(app) as client:
        assert app.state.unprepared == {}
        for _ in range(3):
            for target in ("production", "local"):
                _switch(client, target)
                body = client.get("/api/tracks").json()
                assert body["target"] == target
                assert [t["title"] for t in body["tracks"]] == _titles(target)
                events = client.get("/api/events").json()["events"]
                assert [e["title"] for e in events] == [e[0] for e in SEED_EVENTS[target]]
    assert board.state.generation == 6
    # The demo's tables were created in each real database, not only seen through dbswap.
    for name in ("local", "production"):
        engine = sa.create_engine(board.url_for(name))
        try:
            with engine.connect() as conn:
                count = conn.execute(sa.text("SELECT count(*) FROM dbswap_demo_tracks")).scalar()
        finally:
            engine.dispose()
        assert count == len(SEED_TRACKS[name])


def test_every_page_shows_a_banner_only_while_on_production(client: TestClient) -> None:
    for path in ("/", "/events", "/login"):
        assert 'id="production-banner"' not in client.get(path).text
    assert "Night Drive (draft)" in client.get("/").text
    _switch(client, "production")
    for path in ("/", "/events", "/login"):
        page = client.get(path).text
        assert 'id="production-banner"' in page and "PRODUCTION DATABASE" in page
    assert "Sunset Boulevard" in client.get("/").text
    assert "Warehouse Night" in client.get("/events").text
    _switch(client, "local")
    assert 'id="production-banner"' not in client.get("/").text


def test_the_admin_logs_in_with_the_password_and_never_elsewhere(client: TestClient) -> None:
    assert client.get(STATUS).status_code == 401
    wrong = client.post("/login", data={"password": "guess"})
    assert wrong.status_code == 401 and "Wrong password." in wrong.text
    assert client.get(STATUS).status_code == 401
    evil = client.post(
        "/login", data={"password": PASSWORD, "next": "//evil.example/x"}, follow_redirects=False
    )
    assert evil.status_code == 303 and evil.headers["location"] == PAGE
    assert client.get(STATUS).json()["target"] == "local"
    page = client.get(PAGE)
    assert page.status_code == 200 and "Signed in as admin" in page.text
    client.post("/logout")
    assert client.get(STATUS).status_code == 401
    assert client.get(PAGE, follow_redirects=False).headers["location"].startswith("/login?next=")


class FakeClock:
    """A clock the test moves by hand: the login window passes without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failed_logins_are_limited_per_client_address(board: dbswap.Switchboard) -> None:
    clock = FakeClock()
    app = create_app(board, admin_password=PASSWORD, clock=clock)
    with TestClient(app) as client, TestClient(app, client=("10.0.0.2", 50000)) as other:
        for _ in range(5):
            assert client.post("/login", data={"password": "guess"}).status_code == 401
        limited = client.post("/login", data={"password": "guess"})
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "60"
        assert "Too many failed log-ins from your address; try again in 60 s." in limited.text
        clock.now += 30
        right = client.post("/login", data={"password": PASSWORD}, follow_redirects=False)
        assert right.status_code == 429 and right.headers["Retry-After"] == "30"  # still waits
        assert client.get(STATUS).status_code == 401
        # Another address is not held back by this one's failures.
        assert other.post("/login", data={"password": PASSWORD}).status_code == 200
        assert other.get(STATUS).status_code == 200
        clock.now += 31  # the oldest failure is now older than the window
        assert client.post("/login", data={"password": PASSWORD}).status_code == 200
        assert client.get(STATUS).status_code == 200
        # A success forgets the failures: five more wrong ones before the next 429.
        for _ in range(5):
            assert client.post("/login", data={"password": "guess"}).status_code == 401
        assert client.post("/login", data={"password": "guess"}).status_code == 429


def test_logout_revokes_the_session_even_for_a_copy_of_its_cookie(
    board: dbswap.Switchboard,
) -> None:
    app = create_app(board, admin_password=PASSWORD)
    with TestClient(app) as client:
        client.post("/login", data={"password": PASSWORD})
        assert client.get(STATUS).status_code == 200
        stolen = client.cookies[SESSION_COOKIE]  # e.g. left in another browser, or copied
        client.post("/logout")
        assert client.get(STATUS).status_code == 401
    with TestClient(app, cookies={SESSION_COOKIE: stolen}) as replay:
        assert replay.get(STATUS).status_code == 401
        assert replay.post(SWITCH, json={"target": "production"}).status_code == 401
        page = replay.get(PAGE, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
        assert "Log out admin" not in replay.get("/").text
    assert board.active == "local"
    with TestClient(app) as client:  # logging in again works, with a new session
        client.post("/login", data={"password": PASSWORD})
        assert client.get(STATUS).status_code == 200
        assert client.cookies[SESSION_COOKIE] != stolen


def test_bearer_tokens_are_checked_and_off_unless_configured(board: dbswap.Switchboard) -> None:
    with TestClient(create_app(board, admin_password=PASSWORD, admin_token=TOKEN)) as client:
        assert client.get(STATUS, headers=BEARER).status_code == 200
        bad = client.get(STATUS, headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401 and bad.json()["message"] == "invalid API token"
        basic = client.get(STATUS, headers={"Authorization": "Basic YWRtaW46eA=="})
        assert basic.status_code == 401
    with TestClient(create_app(board, admin_password=PASSWORD)) as client:
        off = client.get(STATUS, headers=BEARER)
        assert off.status_code == 401 and "DBSWAP_ADMIN_TOKEN" in off.json()["message"]


def test_an_unreadable_database_is_a_503_not_a_500(
    client: TestClient, board: dbswap.Switchboard
) -> None:
    _switch(client, "production")
    path = board.targets["production"].sa_url.database
    with sqlite3.connect(str(path)) as conn:
        conn.execute("DROP TABLE dbswap_demo_tracks")
    conn.close()
    api = client.get("/api/tracks")
    assert api.status_code == 503 and "production" in api.json()["message"]
    page = client.get("/")
    assert page.status_code == 503 and "cannot be read right now" in page.text
    assert "Traceback" not in page.text and "DROP" not in api.text


def test_starting_twice_adds_no_rows_and_reports_unreachable_targets(
    sqlite_url: Callable[[str], str], tmp_path: Path
) -> None:
    board = dbswap.Switchboard(
        {
            "local": sqlite_url("local"),
            "production": sqlite_url("production"),
            "staging": "postgresql://app:St4gingPw@127.0.0.1:1/staging",
        },
        runtime_dir=tmp_path / "rt",
    )
    try:
        first = create_app(board, admin_password=PASSWORD)
        second = create_app(board, admin_password=PASSWORD)
        assert set(first.state.unprepared) == set(second.state.unprepared) == {"staging"}
        assert "St4gingPw" not in second.state.unprepared["staging"]
        with TestClient(second) as client:
            assert [t["title"] for t in client.get("/api/tracks").json()["tracks"]] == _titles(
                "local"
            )
    finally:
        board.dispose()


def test_demo_board_makes_two_sqlite_databases_or_uses_the_environment(
    tmp_path: Path, sqlite_url: Callable[[str], str]
) -> None:
    board = demo_board("data", environ={}, cwd=tmp_path)
    try:
        assert set(board.targets) == {"local", "production"}
        for name in board.targets:
            assert board.url_for(name) == f"sqlite:///{tmp_path / 'data' / name}.db"
            assert (tmp_path / "data" / f"{name}.db").is_file()
        assert board.runtime_dir == tmp_path / "data" / "runtime"
    finally:
        board.dispose()
    env = {
        "DATABASE_URL_LOCAL": sqlite_url("env_local"),
        "DATABASE_URL_PRODUCTION": sqlite_url("env_prod"),
        "DBSWAP_RUNTIME_DIR": "rt-env",
    }
    board = demo_board("data", environ=env, cwd=tmp_path)
    try:
        assert board.url_for("production") == env["DATABASE_URL_PRODUCTION"]
        assert board.runtime_dir == tmp_path / "rt-env"
    finally:
        board.dispose()


def test_an_extra_target_of_the_environment_joins_the_two_defaults_and_is_served(
    tmp_path: Path, sqlite_url: Callable[[str], str]
) -> None:
    """Only DATABASE_URL_STAGING set: local and production are still the demo's SQLite files."""
    staging = sqlite_url("staging")
    board = demo_board("data", environ={"DATABASE_URL_STAGING": staging}, cwd=tmp_path)
    try:
        assert list(board.targets) == ["local", "production", "staging"]
        assert board.url_for("staging") == staging
        for name in ("local", "production"):
            assert board.url_for(name) == f"sqlite:///{tmp_path / 'data' / name}.db"
        assert board.default_target == "local" and board.active == "local"
        app = create_app(board, admin_password=PASSWORD, admin_token=TOKEN)
        with TestClient(app) as client:
            assert app.state.unprepared == {}
            status = client.get(STATUS, headers=BEARER).json()
            assert [t["name"] for t in status["targets"]] == ["local", "production", "staging"]
            assert client.get("/api/tracks").json()["target"] == "local"
            assert "(targets: local, production, staging)" in client.get("/").text

            _switch(client, "staging")
            body = client.get("/api/tracks").json()
            assert body["target"] == "staging"
            assert [t["title"] for t in body["tracks"]] == [
                t for t, _, _ in seed_rows("staging")[0]
            ]
            events = client.get("/api/events").json()
            assert events["target"] == "staging" and len(events["events"]) == 1
            page = client.get("/").text
            assert "<strong>staging</strong>" in page and "staging sample track" in page
            assert 'id="production-banner"' not in page
            client.post("/login", data={"password": PASSWORD})
            admin = client.get(PAGE).text
            assert (
                'data-target="staging"' in admin
                and 'id="active-badge" data-target="staging"' in admin
            )
    finally:
        board.dispose()
    # The rows were written into the staging database itself.
    with sqlite3.connect(str(tmp_path / "staging.db")) as conn:
        count = conn.execute("SELECT count(*) FROM dbswap_demo_tracks").fetchone()[0]
    conn.close()
    assert count == len(seed_rows("staging")[0])


def test_the_environment_wins_for_the_defaults_and_its_settings_still_apply(
    tmp_path: Path, sqlite_url: Callable[[str], str]
) -> None:
    env = {
        "DATABASE_URL_LOCAL": sqlite_url("env_local"),
        "DATABASE_URL_STAGING": sqlite_url("staging"),
        "BLOB_READ_WRITE_TOKEN_STAGING": "blob-staging",
        "DBSWAP_READONLY": "staging",
        "DBSWAP_RUNTIME_DIR": "rt-env",
    }
    board = demo_board("data", environ=env, cwd=tmp_path)
    try:
        assert list(board.targets) == ["local", "production", "staging"]
        assert board.url_for("local") == env["DATABASE_URL_LOCAL"]
        assert board.url_for("production") == f"sqlite:///{tmp_path / 'data' / 'production'}.db"
        assert not (tmp_path / "data" / "local.db").exists()
        assert board.read_only_targets == {"staging"}
        assert board.runtime_dir == tmp_path / "rt-env"
        assert dict(board.targets["staging"].settings) == {"BLOB_READ_WRITE_TOKEN": "blob-staging"}
    finally:
        board.dispose()
    locked_env = {"DATABASE_URL_STAGING": env["DATABASE_URL_STAGING"], "DBSWAP_ENV": "production"}
    locked = demo_board("data", environ=locked_env, cwd=tmp_path)
    try:
        assert locked.production_lock is True and locked.active == "production"
        assert set(locked.targets) == {"local", "production", "staging"}
    finally:
        locked.dispose()
    # Both defaults set: nothing of the demo's own, exactly as before.
    full = {
        "DATABASE_URL_LOCAL": env["DATABASE_URL_LOCAL"],
        "DATABASE_URL_PRODUCTION": sqlite_url("env_prod"),
    }
    board = demo_board("elsewhere", environ=full, cwd=tmp_path)
    try:
        assert list(board.targets) == ["local", "production"]
        assert not (tmp_path / "elsewhere").exists()
    finally:
        board.dispose()


def test_the_demo_runs_under_a_real_uvicorn_server(board: dbswap.Switchboard) -> None:
    app = create_app(board, admin_password=PASSWORD, admin_token=TOKEN)
    with live_server(app) as base, httpx.Client(base_url=base) as http:
        assert http.get("/api/tracks").json()["target"] == "local"
        response = http.post(SWITCH, json={"useProduction": True}, headers=BEARER)
        assert response.status_code == 200
        body = http.get("/api/tracks").json()
        assert [t["title"] for t in body["tracks"]] == _titles("production")
        assert http.post(SWITCH, json={"useProduction": False}, headers=BEARER).status_code == 200
        assert http.get("/api/tracks").json()["target"] == "local"


@pytest.mark.postgres
def test_no_secret_leaks_from_any_demo_page_or_response(
    pg_url: Callable[[str], str], sqlite_url: Callable[[str], str], tmp_path: Path
) -> None:
    """Database password, per-target token, admin password and API token: never in a body."""
    db_password, blob = "S3cretPw9", "vercel_blob_rw_demoSecretT0ken"
    production = sa.make_url(pg_url("demo_secret")).set(password=db_password)
    board = dbswap.Switchboard(
        [
            dbswap.Target("local", sqlite_url("local")),
            dbswap.Target(
                "production",
                production.render_as_string(hide_password=False),
                {"BLOB_READ_WRITE_TOKEN": blob},
            ),
        ],
        runtime_dir=tmp_path / "rt",
    )
    secrets = (db_password, blob, PASSWORD, TOKEN)
    bodies: list[str] = []
    try:
        app = create_app(board, admin_password=PASSWORD, admin_token=TOKEN)
        with TestClient(app) as client:
            bodies.append(client.post("/login", data={"password": "wrong"}).text)
            bodies.append(client.post("/login", data={"password": PASSWORD}).text)
            for target in ("production", "nowhere", "local"):
                bodies.append(client.post(SWITCH, json={"target": target}, headers=BEARER).text)
                for path in ("/", "/events", "/api/tracks", "/api/events", PAGE, STATUS):
                    bodies.append(client.get(path).text)
            bodies.append(client.get("/api/admin/database/history").text)
            bodies.append(client.get("/openapi.json").text)
            bodies.append(client.get("/no-such-page").text)
    finally:
        board.dispose()
    assert any("Sunset Boulevard" in body for body in bodies)  # production was really read
    for body in bodies:
        for secret in secrets:
            assert secret not in body


# -- the command ---------------------------------------------------------------------


def test_the_demo_command_documents_its_options() -> None:
    result = CliRunner().invoke(demo_command, ["--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--data-dir", "DBSWAP_ADMIN_PASSWORD"):
        assert option in result.output


def test_a_busy_port_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(demo_command, ["--port", str(port)], env=_clean_env())
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output


def test_a_bad_configuration_is_one_line_and_exit_code_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = _clean_env() | {
        "DATABASE_URL_LOCAL": "postgresql://app:Hidden9Pw@127.0.0.1:5432/",
        "DATABASE_URL_PRODUCTION": "postgresql://app:Hidden9Pw@127.0.0.1:5432/",
    }
    result = CliRunner().invoke(demo_command, ["--port", str(_free_port())], env=env)
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "same URL" in result.output
    assert "Hidden9Pw" not in result.output and "Traceback" not in result.output


def _clean_env() -> dict[str, str]:
    """The environment without any dbswap or database setting of the machine."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DBSWAP_"))}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_dbswap_demo_serves_switches_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    """The real command, as a user runs it: prints the password, serves, stops on Ctrl+C."""
    port = _free_port()
    env = _clean_env() | {"DBSWAP_ADMIN_TOKEN": TOKEN}
    stderr = (tmp_path / "stderr.txt").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "dbswap.demo", "--port", str(port), "--data-dir", "demo-data"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    try:
        assert process.stdout is not None
        output = ""
        while "Ctrl+C to stop." not in output:
            line = process.stdout.readline()
            assert line, f"the demo exited early: {output}"
            output += line
        password = re.search(r"password:\s+(\S+)\s+\(generated", output)
        assert password, output
        assert f"http://127.0.0.1:{port}/admin/configuration" in output
        assert TOKEN not in output
        base = f"http://127.0.0.1:{port}"
        _wait_until_serving(base)
        with httpx.Client(base_url=base) as http:
            assert http.get("/api/tracks").json()["target"] == "local"
            assert http.post(SWITCH, json={"target": "production"}, headers=BEARER).is_success
            assert http.get("/api/tracks").json()["target"] == "production"
            login = http.post("/login", data={"password": password.group(1)}, follow_redirects=True)
            assert login.status_code == 200 and "Database configuration" in login.text
        assert (tmp_path / "demo-data" / "production.db").is_file()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        stderr.seek(0)
        errors = stderr.read()
        stderr.close()
    assert "Traceback" not in errors and "Aborted" not in errors


def test_dbswap_demo_starts_with_only_an_extra_target_in_the_environment(tmp_path: Path) -> None:
    """``DATABASE_URL_STAGING`` alone: the command starts and lists local, production, staging."""
    staging = tmp_path / "staging.db"
    sqlite3.connect(staging).close()
    port = _free_port()
    env = _clean_env() | {"DATABASE_URL_STAGING": f"sqlite:///{staging}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "dbswap.demo", "--port", str(port), "--data-dir", "demo-data"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        output = ""
        while "Ctrl+C to stop." not in output:  # printed after the admin URL and the targets
            line = process.stdout.readline()
            assert line, f"the demo exited early: {output}"
            output += line
        assert f"http://127.0.0.1:{port}/admin/configuration" in output
        listed = re.findall(r"^  (local|production|staging):\s+(\S+)$", output, re.MULTILINE)
        assert listed == [
            ("local", f"sqlite:///{tmp_path / 'demo-data' / 'local.db'}"),
            ("production", f"sqlite:///{tmp_path / 'demo-data' / 'production.db'}"),
            ("staging", f"sqlite:///{staging}"),
        ]
        assert "warning" not in output and "error" not in output
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
    with sqlite3.connect(str(staging)) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert {"dbswap_demo_tracks", "dbswap_demo_events"} <= tables


def _wait_until_serving(base: str) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            httpx.get(base + "/login", timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _start_demo(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    env = _clean_env() | {"DBSWAP_ADMIN_PASSWORD": PASSWORD}
    process = subprocess.Popen(
        [sys.executable, "-m", "dbswap.demo", "--port", str(port), "--data-dir", "d", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    _wait_until_serving(base)
    return process, base


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_forged_forwarded_for_header_does_not_escape_the_login_limit(tmp_path: Path) -> None:
    """The real server: 40 wrong passwords, each claiming a new client address."""
    process, base = _start_demo(tmp_path)
    try:
        with httpx.Client(base_url=base) as http:
            statuses = [
                http.post(
                    "/login",
                    data={"password": "guess"},
                    headers={"X-Forwarded-For": f"203.0.113.{i}"},
                ).status_code
                for i in range(40)
            ]
    finally:
        _stop(process)
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}


def test_a_trusted_proxy_names_the_client(tmp_path: Path) -> None:
    process, base = _start_demo(tmp_path, "--trusted-proxy", "127.0.0.1")
    try:
        with httpx.Client(base_url=base) as http:

            def attempt(client: str) -> int:
                headers = {"X-Forwarded-For": client}
                return http.post("/login", data={"password": "x"}, headers=headers).status_code

            assert [attempt("203.0.113.1") for _ in range(6)] == [401] * 5 + [429]
            assert attempt("203.0.113.2") == 401  # another client behind the proxy
    finally:
        _stop(process)
