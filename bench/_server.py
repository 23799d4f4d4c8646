"""A demo-app server in a subprocess, and an HTTP client that only talks to loopback."""

from __future__ import annotations

import importlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0  # seconds; a cold start on a loaded 2-core machine takes a few
POLL_PAUSE = 0.002  # seconds between polls while the server is down


def demo_missing() -> str | None:
    """Why the demo app cannot run here, or None when it can."""
    for module in ("dbswap.fastapi", "dbswap.demo", "uvicorn", "httpx"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return f"{module} is not importable ({exc.__class__.__name__}: {exc})"
    try:
        from dbswap.demo import create_app  # noqa: F401
    except ImportError as exc:
        return f"dbswap.demo.create_app is not importable ({exc})"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class DemoServer:
    """The demo app under uvicorn on 127.0.0.1; ``stop()`` always ends the process."""

    def __init__(self, workdir: Path, urls: dict[str, str]) -> None:
        self.workdir = workdir
        self.urls = urls
        self.token = secrets.token_urlsafe(24)  # never printed nor stored
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._starts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.Client:
        # trust_env=False: no proxy from the environment may sit between us and loopback.
        return httpx.Client(
            base_url=self.base_url,
            trust_env=False,
            timeout=10.0,
            headers={"Authorization": f"Bearer {self.token}"},
        )

    def start(self, default_target: str) -> None:
        """Start on ``default_target`` with a fresh runtime dir (so nothing overrides it)."""
        self._starts += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DBSWAP_"))}
        env.update({f"DATABASE_URL_{name.upper()}": url for name, url in self.urls.items()})
        env["DBSWAP_RUNTIME_DIR"] = str(self.workdir / f"runtime-{self._starts}")
        env["DBSWAP_DEFAULT_TARGET"] = default_target
        env["DBSWAP_ADMIN_TOKEN"] = self.token
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        log = (self.workdir / f"server-{self._starts}.log").open("wb")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench._serve", "--port", str(self.port)],
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)

    def wait_for(self, client: httpx.Client, target: str) -> dict[str, Any]:
        """Poll ``GET /api/tracks`` until it is served from ``target``; bounded in time."""
        deadline = time.perf_counter() + START_TIMEOUT
        while time.perf_counter() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the demo server exited; {self.log_hint()}")
            try:
                response = client.get("/api/tracks")
            except httpx.TransportError:
                time.sleep(POLL_PAUSE)
                continue
            if response.status_code == 200:
                payload: dict[str, Any] = response.json()
                if payload.get("target") == target:
                    return payload
            time.sleep(POLL_PAUSE)
        raise RuntimeError(f"the demo server did not serve {target!r} in time; {self.log_hint()}")

    def switch(self, client: httpx.Client, target: str) -> None:
        response = client.post("/api/admin/database/switch", json={"target": target})
        if response.status_code != 200:
            raise RuntimeError(f"switch to {target!r} answered HTTP {response.status_code}")

    def log_hint(self) -> str:
        """The end of the server's log, for the error message."""
        path = self.workdir / f"server-{self._starts}.log"
        try:
            tail = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        except OSError:
            tail = []
        return "server log: " + (" | ".join(tail) if tail else "(empty)")
