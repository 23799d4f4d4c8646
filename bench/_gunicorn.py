"""gunicorn serving ``tests/fleet_app.py`` on a free 127.0.0.1 port, for the fleet suite.

Several worker processes (gthread) share one runtime dir, as a deployed app
would. Configured only by the environment (``DATABASE_URL_<NAME>``,
``DBSWAP_RUNTIME_DIR``, maybe ``DBSWAP_STATE``). ``stop()`` always ends the
master and its workers: SIGQUIT (quick shutdown: the load is over by then),
then SIGKILL to the process group it was started in, by that group's id.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ._server import REPO, free_port

TESTS = REPO / "tests"
START_TIMEOUT = 60.0  # seconds; four workers importing SQLAlchemy on a loaded 2-core machine
MAX_PROBES = 10_000  # readiness requests, a bound beside the clock


def gunicorn_path() -> Path:
    return Path(sys.executable).with_name("gunicorn")


def gunicorn_missing() -> str | None:
    """Why the fleet cannot run here, or None when it can."""
    if not gunicorn_path().exists():
        return f"gunicorn is not installed beside {sys.executable} (the dev extra)"
    if not (TESTS / "fleet_app.py").exists():
        return f"{TESTS / 'fleet_app.py'} is missing"
    return None


def clean_env(extra: dict[str, str], import_from: Path) -> dict[str, str]:
    """This process's environment without dbswap's variables (and the test guard), plus
    ``extra``; ``import_from`` on the Python path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DBSWAP_"))}
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(import_from), env.get("PYTHONPATH")]))
    return env


def request(port: int, path: str, method: str = "GET", timeout: float = 10.0) -> dict[str, object]:
    """One request on its own connection; raises on anything but 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        body: dict[str, object] = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"{method} {path} answered HTTP {response.status}: {body}")
        return body
    finally:
        conn.close()


class Gunicorn:
    """``gunicorn fleet_app:app -w WORKERS -k gthread --threads THREADS`` on loopback.

    A subclass serves another app by naming it: ``APP``, the directory that makes it
    importable, the path every worker answers 200 with its ``pid``, extra options.
    """

    APP = "fleet_app:app"
    IMPORT_FROM = TESTS
    READY = "/read?rid=warmup"
    OPTIONS: tuple[str, ...] = ("--backlog", "256")

    def __init__(self, workdir: Path, env: dict[str, str], workers: int, threads: int) -> None:
        self.workdir = workdir
        self.env = env
        self.workers = workers
        self.threads = threads
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the master; its workers start on their own (``wait_ready()`` waits for them)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [
            str(gunicorn_path()),
            self.APP,
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(self.threads),
            *self.OPTIONS,
            "--keep-alive",
            "10",
            "--graceful-timeout",
            "5",
            "--no-control-socket",  # no shared socket in ~/.gunicorn
            "--log-level",
            "warning",
        ]
        with (self.workdir / "gunicorn.log").open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=clean_env(self.env, self.IMPORT_FROM),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stop() can end the workers too
            )

    def wait_ready(self) -> None:
        """Until each worker process has answered; bounded in time."""
        pids: set[object] = set()
        deadline = time.monotonic() + START_TIMEOUT
        for _ in range(MAX_PROBES):
            if len(pids) >= self.workers:
                return
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited; {self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn: {len(pids)} worker(s) answered; {self.log_tail()}")
            try:
                pids.add(request(self.port, self.READY, timeout=5)["pid"])
            except (OSError, http.client.HTTPException, RuntimeError, ValueError):
                time.sleep(0.05)
        raise RuntimeError(f"gunicorn: no answer from every worker; {self.log_tail()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the group we created, by its id
            process.wait(timeout=15)

    def log_tail(self) -> str:
        try:
            lines = (self.workdir / "gunicorn.log").read_text(errors="replace").splitlines()[-5:]
        except OSError:
            lines = []
        return "gunicorn log: " + (" | ".join(lines) if lines else "(empty)")
