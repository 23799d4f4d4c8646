"""A demo-app server in a subprocess, and an HTTP client that only talks to loopback.

The client is a keep-alive ``http.client`` connection rather than httpx: its
overhead is about 0.4 ms a request here, which would be counted as switch time.
"""

from __future__ import annotations

import http.client
import importlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0  # seconds; a cold start on a loaded 2-core machine takes a few
POLL_PAUSE = 0.002  # seconds between polls while the server is down


def demo_missing() -> str | None:
    """Why the demo app cannot run here, or None when it can."""
    for module in ("dbswap.fastapi", "dbswap.demo", "uvicorn"):
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


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # the decoded JSON, or None

    def json(self) -> dict[str, Any]:
        if not isinstance(self.body, dict):
            raise RuntimeError(f"HTTP {self.status} without a JSON object")
        return self.body


class LoopbackClient:
    """One keep-alive connection to 127.0.0.1:port; reconnects after a transport error.

    Transport errors (server down, connection reset) raise ``OSError`` or
    ``http.client.HTTPException``: ``TRANSPORT_ERRORS``.
    """

    def __init__(self, port: int, token: str, timeout: float = 10.0) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self._headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> Reply:
        return self._send("GET", path, None)

    def post(self, path: str, payload: dict[str, Any]) -> Reply:
        return self._send("POST", path, json.dumps(payload).encode())

    def _send(self, method: str, path: str, body: bytes | None) -> Reply:
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            self._conn.request(method, path, body=body, headers=headers)
            response = self._conn.getresponse()
            raw = response.read()
        except TRANSPORT_ERRORS:
            self._conn.close()  # the next request opens a new connection
            raise
        kind = response.getheader("content-type", "")
        return Reply(
            response.status, json.loads(raw) if kind.startswith("application/json") else None
        )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LoopbackClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


TRANSPORT_ERRORS = (OSError, http.client.HTTPException)


class DemoServer:
    """The demo app under uvicorn on 127.0.0.1; ``stop()`` always ends the process."""

    def __init__(self, workdir: Path, urls: dict[str, str]) -> None:
        self.workdir = workdir
        self.urls = urls
        self.token = secrets.token_urlsafe(24)  # never printed nor stored
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._starts = 0

    def client(self) -> LoopbackClient:
        return LoopbackClient(self.port, self.token)

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

    def wait_for(self, client: LoopbackClient, target: str) -> dict[str, Any]:
        """Poll ``GET /api/tracks`` until it is served from ``target``; bounded in time."""
        deadline = time.perf_counter() + START_TIMEOUT
        while time.perf_counter() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the demo server exited; {self.log_hint()}")
            try:
                response = client.get("/api/tracks")
            except TRANSPORT_ERRORS:
                time.sleep(POLL_PAUSE)
                continue
            if response.status == 200:
                payload = response.json()
                if payload.get("target") == target:
                    return payload
            time.sleep(POLL_PAUSE)
        raise RuntimeError(f"the demo server did not serve {target!r} in time; {self.log_hint()}")

    def switch(self, client: LoopbackClient, target: str) -> None:
        response = client.post("/api/admin/database/switch", {"target": target})
        if response.status != 200:
            raise RuntimeError(f"switch to {target!r} answered HTTP {response.status}")

    def log_hint(self) -> str:
        """The end of the server's log, for the error message."""
        path = self.workdir / f"server-{self._starts}.log"
        try:
            tail = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        except OSError:
            tail = []
        return "server log: " + (" | ".join(tail) if tail else "(empty)")
