"""Switches that end on their own: the return at the end, in every process, once, checked.

Real SQLite files, real processes, the real CLI and real HTTP; time limits of
one or two real seconds (no clock is mocked). Only the retry interval of a
failed return is shortened, so a test need not wait five seconds for it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

import dbswap._timebox
from dbhelpers import seed
from dbswap import ConfigError, Switchboard, UnknownTarget
from dbswap._redis_state import RedisStateStore
from dbswap._state import State, parse_utc
from dbswap._timebox import format_duration, parse_duration
from dbswap.cli import cli
from webhelpers import ADMIN, STATUS, SWITCH, TestClient, admin_app

PY = sys.executable


@pytest.fixture
def urls(sqlite_url: Callable[[str], str]) -> dict[str, str]:
    result = {name: sqlite_url(name) for name in ("local", "production", "staging")}
    for name, url in result.items():
        seed(url, [f"{name}-row"])
    return result


@pytest.fixture
def board(urls: dict[str, str], tmp_path: Path) -> Iterator[Switchboard]:
    board = Switchboard(urls, runtime_dir=tmp_path / "rt")
    yield board
    board.close()


def audit(runtime_dir: Path) -> list[dict[str, Any]]:
    path = runtime_dir / "db-switch.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def outcomes(runtime_dir: Path) -> list[str]:
    return [entry["outcome"] for entry in audit(runtime_dir)]


def read_label(board: Switchboard) -> str:
    with board.sessionmaker()() as session:
        label: str = session.execute(sa.text("SELECT label FROM items")).scalar_one()
        return label


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.01)


# -- the return ---------------------------------------------------------------------


def test_a_time_boxed_switch_returns_by_itself_at_its_end(board: Switchboard) -> None:
    make = board.sessionmaker()
    result = board.use("production", user="alice", for_=timedelta(seconds=1))
    assert (result.target, result.return_to) == ("production", "local")
    end = parse_utc(result.expires_at or "")
    stored = json.loads((board.runtime_dir / "db-target.json").read_text())
    assert (stored["expires_at"], stored["return_to"]) == (result.expires_at, "local")
    limit = board.time_limit
    assert limit is not None and 0 < limit.seconds_left <= 1 and limit.problem is None

    late, seen = 0, []
    while time.time() < end + 5:
        begun = time.time()
        with make() as session:
            label = session.execute(sa.text("SELECT label FROM items")).scalar_one()
        seen.append(label)
        late += label == "production-row" and begun > end
        if label == "local-row":
            break
    assert late == 0  # no session begun after the end read production
    assert seen[0] == "production-row" and seen[-1] == "local-row"
    assert board.active == "local" and board.time_limit is None
    state = board.state
    assert (state.generation, state.switched_by, state.expires_at) == (2, "time limit", None)
    lines = audit(board.runtime_dir)
    assert [e["outcome"] for e in lines] == ["ok", "expired"]
    expired = lines[1]
    assert (expired["from"], expired["to"], expired["generation"]) == ("production", "local", 2)
    assert expired["user"] == "alice" and expired["expired_at"] == result.expires_at
    assert lines[0]["timebox"] == "set" and lines[0]["for_seconds"] == 1.0


SESSIONS_ONLY = """
import json, sys, time
import sqlalchemy as sa
from dbswap import Switchboard
from dbswap._state import parse_utc
board = Switchboard({urls!r}, runtime_dir={runtime!r})
make = board.sessionmaker()
end = parse_utc({expires_at!r})
late = sessions = 0
label = None
while time.time() < end + 10 and label != "local-row":
    begun = time.time()
    with make() as session:
        label = session.execute(sa.text("SELECT label FROM items")).scalar_one()
    sessions += 1
    late += label == "production-row" and begun > end
print(json.dumps({{"late": late, "last": label, "sessions": sessions}}))
"""


def test_other_processes_return_on_their_next_session_and_one_of_them_audits_it(
    urls: dict[str, str], tmp_path: Path
) -> None:
    """Six processes that only open sessions race at the end: one return, one line."""
    runtime = tmp_path / "rt"
    switcher = Switchboard(urls, runtime_dir=runtime)
    result = switcher.use("production", user="alice", for_=1.5)
    switcher.close()  # this process opens nothing after the switch
    code = SESSIONS_ONLY.format(urls=urls, runtime=str(runtime), expires_at=result.expires_at)
    procs = [
        subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(6)
    ]
    reports = [json.loads(proc.communicate(timeout=30)[0]) for proc in procs]
    for report in reports:
        assert report == {"late": 0, "last": "local-row", "sessions": report["sessions"]}
    expired = [e for e in audit(runtime) if e["outcome"] == "expired"]
    assert len(expired) == 1
    assert expired[0]["pid"] in {proc.pid for proc in procs}
    assert State.from_json((runtime / "db-target.json").read_text()).generation == 2


def test_the_return_happens_when_asked_even_if_no_process_ran_at_the_end(
    urls: dict[str, str], tmp_path: Path
) -> None:
    runtime = tmp_path / "rt"
    switcher = Switchboard(urls, runtime_dir=runtime)
    switcher.use("production", for_=1)
    switcher.close()
    time.sleep(1.2)  # nothing runs at the end
    assert outcomes(runtime) == ["ok"]
    later = Switchboard(urls, runtime_dir=runtime)
    try:
        assert later.active == "local"  # asking is enough
        assert outcomes(runtime) == ["ok", "expired"]
        assert read_label(later) == "local-row"
    finally:
        later.close()


def test_a_return_to_a_target_that_is_down_stays_loudly_and_is_retried(
    urls: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(dbswap._timebox, "RETRY_SECONDS", 0.5)
    runtime = tmp_path / "rt"
    board = Switchboard(urls, runtime_dir=runtime)
    local_file = Path(sa.make_url(urls["local"]).database or "")
    try:
        board.use("production", user="alice", for_=1)
        local_file.rename(local_file.with_suffix(".away"))
        time.sleep(1.05)
        with caplog.at_level(logging.ERROR, logger="dbswap"):
            for _ in range(20):  # 0.2 s of sessions: one attempt, one error, no retry yet
                assert read_label(board) == "production-row"
                time.sleep(0.01)
        failures = [r for r in caplog.records if "returning to 'local' failed" in r.getMessage()]
        assert len(failures) == 1, [r.getMessage() for r in caplog.records]
        limit = board.time_limit
        assert limit is not None and limit.ended
        assert limit.problem is not None and "does not exist" in limit.problem
        assert board.state.generation == 1 and outcomes(runtime) == ["ok"]

        # Another process (the CLI) tries on its own, and says why it could not.
        env = {
            "DATABASE_URL_LOCAL": urls["local"],
            "DATABASE_URL_PRODUCTION": urls["production"],
            "DBSWAP_RUNTIME_DIR": str(runtime),
        }
        status = CliRunner().invoke(cli, ["status"], env=env, catch_exceptions=False)
        assert status.exit_code == 1
        assert "time limit:  expired, return to local failed: SQLite file" in status.output
        assert "active:      production" in status.output

        local_file.with_suffix(".away").rename(local_file)  # the database is back
        wait_for(lambda: read_label(board) == "local-row", 5, "the retried return")
        assert outcomes(runtime) == ["ok", "expired"]
        assert board.time_limit is None
    finally:
        board.close()


# -- extending, cancelling, where it returns, the production cap ------------------------


def test_extending_and_cancelling_are_audited_switches(board: Switchboard) -> None:
    first = board.use("production", user="alice", for_=1)
    extended = board.use("production", user="bob", for_=timedelta(minutes=10))
    assert (extended.generation, extended.changed, extended.return_to) == (2, True, "local")
    assert parse_utc(extended.expires_at or "") > parse_utc(first.expires_at or "") + 500
    time.sleep(1.1)  # past the first end: it no longer counts
    assert board.active == "production"
    cancelled = board.use("production", user="carol")
    assert (cancelled.generation, cancelled.expires_at, cancelled.return_to) == (3, None, None)
    assert board.time_limit is None and board.state.expires_at is None
    again = board.use("production")  # nothing to cancel any more: a no-op, as before
    assert (again.changed, again.generation) == (False, 3)
    lines = audit(board.runtime_dir)
    assert [(e["outcome"], e.get("timebox")) for e in lines] == [
        ("ok", "set"),
        ("ok", "extended"),
        ("ok", "cancelled"),
        ("noop", None),
    ]
    assert lines[1]["expires_at"] == extended.expires_at and lines[1]["user"] == "bob"


def test_then_names_the_return_target_and_a_chain_returns_where_it_began(
    board: Switchboard,
) -> None:
    board.use("production", for_=1, then="staging")
    wait_for(lambda: board.active == "staging", 5, "the return to staging")
    assert read_label(board) == "staging-row"
    board.use("local")
    board.use("production", for_=600)  # back to local at its end
    board.use("staging", for_=1)  # from a time-boxed switch: back where that one would go
    assert board.time_limit is not None and board.time_limit.return_to == "local"
    wait_for(lambda: board.active == "local", 5, "the return to local")


@pytest.mark.parametrize(
    ("for_", "then", "error"),
    [
        (0, None, ConfigError),
        (-5, None, ConfigError),
        (float("nan"), None, ConfigError),
        (float("inf"), None, ConfigError),
        (timedelta(days=8), None, ConfigError),
        (True, None, ConfigError),
        ("15m", None, ConfigError),
        (None, "local", ConfigError),  # a return target without a time limit
        (60, "production", ConfigError),  # returning to itself
        (60, "nowhere", UnknownTarget),
    ],
)
def test_bad_time_limits_are_refused_audited_and_change_nothing(
    board: Switchboard, for_: Any, then: str | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        board.use("production", for_=for_, then=then)
    assert board.active == "local" and board.state.generation == 0
    assert outcomes(board.runtime_dir) == ["refused"]


def test_max_production_caps_every_switch_to_production(
    urls: dict[str, str], tmp_path: Path
) -> None:
    env = {f"DATABASE_URL_{name.upper()}": url for name, url in urls.items()}
    env |= {"DBSWAP_RUNTIME_DIR": str(tmp_path / "rt"), "DBSWAP_MAX_PRODUCTION": "2s"}
    board = Switchboard.from_env(env, cwd=tmp_path)
    try:
        board.use("staging")  # other targets are not capped
        assert board.time_limit is None
        capped = board.use("production", user="alice")  # no for_: capped all the same
        assert capped.return_to == "staging"
        limit = board.time_limit
        assert limit is not None and 1 < limit.seconds_left <= 2
        longer = board.use("production", for_=timedelta(hours=1))  # longer: capped
        assert parse_utc(longer.expires_at or "") - time.time() <= 2
        lines = audit(board.runtime_dir)
        assert lines[-1]["capped"] == "capped to 2s by DBSWAP_MAX_PRODUCTION"
        assert lines[-1]["timebox"] == "extended" and lines[-2]["timebox"] == "set"
        wait_for(lambda: board.active == "staging", 5, "the capped switch's return")
    finally:
        board.close()
    direct = Switchboard(urls, runtime_dir=tmp_path / "rt2", max_production=timedelta(minutes=30))
    try:
        limit_at = direct.use("production", for_=7200).expires_at
        assert 1790 < parse_utc(limit_at or "") - time.time() <= 1800
    finally:
        direct.close()
    with pytest.raises(ConfigError, match="DBSWAP_MAX_PRODUCTION must be a duration"):
        Switchboard.from_env(env | {"DBSWAP_MAX_PRODUCTION": "soon"}, cwd=tmp_path)


def test_state_files_without_a_time_limit_read_and_write_as_before(tmp_path: Path) -> None:
    old = '{"generation": 4, "read_only": null, "switched_at": "t", "switched_by": "u", '
    old += '"target": "production"}'
    state = State.from_json(old)
    assert (state.target, state.expires_at, state.return_to) == ("production", None, None)
    assert json.loads(state.to_json()) == json.loads(old)  # no new keys without a limit
    boxed = State("production", 5, expires_at="2030-01-01T00:00:00.000Z", return_to="local")
    assert State.from_json(boxed.to_json()) == boxed
    for bad in (
        {"expires_at": "tomorrow", "return_to": "local"},
        {"expires_at": 5, "return_to": "local"},
        {"expires_at": "2030-01-01T00:00:00Z"},
        {"return_to": "local"},
        {"expires_at": "2030-01-01T00:00:00Z", "return_to": ""},
    ):
        with pytest.raises(ValueError):
            State.from_json(json.dumps({"target": "production", "generation": 1, **bad}))


# -- the command line -----------------------------------------------------------------


@pytest.fixture
def env(urls: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    for key in ("DATABASE_URL_LOCAL", "DATABASE_URL_PRODUCTION", "DBSWAP_ENV"):
        monkeypatch.delenv(key, raising=False)
    return {
        "DATABASE_URL_LOCAL": urls["local"],
        "DATABASE_URL_PRODUCTION": urls["production"],
        "DBSWAP_RUNTIME_DIR": str(tmp_path / "rt"),
    }


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("1h30m", 5400), ("900", 900), (" 1.5m ", 90)],
)
def test_the_cli_takes_durations_as_people_write_them(
    env: dict[str, str], text: str, seconds: float
) -> None:
    assert parse_duration(text, "--for") == seconds
    result = run(env, "use", "production", "--yes", "--for", text, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    status = json.loads(run(env, "status", "--json").output)
    assert status["expires_at"] == data["expires_at"] and status["return_to"] == "local"
    assert seconds - 5 < status["seconds_left"] <= seconds


@pytest.mark.parametrize(
    "text", ["15x", "", "0", "-5", "8d", "inf", "nan", "1e300", "15 minutes", "m", "1h-5m"]
)
def test_junk_durations_exit_2_with_one_line_and_switch_nothing(
    env: dict[str, str], text: str
) -> None:
    result = run(env, "use", "production", "--yes", "--for", text)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "must be a duration" in result.output
    assert "Traceback" not in result.output
    assert json.loads(run(env, "status", "--json").output)["generation"] == 0


def test_the_cli_shows_extends_and_cancels_a_time_limit(env: dict[str, str]) -> None:
    switched = run(env, "use", "production", "--yes", "--for", "15m", "--user", "alice")
    assert switched.exit_code == 0
    assert "ends on its own at" in switched.output and "then back to local" in switched.output
    status = run(env, "status")
    assert status.exit_code == 0
    assert "time limit:  ends in 1" in status.output and "then back to local" in status.output
    assert run(env, "use", "production", "--for", "2h", "--then", "local").exit_code == 0
    assert json.loads(run(env, "status", "--json").output)["seconds_left"] > 7000
    assert run(env, "use", "production", "--no-limit", "--for", "1m").exit_code == 2
    cancelled = run(env, "use", "production", "--no-limit")
    assert cancelled.exit_code == 0 and "no time limit" in cancelled.output
    assert "time limit:  none" in run(env, "status").output
    history = run(env, "history").output
    assert "[time limit cancelled]" in history and "[extended: until" in history
    assert "[set: until" in history
    run(env, "use", "production", "--for", "1s")
    time.sleep(1.1)
    after = run(env, "status")  # asking makes the return
    assert "active:      local" in after.output and "switched by: time limit" in after.output


def test_format_duration_reads_well() -> None:
    assert [format_duration(s) for s in (0, 0.2, 45, 90, 900, 5400, 86400 + 61)] == [
        "0s",
        "1s",
        "45s",
        "1m30s",
        "15m",
        "1h30m",
        "1d1m1s",
    ]


# -- the admin API ----------------------------------------------------------------------


@pytest.fixture
def client(board: Switchboard) -> Iterator[TestClient]:
    with TestClient(admin_app(board)) as client:
        yield client


def test_the_api_switches_for_a_while_and_shows_the_time_left(
    client: TestClient, board: Switchboard
) -> None:
    response = client.post(SWITCH, json={"target": "production", "forSeconds": 900}, headers=ADMIN)
    assert response.status_code == 200
    body = response.json()
    assert body["returnTo"] == "local" and body["expiresAt"] == board.state.expires_at
    status = client.get(STATUS, headers=ADMIN).json()
    assert status["expiresAt"] == body["expiresAt"] and status["returnTo"] == "local"
    assert 890 < status["secondsLeft"] <= 900 and status["returnProblem"] is None
    then = {"target": "staging", "forSeconds": 1, "thenTarget": "Production"}
    assert client.post(SWITCH, json=then, headers=ADMIN).json()["returnTo"] == "production"
    time.sleep(1.1)
    after = client.get(STATUS, headers=ADMIN).json()  # asking makes the return
    assert (after["target"], after["expiresAt"], after["secondsLeft"]) == ("production", None, None)
    plain = client.get(STATUS, headers=ADMIN).json()
    assert plain["returnTo"] is None and plain["switchedBy"] == "time limit"


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        (b'{"target": "production", "forSeconds": "900"}', "'forSeconds' must be a number"),
        (b'{"target": "production", "forSeconds": true}', "'forSeconds' must be a number"),
        (b'{"target": "production", "forSeconds": 0}', "from 1 to 604800"),
        (b'{"target": "production", "forSeconds": -1}', "from 1 to 604800"),
        (b'{"target": "production", "forSeconds": 604801}', "from 1 to 604800"),
        (b'{"target": "production", "forSeconds": 1e400}', "from 1 to 604800"),
        (b'{"target": "production", "forSeconds": [60]}', "'forSeconds' must be a number"),
        (b'{"target": "production", "thenTarget": "local"}', "needs 'forSeconds'"),
        (b'{"target": "production", "forSeconds": 60, "thenTarget": 5}', "'thenTarget' must"),
        (b'{"target": "production", "forSeconds": 60, "thenTarget": ""}', "'thenTarget' must"),
        (b'{"useProduction": true, "forSeconds": 60, "thenTarget": "production"}', "another"),
        (b'{"target": "local ", "forSeconds": 60, "thenTarget": "LOCAL"}', "another"),
        (b'{"target": "production", "forSecond": 60}', "unexpected field"),
    ],
)
def test_bad_time_limits_are_422_and_change_nothing(
    client: TestClient, board: Switchboard, body: bytes, phrase: str
) -> None:
    headers = {**ADMIN, "Content-Type": "application/json"}
    response = client.post(SWITCH, content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert phrase in response.json()["message"]
    assert board.state == State("local", 0, read_only=False)
    assert audit(board.runtime_dir) == []


def test_an_unknown_return_target_is_404(client: TestClient, board: Switchboard) -> None:
    body = {"target": "production", "forSeconds": 60, "thenTarget": "nowhere"}
    response = client.post(SWITCH, json=body, headers=ADMIN)
    assert response.status_code == 404 and "nowhere" in response.json()["message"]
    assert board.active == "local"


# -- Redis ------------------------------------------------------------------------------


@pytest.mark.redis
def test_a_fleet_on_redis_returns_once_at_the_end(
    urls: dict[str, str], tmp_path: Path, redis_url: str
) -> None:
    boards = [
        Switchboard(
            urls,
            runtime_dir=tmp_path / f"host{i}",
            store=RedisStateStore(redis_url, poll_interval=0.05),
        )
        for i in range(3)
    ]
    try:
        result = boards[0].use("production", user="alice", for_=1)
        end = parse_utc(result.expires_at or "")
        wait_for(lambda: all(b.active == "production" for b in boards[1:]), 5, "followers")
        late: list[int] = []

        def sessions(board: Switchboard) -> None:  # two hosts race; the switcher opens nothing
            count = 0
            while time.time() < end + 10:
                begun = time.time()
                label = read_label(board)
                count += label == "production-row" and begun > end
                if label == "local-row":
                    break
            late.append(count)

        threads = [threading.Thread(target=sessions, args=(b,)) for b in boards[1:]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert late == [0, 0]
        wait_for(lambda: boards[0].active == "local", 3, "the switcher follows")
        trail = boards[0].history(None)  # the fleet's trail, kept in Redis
        assert [e["outcome"] for e in trail].count("expired") == 1
        assert boards[0].state.generation == 2
    finally:
        for board in boards:
            board.close()


def test_junk_in_an_environment_duration_names_its_variable(
    urls: dict[str, str], tmp_path: Path
) -> None:
    env = {"DATABASE_URL_LOCAL": urls["local"], "DBSWAP_RUNTIME_DIR": str(tmp_path / "rt")}
    for junk in ("0", "8d", "inf", "-1m", "abc"):
        with pytest.raises(ConfigError, match=r"^DBSWAP_MAX_PRODUCTION must be a duration"):
            Switchboard.from_env(env | {"DBSWAP_MAX_PRODUCTION": junk}, cwd=tmp_path)


def test_an_installed_command_switches_for_a_while(env: dict[str, str], tmp_path: Path) -> None:
    """The real entry point, as a process: `dbswap use production --for 1s` then back."""
    full = os.environ | env
    command = [PY, "-m", "dbswap"]
    done = subprocess.run(
        [*command, "use", "production", "--yes", "--for", "1s"],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    time.sleep(1.1)
    status = subprocess.run(
        [*command, "status", "--json"], env=full, capture_output=True, text=True, timeout=60
    )
    assert json.loads(status.stdout)["target"] == "local"
    assert status.stderr == ""
