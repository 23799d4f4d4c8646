"""Pages that follow the truth (issue #21): an open page shows a switch made elsewhere.

Real servers, Debian's headless Chromium, and the real ``dbswap`` command in a
subprocess for "a switch made elsewhere": the admin page (cookie and token),
and the demo's site pages, follow it within 2 s without a reload, and a page
whose server stops says so instead of showing what it last knew.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

import dbswap
from dbswap.demo import SEED_TRACKS, create_app
from webhelpers import ADMIN_TOKEN, ARGS, CHROMIUM, NEEDS_CHROMIUM, PAGE, admin_app, live_server

PASSWORD = "follow-Pa55-w0rd"
DBSWAP = str(Path(sys.executable).with_name("dbswap"))
FOLLOW_MS = 2000  # the bound: a page shows a switch made elsewhere within 2 s
# Chromium logs every failed fetch() as a console error: a stopped server makes some.
EXPECTED_CONSOLE = ("Failed to load resource", "net::ERR_")

pytestmark = NEEDS_CHROMIUM


# -- helpers ------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    """This environment without the machine's database settings (the test guard stays)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "DBSWAP_")) or k == "DBSWAP_TEST_GUARD"
    }
    return env | extra


def _cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    """The real ``dbswap`` command in its own process; its ``--json`` answer."""
    done = subprocess.run(
        [DBSWAP, *args, "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def _watch(page: Any, problems: list[str]) -> None:
    def console(message: Any) -> None:
        if message.type == "error" and not message.text.startswith(EXPECTED_CONSOLE):
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda e: problems.append(str(e)))


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _serving(app: FastAPI, port: int) -> Iterator[str]:
    """``app`` under uvicorn on ``port`` (which a stopped server may have used before)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = uvicorn.Server(uvicorn.Config(app, ws="none", lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


def _start_demo(cwd: Path, env: dict[str, str], port: int) -> subprocess.Popen[str]:
    """``python -m dbswap.demo`` (what ``dbswap demo`` runs), serving on ``port``."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dbswap.demo", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/login", timeout=1)
            return process
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process)
                raise
            time.sleep(0.05)


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _log_in(page: Any, base: str) -> None:
    page.goto(base + PAGE)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + PAGE)


@pytest.fixture
def targets(sqlite_url: Callable[[str], str], tmp_path: Path) -> dict[str, str]:
    """The environment of an app and of the shell beside it: two targets, one runtime dir."""
    return {
        "DATABASE_URL_LOCAL": sqlite_url("local"),
        "DATABASE_URL_PRODUCTION": sqlite_url("production"),
        "DBSWAP_RUNTIME_DIR": str(tmp_path / "rt"),
    }


@pytest.fixture
def demo_board(targets: dict[str, str], tmp_path: Path) -> Iterator[dbswap.Switchboard]:
    board = dbswap.Switchboard.from_env(targets, tmp_path)
    try:
        yield board
    finally:
        board.dispose()


# -- the tests ------------------------------------------------------------------------


def test_a_cli_switch_flips_an_open_admin_page_and_site_page_within_2_s(
    demo_board: dbswap.Switchboard, targets: dict[str, str]
) -> None:
    """The reported bug: a green LOCAL badge stayed after ``dbswap use production`` in a shell."""
    from playwright.sync_api import expect, sync_playwright

    env = _env(**targets)
    problems: list[str] = []
    with (
        live_server(create_app(demo_board, admin_password=PASSWORD)) as base,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            admin = context.new_page()
            _watch(admin, problems)
            _log_in(admin, base)
            site = context.new_page()
            _watch(site, problems)
            site.goto(base + "/")
            for page in (admin, site):
                page.evaluate("window.__sameDocument = true")
            badge = admin.locator("#active-badge")
            expect(badge).to_have_text("local")
            expect(site.locator("#production-banner")).to_have_count(0)

            # Cheap while nothing changes: a small status GET a second, nothing drawn again.
            asked: list[str] = []
            for page in (admin, site):
                page.on("request", lambda r: asked.append(r.url.removeprefix(base)))
            admin.wait_for_timeout(2500)
            assert asked.count("/api/admin/database") >= 2 and asked.count("/api/status") >= 2
            assert set(asked) <= {
                "/api/admin/database",
                "/api/admin/database/preview",
                "/api/status",
            }

            # A shell switches the app to production: both open pages follow by themselves.
            switched = _cli(env, "use", "production", "--yes", "--user", "shell")
            assert switched["target"] == "production"
            expect(badge).to_have_text("production", timeout=FOLLOW_MS)
            expect(admin.locator("#generation")).to_have_text("1", timeout=FOLLOW_MS)
            expect(admin.locator("#switched-by")).to_have_text("shell", timeout=FOLLOW_MS)
            expect(admin.locator("tr[data-target=production] .tag.current")).to_be_visible(
                timeout=FOLLOW_MS
            )
            expect(site.locator("#production-banner")).to_be_visible(timeout=FOLLOW_MS)
            expect(site.locator("#database strong")).to_have_text("production", timeout=FOLLOW_MS)
            # The rows shown are the production database's, not what the page first read.
            titles = site.locator("#tracks li.track strong")
            expect(titles).to_have_text([t for t, _, _ in SEED_TRACKS["production"]])
            expect(admin.locator("#history tbody tr").first).to_contain_text("shell")

            # And back, from the shell again.
            _cli(env, "use", "local", "--user", "shell")
            expect(badge).to_have_text("local", timeout=FOLLOW_MS)
            expect(site.locator("#production-banner")).to_have_count(0, timeout=FOLLOW_MS)
            expect(site.locator("#database strong")).to_have_text("local", timeout=FOLLOW_MS)
            for page in (admin, site):
                assert page.evaluate("window.__sameDocument") is True  # no reload
        finally:
            browser.close()
    assert problems == []


def test_a_time_limits_end_flips_the_demo_sites_banner_within_2_s(
    targets: dict[str, str], tmp_path: Path
) -> None:
    """The reported bug: 'PRODUCTION … ends in 43s' stayed on the site after the return.

    The demo runs under its real command; the shell switches it for 4 seconds.
    """
    from playwright.sync_api import expect, sync_playwright

    env = _env(**targets)
    port = _port()
    process = _start_demo(tmp_path, env | {"DBSWAP_ADMIN_PASSWORD": PASSWORD}, port)
    base = f"http://127.0.0.1:{port}"
    problems: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                site = browser.new_page()
                _watch(site, problems)
                site.goto(base + "/events")
                site.evaluate("window.__sameDocument = true")
                expect(site.locator("#production-banner")).to_have_count(0)

                switched = _cli(env, "use", "production", "--yes", "--for", "4s")
                end = datetime.fromisoformat(switched["expires_at"].replace("Z", "+00:00"))
                banner = site.locator("#time-limit-banner")
                expect(site.locator("#production-banner")).to_be_visible(timeout=FOLLOW_MS)
                expect(banner).to_contain_text("then back to local", timeout=FOLLOW_MS)

                # Nobody touches anything: at the end, the site says local again, by itself.
                left_ms = (end - datetime.now(end.tzinfo)).total_seconds() * 1000
                assert left_ms > 0, "the page took the whole time limit to follow"
                wait = left_ms + FOLLOW_MS
                expect(site.locator("#production-banner")).to_have_count(0, timeout=wait)
                expect(banner).to_have_count(0, timeout=FOLLOW_MS)
                expect(site.locator("#database strong")).to_have_text("local")
                assert site.evaluate("window.__sameDocument") is True
            finally:
                browser.close()
        status = _cli(env, "status")
        assert status["target"] == "local" and status["expires_at"] is None
    finally:
        _stop(process)
    assert problems == []


def test_the_token_page_follows_a_cli_switch_within_2_s(
    demo_board: dbswap.Switchboard, targets: dict[str, str]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    env = _env(**targets)
    problems: list[str] = []
    with (
        live_server(admin_app(demo_board, token_page=True)) as base,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            _watch(page, problems)
            page.goto(base + PAGE)
            page.fill("#token", ADMIN_TOKEN)
            page.click("#token-form button[type=submit]")
            badge = page.locator("#active-badge")
            expect(badge).to_have_text("local")
            page.evaluate("window.__sameDocument = true")

            _cli(env, "use", "production", "--yes", "--user", "shell", "--for", "15m")
            expect(badge).to_have_text("production", timeout=FOLLOW_MS)
            expect(page.locator("#time-limit")).to_contain_text("then back to local")
            expect(page.locator("#switched-by")).to_have_text("shell")
            _cli(env, "use", "local", "--user", "shell")
            expect(badge).to_have_text("local", timeout=FOLLOW_MS)
            expect(page.locator("#time-limit")).to_have_text("none")
            assert page.evaluate("window.__sameDocument") is True
        finally:
            browser.close()
    assert problems == []


def test_a_page_whose_server_stops_says_so_and_recovers(
    demo_board: dbswap.Switchboard,
) -> None:
    """No old state shown as if current: each page says it lost its server, then follows again.

    The demo's admin page and site page, and a token page, each on a real server that stops.
    """
    from playwright.sync_api import expect, sync_playwright

    app = create_app(demo_board, admin_password=PASSWORD)
    token_app = admin_app(demo_board, token_page=True)
    port, token_port = _port(), _port()
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context()
            admin, site, token_page = (context.new_page() for _ in range(3))
            for page in (admin, site, token_page):
                _watch(page, problems)
            with _serving(app, port) as base, _serving(token_app, token_port) as token_base:
                _log_in(admin, base)
                site.goto(base + "/")
                token_page.goto(token_base + PAGE)
                token_page.fill("#token", ADMIN_TOKEN)
                token_page.click("#token-form button[type=submit]")
                for page in (admin, token_page):
                    expect(page.locator("#active-badge")).to_have_text("local")
            # The servers are down: each page says so, and shows no target as the true one.
            for page in (admin, site, token_page):
                lost = page.locator("#connection")
                expect(lost).to_be_visible(timeout=FOLLOW_MS + 1000)
                expect(lost).to_contain_text("lost the connection")
            for page in (admin, token_page):
                expect(page.locator("#active-badge")).to_have_text("unknown")
                expect(page.locator("#targets tr.is-active")).to_have_count(0)
                expect(page.locator("#time-limit")).to_have_text("unknown")
            expect(site.locator("#database strong")).to_have_text("unknown")
            demo_board.use("production", user="meanwhile")  # while no page can see it

            # Back: the pages follow again, with the new state.
            with _serving(app, port), _serving(token_app, token_port):
                for page in (admin, token_page):
                    expect(page.locator("#active-badge")).to_have_text(
                        "production", timeout=FOLLOW_MS + 1000
                    )
                    expect(page.locator("#switched-by")).to_have_text("meanwhile")
                expect(site.locator("#production-banner")).to_be_visible(timeout=FOLLOW_MS)
                for page in (admin, site, token_page):
                    expect(page.locator("#connection")).to_be_hidden()
        finally:
            browser.close()
    assert problems == []


def test_the_admin_page_says_who_follows_the_state_in_one_line(
    demo_board: dbswap.Switchboard,
) -> None:
    """``followers`` of the status payload: one short line; nothing when the server cannot tell.

    The real payload first (this process follows the state); then the browser changes the
    real answer to show a fleet with a process behind, and one without the field.
    """
    from playwright.sync_api import Route, expect, sync_playwright

    changed: dict[str, Any] = {}

    def rewritten(route: Route) -> None:
        answer = route.fetch()
        body = answer.json()
        body.update(changed)
        route.fulfill(response=answer, json=body)

    with (
        live_server(create_app(demo_board, admin_password=PASSWORD)) as base,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            _log_in(page, base)
            line = page.locator("#followers")
            expect(line).to_have_text("1 process on 1 host, all on generation 0")
            demo_board.use("production", user="tester")
            expect(line).to_have_text("1 process on 1 host, all on generation 1")

            page.route("**/api/admin/database", rewritten)
            lagging = {"pid": 123, "host": "web-2", "target": "local", "generation": 0}
            changed["followers"] = {
                "total": 8,
                "hosts": 2,
                "current": 7,
                "lagging": [lagging | {"since": "2025-01-31T12:00:00.000Z"}],
            }
            expect(line).to_have_text("1 of 8 lags: pid 123 on web-2 (local, generation 0)")
            changed["followers"] = {"total": 8, "hosts": 2, "current": 8, "lagging": []}
            expect(line).to_have_text("8 processes on 2 hosts, all on generation 1")
            changed["followers"] = None  # the store cannot tell: nothing is said
            expect(line).to_be_hidden()
        finally:
            browser.close()
