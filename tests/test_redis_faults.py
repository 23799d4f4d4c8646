"""Faults around the Redis state store: lost state, a start without Redis, any bytes, the lock.

Every test starts its own redis-server (a free loopback port and a unix
socket in a temporary directory) and flushes, kills and restarts it; the
machine's shared Redis is not touched. Other processes are real ones,
SIGKILLed at the instant a test names (the kill is the only thing patched).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from dbswap import DBSwapError, Switchboard, SwitchLocked
from dbswap._redis_state import RedisStateStore, split_prefix
from dbswap._relay import RelayedStore
from dbswap._state import MAX_STATE_BYTES, State

pytestmark = pytest.mark.redis
PREFIX = "faults"
STATE_KEY = f"{PREFIX}:state"
POLL = 0.05  # seconds: short polls keep these tests quick


class RedisServer:
    """A redis-server of this test's own, without persistence: a restart loses everything."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.dir = directory
        self.socket = directory / "redis.sock"
        self.port = _free_port()
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *("redis-server", "--bind", "127.0.0.1", "--port", str(self.port)),
                *("--unixsocket", str(self.socket), "--unixsocketperm", "700"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.dir)),
                *("--logfile", str(self.dir / "redis.log"), *self.extra),
            ],
        )
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(redis.RedisError), self.client() as client:
                if client.ping():
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start: {(self.dir / 'redis.log').read_text()}")
            time.sleep(0.01)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0?prefix={PREFIX}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """Short, under /tmp: a unix socket's path must fit in 108 bytes."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    directory = Path(tempfile.mkdtemp(prefix="dbswap-redis-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def server(server_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(server_dir)
    yield server
    server.kill()


@pytest.fixture
def urls(sqlite_url: Callable[[str], str]) -> dict[str, str]:
    return {"local": sqlite_url("local"), "production": sqlite_url("production")}


def make_board(urls: dict[str, str], runtime: Path, url: str, **store: Any) -> Switchboard:
    """A board on ``url``, as from_env() builds it: the runtime dir keeps the host's last state."""
    store.setdefault("poll_interval", POLL)
    store.setdefault("socket_timeout", 0.5)
    return Switchboard(
        urls, runtime_dir=runtime, store=RedisStateStore(url, cache_dir=runtime, **store)
    )


def wait_for(predicate: Callable[[], bool], timeout: float, what: str = "condition") -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what} not met within {timeout} s")
        time.sleep(0.005)
    return time.monotonic() - start


def stored(server: RedisServer) -> dict[str, Any] | None:
    with server.client() as client:
        raw = client.get(STATE_KEY)
    return None if raw is None else dict(json.loads(raw))


def fleet_trail(server: RedisServer) -> list[dict[str, Any]]:
    with server.client() as client:
        return [json.loads(line) for line in client.lrange(f"{PREFIX}:audit", 0, -1)]


def child(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def cli_env(urls: dict[str, str], runtime: Path, state: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL_LOCAL": urls["local"],
        "DATABASE_URL_PRODUCTION": urls["production"],
        "DBSWAP_RUNTIME_DIR": str(runtime),
        "DBSWAP_STATE": state,
    }


def status(env: dict[str, str]) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "dbswap", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout, done.stderr


# -- Redis loses the state ------------------------------------------------------

OBSERVER = """
import json, sys, threading, time
from dbswap import Switchboard
from dbswap._redis_state import RedisStateStore

urls, runtime, url = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
store = RedisStateStore(url, poll_interval=0.05, socket_timeout=0.5, cache_dir=runtime)
board = Switchboard(urls, runtime_dir=runtime, store=store)
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), done.set()), daemon=True).start()
seen = set()
print("ready", board.generation, flush=True)
while not done.is_set():
    seen.add(board.active)
    time.sleep(0.001)
print(json.dumps({"seen": sorted(seen), "generation": board.generation}), flush=True)
board.close()
"""


@pytest.mark.parametrize("loss", ["FLUSHALL", "restart without persistence"])
def test_a_lost_state_is_kept_and_restored_once_by_a_racing_fleet(
    loss: str, urls: dict[str, str], tmp_path: Path, server: RedisServer
) -> None:
    switcher = make_board(urls, tmp_path / "switcher", server.url)
    observers: list[subprocess.Popen[str]] = []
    try:
        for name in ("production", "local", "production"):
            switcher.use(name, user="alice")
        observers = [
            child(OBSERVER, json.dumps(urls), str(tmp_path / f"host{i}"), server.url)
            for i in range(5)
        ]
        for observer in observers:
            assert observer.stdout is not None and observer.stdout.readline() == "ready 3\n"
        if loss == "FLUSHALL":
            with server.client() as client:
                client.flushall()
        else:
            server.kill()
            time.sleep(3 * POLL)  # every process notices the outage
            server.start()
        # Six processes know generation 3 and race to write it back: one does, as generation 4.
        wait_for(lambda: (stored(server) or {}).get("generation") == 4, 5, "the restore")
        time.sleep(10 * POLL)  # time enough for a second restore, if one were to happen
        switched_at = switcher.state.switched_at  # of generation 3: a restore is no switch
        assert stored(server) == {
            "target": "production",
            "generation": 4,
            "switched_at": switched_at,
            "switched_by": "alice",
            "read_only": False,
        }
        for observer in observers:
            out, err = observer.communicate("stop\n", timeout=30)
            assert json.loads(out) == {"seen": ["production"], "generation": 4}, err
        restored = [e for e in fleet_trail(server) if e["outcome"] == "restored"]
        assert len(restored) == 1  # one restore, one line
        assert (restored[0]["to"], restored[0]["generation"], restored[0]["user"]) == (
            "production",
            4,
            "alice",
        )
        local_lines = [
            json.loads(line)
            for log in tmp_path.glob("*/db-switch.log")
            for line in log.read_text().splitlines()
        ]
        assert [e["outcome"] for e in local_lines].count("restored") == 1
        # A switch continues from the restored generation, with nothing to recover.
        assert switcher.use("local", user="bob").generation == 5
        assert [e["outcome"] for e in switcher.history()] == ["ok", "restored"]
    finally:
        switcher.close()
        for observer in observers:
            if observer.poll() is None:
                observer.kill()
            observer.communicate(timeout=30)


def test_a_switch_that_finds_the_state_lost_writes_it_back_first(
    urls: dict[str, str], tmp_path: Path, server: RedisServer
) -> None:
    board = make_board(urls, tmp_path / "rt", server.url, poll_interval=30)  # no poll will see it
    try:
        board.use("production", user="alice")
        board.use("local", user="alice")
        with server.client() as client:
            client.flushall()
        result = board.use("production", user="bob")
        assert result.generation == 4  # not 1: after the restored generation 3
        trail = [(e["outcome"], e["to"], e["generation"]) for e in board.history()]
        assert trail == [("ok", "production", 4), ("restored", "local", 3)]
    finally:
        board.close()


def test_an_older_state_in_redis_is_written_over_not_followed(
    urls: dict[str, str], tmp_path: Path, server: RedisServer
) -> None:
    a = make_board(urls, tmp_path / "a", server.url)
    b = make_board(urls, tmp_path / "b", server.url)
    try:
        for name in ("production", "local", "production"):
            a.use(name)
        wait_for(lambda: b.generation == 3, 2)
        with server.client() as client:  # as a restart from a stale snapshot would leave it
            client.set(STATE_KEY, State("local", 1).to_json())
        seen: set[str] = set()

        def restored() -> bool:
            seen.update((a.active, b.active))
            return (stored(server) or {}).get("generation") == 4

        wait_for(restored, 5, "the restore")
        assert seen == {"production"}  # nobody went back to the old target
        assert stored(server) is not None and stored(server)["target"] == "production"  # type: ignore[index]
        lines = [e for e in fleet_trail(server) if e["outcome"] == "restored"]
        assert len(lines) == 1 and "went back to generation 1" in lines[0]["reason"]
        assert b.use("local").generation == 5
    finally:
        a.close()
        b.close()


# -- a start while Redis is down -----------------------------------------------


def test_a_process_started_while_redis_is_down_uses_this_hosts_last_state(
    urls: dict[str, str], tmp_path: Path, server: RedisServer
) -> None:
    runtime = tmp_path / "rt"
    earlier = make_board(urls, runtime, server.url)
    try:
        earlier.use("production", user="alice")
    finally:
        earlier.close()
    server.kill()  # and it will come back empty
    code, out, err = status(cli_env(urls, runtime, server.url))
    shown = json.loads(out)
    assert code == 1, err
    assert (shown["target"], shown["generation"], shown["confirmed"]) == ("production", 1, False)
    assert "unreachable" in shown["problem"] and "last known state" in shown["problem"]
    board = make_board(urls, runtime, server.url)
    try:
        assert board.active == "production"
        with board.sessionmaker()() as s:
            assert s.dbswap_target == "production"
        assert board.state_problem is not None and "not confirmed" in board.state_problem
        server.start()  # empty: this host's state is written back, one generation higher
        wait_for(lambda: board.state_problem is None, 5, "the state confirmed")
        assert stored(server) is not None and stored(server)["generation"] == 2  # type: ignore[index]
        assert [e["outcome"] for e in board.history()] == ["restored"]
        assert board.use("local").generation == 3
    finally:
        board.close()


def test_a_process_started_while_redis_is_down_with_no_last_state_refuses_sessions(
    urls: dict[str, str], tmp_path: Path, server: RedisServer
) -> None:
    server.kill()
    runtime = tmp_path / "rt"
    board = make_board(urls, runtime, server.url)
    try:
        with pytest.raises(DBSwapError, match="the active target is unknown"):
            board.active  # noqa: B018
        with pytest.raises(DBSwapError, match="sessions are refused"):
            board.sessionmaker()()
        code, _, err = status(cli_env(urls, runtime, server.url))
        assert code == 1 and "the active target is unknown" in err
        server.start()  # nothing was ever switched: the default target, now confirmed

        def confirmed() -> bool:
            with contextlib.suppress(DBSwapError):
                return board.state_problem is None
            return False

        wait_for(confirmed, 5, "Redis answering")
        assert board.active == "local"
    finally:
        board.close()


# -- URLs -----------------------------------------------------------------------


def test_a_unix_socket_url_works(urls: dict[str, str], tmp_path: Path, server: RedisServer) -> None:
    url = f"unix://{server.socket}?db=0&prefix={PREFIX}"
    assert split_prefix(url) == (f"unix://{server.socket}?db=0", PREFIX)
    env = {f"DATABASE_URL_{k.upper()}": v for k, v in urls.items()} | {"DBSWAP_STATE": url}
    a = Switchboard.from_env(env | {"DBSWAP_RUNTIME_DIR": "a"}, cwd=tmp_path)
    b = Switchboard.from_env(env | {"DBSWAP_RUNTIME_DIR": "b"}, cwd=tmp_path)
    try:
        assert isinstance(a._store, RelayedStore) and a.state_problem is None
        a.use("production")
        wait_for(lambda: b.active == "production", 3)
        assert stored(server) is not None and stored(server)["target"] == "production"  # type: ignore[index]
    finally:
        a.close()
        b.close()


@pytest.fixture
def tls_server(server_dir: Path) -> Iterator[tuple[RedisServer, int, Path]]:
    """A redis-server that speaks TLS only on its TLS port, with a self-signed certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    cert, key = server_dir / "cert.pem", server_dir / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    tls_port = _free_port()
    server = RedisServer(
        server_dir,
        *("--tls-port", str(tls_port), "--tls-cert-file", str(cert)),
        *("--tls-key-file", str(key), "--tls-ca-cert-file", str(cert)),
        *("--tls-auth-clients", "no"),
    )
    yield server, tls_port, cert
    server.kill()


def test_a_rediss_url_speaks_tls(
    urls: dict[str, str], tmp_path: Path, tls_server: tuple[RedisServer, int, Path]
) -> None:
    server, tls_port, cert = tls_server
    url = f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={cert}&prefix={PREFIX}"
    env = {f"DATABASE_URL_{k.upper()}": v for k, v in urls.items()} | {"DBSWAP_STATE": url}
    a = Switchboard.from_env(env | {"DBSWAP_RUNTIME_DIR": "a"}, cwd=tmp_path)
    b = Switchboard.from_env(env | {"DBSWAP_RUNTIME_DIR": "b"}, cwd=tmp_path)
    try:
        a.use("production")
        wait_for(lambda: b.active == "production", 3)
        with server.client() as client:  # the TLS clients are there, on the TLS port
            assert any(c["laddr"].endswith(f":{tls_port}") for c in client.client_list())
    finally:
        a.close()
        b.close()
    # Without the CA the self-signed certificate is refused, and the problem says so.
    untrusted = RedisStateStore(f"rediss://127.0.0.1:{tls_port}/0?prefix={PREFIX}")
    try:
        assert "certificate verify failed" in (untrusted.trouble() or "")
    finally:
        untrusted.close()


# -- any bytes in the key, any message, any failure -----------------------------

GARBAGE: dict[str, Callable[[redis.Redis], object]] = {
    "deeply nested": lambda r: r.set(STATE_KEY, b"[" * 100_000),
    "huge": lambda r: r.set(
        STATE_KEY, b'{"target": "production", "pad": "' + b"x" * 200_000 + b'"}'
    ),
    "just over the cap": lambda r: r.set(
        STATE_KEY, State("production", 1).to_json().encode().ljust(MAX_STATE_BYTES + 1)
    ),
    "binary": lambda r: r.set(STATE_KEY, bytes(range(256)) * 4),
    "wrong types": lambda r: r.set(STATE_KEY, b'{"target": ["production"], "generation": "7"}'),
    "empty": lambda r: r.set(STATE_KEY, b""),
    "a list": lambda r: r.rpush(STATE_KEY, State("production", 1).to_json()),
    "a hash": lambda r: r.hset(STATE_KEY, "target", "production"),
    "a set": lambda r: r.sadd(STATE_KEY, "production"),
}


@pytest.mark.parametrize("put", GARBAGE.values(), ids=GARBAGE.keys())
def test_any_value_in_the_key_falls_back_with_one_warning_and_is_repaired(
    put: Callable[[redis.Redis], object],
    urls: dict[str, str],
    tmp_path: Path,
    server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with server.client() as client:
        put(client)
    with caplog.at_level(logging.WARNING, logger="dbswap"):
        board = make_board(urls, tmp_path / "rt", server.url, poll_interval=0.02)
        try:
            for _ in range(10):  # ten polls
                assert board.active == "local"
                with board.sessionmaker()() as s:
                    assert s.dbswap_target == "local"
                time.sleep(0.02)
            assert len([r for r in caplog.records if "unusable" in r.getMessage()]) == 1
            assert "unusable" in (board.state_problem or "")
            result = board.use("production")  # the next switch rewrites it
            assert result.changed and result.generation == 1
            assert stored(server) is not None and stored(server)["target"] == "production"  # type: ignore[index]
            assert board.state_problem is None
        finally:
            board.close()


SWITCH_LATER = """
import json, sys
from dbswap import Switchboard
from dbswap._redis_state import RedisStateStore

urls, runtime, url = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
store = RedisStateStore(url, poll_interval=0.05, cache_dir=runtime)
board = Switchboard(urls, runtime_dir=runtime, store=store)
print("ready", board.generation, flush=True)
sys.stdin.readline()
print(board.use("local", user="other-process").generation, flush=True)
board.close()
"""


def test_the_listener_survives_any_bytes_and_its_own_failures(
    urls: dict[str, str],
    tmp_path: Path,
    server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    board = make_board(urls, tmp_path / "rt", server.url, poll_interval=30)  # news by pub/sub
    other = child(SWITCH_LATER, json.dumps(urls), str(tmp_path / "other"), server.url)
    try:
        board.use("production")
        assert other.stdout is not None and other.stdout.readline() == "ready 1\n"
        with caplog.at_level(logging.WARNING, logger="dbswap"), server.client() as client:
            for put in GARBAGE.values():  # in the key, and published
                client.delete(STATE_KEY)
                put(client)
                board._store._refresh()  # type: ignore[attr-defined]  # a poll, now
                client.publish(f"{PREFIX}:switched", b"[" * 100_000)
                client.publish(f"{PREFIX}:switched", bytes(range(256)) * 1000)
                assert board.active == "production"  # the last state seen is kept
            assert len([r for r in caplog.records if "ignoring a message" in r.getMessage()]) == 1
            # A failure nobody foresaw, three times: logged once, and the listener goes on.
            failures: list[bytes] = []
            follow = board._store._accept_published  # type: ignore[attr-defined]

            def fail_thrice(raw: bytes) -> None:
                if len(failures) < 3:
                    failures.append(raw)
                    raise RuntimeError("a bug")
                follow(raw)

            def failed_thrice() -> bool:
                client.publish(f"{PREFIX}:switched", State("production", 1).to_json())
                return len(failures) == 3

            monkeypatch.setattr(board._store, "_accept_published", fail_thrice)
            wait_for(failed_thrice, 5, "three failures")
            failed = [r for r in caplog.records if "listener" in r.getMessage()]
            assert len(failed) == 1 and "RuntimeError: a bug" in failed[0].getMessage()

            def both_listening() -> bool:  # this board's listener subscribed again
                return (
                    dict(client.pubsub_numsub(f"{PREFIX}:switched"))[f"{PREFIX}:switched".encode()]
                    == 2
                )

            wait_for(both_listening, 5, "the listener back")
        out, err = other.communicate("go\n", timeout=30)  # a valid switch from another process
        assert out.strip() == "2", err  # from the generation it knew, over the garbage
        wait_for(lambda: board.active == "local", 3, "the switch seen")
        assert board.generation == 2
    finally:
        board.close()
        if other.poll() is None:
            other.kill()
            other.communicate(timeout=10)


# -- the production lock is everybody's -------------------------------------------

LOCKED_APP = """
import os, sys
from dbswap import Switchboard
from dbswap._redis_state import RedisStateStore

lease = float(os.environ.get("LEASE", "0.5"))
store = RedisStateStore(os.environ["DBSWAP_STATE"], poll_interval=0.1, lock_lease=lease)
board = Switchboard.from_env(store=store)  # DBSWAP_ENV=production
print("locked", flush=True)
sys.stdin.readline()
board.close()
"""


def test_a_locked_process_refuses_switches_fleet_wide_until_it_dies_or_closes(
    urls: dict[str, str], tmp_path: Path, server: RedisServer
) -> None:
    env = cli_env(urls, tmp_path / "locked", server.url) | {"DBSWAP_ENV": "production"}
    killed, closing = child(LOCKED_APP, env=env), child(LOCKED_APP, env=env)
    board = make_board(urls, tmp_path / "shell", server.url)  # no DBSWAP_ENV here
    try:
        for locked in (killed, closing):
            assert locked.stdout is not None and locked.stdout.readline() == "locked\n"
        with pytest.raises(SwitchLocked, match="DBSWAP_ENV=production") as refused:
            board.use("production")
        assert refused.value.locked and board.history(1)[0]["outcome"] == "refused"
        assert "pid" in (board.lock_reason or "")
        code, out, err = status(cli_env(urls, tmp_path / "shell", server.url))
        shown = json.loads(out)
        assert (code, shown["target"], shown["locked"]) == (0, "production", True), err
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        time.sleep(0.6)  # the killed one's notice lapses (its lease: 0.5 s)
        # The other locked process still holds it; then it closes, and its notice goes at once.
        assert f"pid {closing.pid} " in (board.lock_reason or "")
        closing.communicate("close\n", timeout=30)
        assert board.lock_reason is None
        assert board.use("production").changed
    finally:
        board.close()
        for locked in (killed, closing):
            if locked.poll() is None:
                locked.kill()
            locked.communicate(timeout=10)


def test_a_killed_locked_process_blocks_switches_for_one_notice_ttl_at_most(
    urls: dict[str, str], tmp_path: Path, server: RedisServer
) -> None:
    env = cli_env(urls, tmp_path / "locked", server.url) | {"DBSWAP_ENV": "production"}
    locked = child(LOCKED_APP, env=env)
    board = make_board(urls, tmp_path / "shell", server.url)
    try:
        assert locked.stdout is not None and locked.stdout.readline() == "locked\n"
        with server.client() as client:  # a FLUSHALL does not lift it: the listener writes it back
            client.flushall()
        wait_for(lambda: board.lock_reason is not None, 2, "the lock written back")
        with pytest.raises(SwitchLocked, match=f"pid {locked.pid} "):
            board.use("production")
        locked.send_signal(signal.SIGKILL)
        locked.wait(10)
        waited = wait_for(lambda: board.lock_reason is None, 2, "the dead holder's lock expired")
        assert waited < 1.0  # its notice lives one lease (0.5 s) after the last renewal
        assert board.use("production").changed
    finally:
        board.close()
        if locked.poll() is None:
            locked.kill()
        locked.communicate(timeout=10)


def test_a_paused_locked_process_keeps_its_lock_for_its_lease_and_says_when_it_lapsed(
    urls: dict[str, str], tmp_path: Path, server: RedisServer
) -> None:
    """A real pause: SIGSTOP, as a long GC pause or a frozen VM stops every thread."""
    env = cli_env(urls, tmp_path / "locked", server.url) | {"DBSWAP_ENV": "production"}
    locked = child(LOCKED_APP, env=env | {"LEASE": "3"})
    board = make_board(urls, tmp_path / "shell", server.url)
    try:
        assert locked.stdout is not None and locked.stdout.readline() == "locked\n"
        assert "lease 3 s" in (board.lock_reason or "")  # status and refusals say the lease
        locked.send_signal(signal.SIGSTOP)
        time.sleep(1.5)  # half a lease: the lock holds
        with pytest.raises(SwitchLocked, match=f"pid {locked.pid} "):
            board.use("production")
        time.sleep(2.5)  # now past its lease: it lapsed, and a switch gets through
        assert board.lock_reason is None
        assert board.use("production").changed
        locked.send_signal(signal.SIGCONT)
        wait_for(lambda: board.lock_reason is not None, 5, "the lock announced again")
        _, err = locked.communicate("close\n", timeout=30)
        assert "the production lock of this process" in err and "had lapsed" in err
    finally:
        board.close()
        if locked.poll() is None:
            locked.kill()
            locked.communicate(timeout=10)


# -- audit recovery ------------------------------------------------------------------

KILLED_AFTER_ITS_LINE = """
import json, os, signal, sys
from dbswap import Switchboard
from dbswap._redis_state import RedisStateStore

def die(self, state):  # its line is written (and shared): die before the commit
    os.kill(os.getpid(), signal.SIGKILL)
urls, runtime, url = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
store = RedisStateStore(url, lease=1.0, cache_dir=runtime)  # it dies holding the fleet's lock
board = Switchboard(urls, runtime_dir=runtime, store=store)
board.use("production", user="first")
RedisStateStore.write = die
board.use("local", user="killed-switcher")
"""


def test_a_switcher_killed_between_its_line_and_its_commit_gets_it_voided_in_the_fleet(
    urls: dict[str, str], tmp_path: Path, server: RedisServer
) -> None:
    killed = child(KILLED_AFTER_ITS_LINE, json.dumps(urls), str(tmp_path / "killed"), server.url)
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    board = make_board(urls, tmp_path / "next", server.url)
    elsewhere = make_board(urls, tmp_path / "elsewhere", server.url)
    try:
        assert board.active == "production" and board.generation == 1  # not committed
        board.use("local", user="next")  # waits out the dead switcher's lease (1 s) at most
        for each in (board, elsewhere):  # the fleet's trail, seen from every host
            trail = [(e["outcome"], e["generation"], e["user"]) for e in each.history()]
            assert trail == [
                ("ok", 2, "next"),
                ("uncommitted", 2, None),
                ("ok", 2, "killed-switcher"),
                ("ok", 1, "first"),
            ]
        elsewhere.use("production")  # nothing more to void or recover
        assert [e["outcome"] for e in fleet_trail(server)].count("uncommitted") == 1
    finally:
        board.close()
        elsewhere.close()
