"""dbswap's metrics as a real Prometheus server sees them, scraping a gunicorn app.

gunicorn runs ``tests/metrics_app.py`` with two workers and prometheus-client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` in the test's tmp dir, dead
workers marked in ``child_exit``). Debian's ``/usr/bin/prometheus`` scrapes it
every second on a free loopback port. After a switch through the admin API,
Prometheus's query API must show the new active target and exactly one
switch, summed over the workers; no line of the page holds a URL or a secret.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

PROMETHEUS = "/usr/bin/prometheus"
TESTS = Path(__file__).parent
TOKEN = "metrics-app-T0ken-41c9"
PASSWORD = "S3cretPw9"

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not os.access(PROMETHEUS, os.X_OK),
        reason=f"Debian's prometheus is not installed ({PROMETHEUS}); scripts/services.sh "
        "installs it (apt-get install prometheus)",
    ),
]

GUNICORN_CONF = """\
from prometheus_client import multiprocess


def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(
    port: int, path: str, method: str = "GET", body: Any = None, headers: Any = None
) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        payload = json.dumps(body) if body is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, payload, all_headers)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def wait_for(what: str, check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():
                return
        except OSError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def app_port(tmp_path: Path, sqlite_url: Callable[[str], str]) -> Iterator[int]:
    """The app under gunicorn: 2 workers, multiprocess metrics in tmp."""
    multiproc = tmp_path / "prometheus-multiproc"
    multiproc.mkdir()
    (tmp_path / "gunicorn.conf.py").write_text(GUNICORN_CONF)
    port = free_port()
    env = os.environ | {
        "DATABASE_URL_LOCAL": sqlite_url("local"),
        "DATABASE_URL_PRODUCTION": sqlite_url("production"),
        # Never connected: it is here to prove its password shows nowhere.
        "DATABASE_URL_REPORTING": f"postgresql://app:{PASSWORD}@127.0.0.1:1/reports",
        "DBSWAP_RUNTIME_DIR": str(tmp_path / "rt"),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "METRICS_APP_TOKEN": TOKEN,
        "PYTHONPATH": str(TESTS),
    }
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [
            str(gunicorn),
            "metrics_app:app",
            "-c",
            str(tmp_path / "gunicorn.conf.py"),
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "2",
            "-k",
            "gthread",
            "--threads",
            "4",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=tmp_path,
    )
    try:
        wait_for("gunicorn", lambda: request(port, "/healthz/database")[0] == 200)
        yield port
    finally:
        stop(server)


@pytest.fixture
def prometheus(tmp_path: Path, app_port: int) -> Iterator[int]:
    """Debian's Prometheus, scraping the app every second, on a free loopback port."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        "  - job_name: dbswap\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{app_port}']\n"
    )
    with (tmp_path / "prometheus.log").open("wb") as log:
        server = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        wait_for("prometheus", lambda: request(port, "/-/ready")[0] == 200)
        yield port
    finally:
        stop(server)


def query(port: int, promql: str) -> list[dict[str, Any]]:
    """The result vector of an instant query through Prometheus's HTTP API."""
    status, body = request(port, "/api/v1/query?" + urlencode({"query": promql}))
    assert status == 200, body
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def value(port: int, promql: str) -> float | None:
    result = query(port, promql)
    return float(result[0]["value"][1]) if len(result) == 1 else None


def test_prometheus_sees_the_switch_summed_over_the_workers(
    prometheus: int, app_port: int, tmp_path: Path
) -> None:
    active = 'dbswap_active_target{job="dbswap"} == 1'
    wait_for(
        "a first scrape",
        lambda: [r["metric"]["target"] for r in query(prometheus, active)] == ["local"],
    )
    for _ in range(6):  # sessions, spread over the workers
        assert request(app_port, "/read")[0] == 200
    status, body = request(
        app_port,
        "/api/admin/database/switch",
        "POST",
        {"target": "production"},
        {"Authorization": f"Bearer {TOKEN}"},
    )
    assert status == 200, body

    def switched() -> bool:
        targets = [(r["metric"]["target"], r["metric"]["mode"]) for r in query(prometheus, active)]
        return targets == [("production", "read-write")]

    wait_for("a scrape after the switch", switched, seconds=20)
    assert value(prometheus, 'sum(dbswap_switches_total{outcome="ok"})') == 1
    assert value(prometheus, "max(dbswap_generation)") == 1
    sessions = 'sum(dbswap_sessions_total{target="local"})'  # added up once a second
    wait_for("the sessions", lambda: value(prometheus, sessions) == 6, seconds=10)
    assert value(prometheus, "max(dbswap_locked)") == 0
    age = value(prometheus, "max(dbswap_state_age_seconds)")
    assert age is not None and 0 <= age < 5
    assert value(prometheus, 'sum(dbswap_health_check_duration_seconds_count{outcome="ok"})')

    status, page = request(app_port, "/metrics")
    assert status == 200
    lines = [line for line in page.splitlines() if line and not line.startswith("#")]
    assert lines and all(line.startswith("dbswap_") for line in lines), lines[:5]
    for line in page.splitlines():
        assert "://" not in line and PASSWORD not in line and str(tmp_path) not in line, line
