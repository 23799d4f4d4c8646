"""A phone-sized Chromium (390 px wide) on the admin pages and the demo: previews, countdowns,
relative times, and no sideways scrolling.

Debian's headless Chromium, driven by Playwright; screenshots in ``test-artifacts/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dbswap
from dbswap.demo import SEED_TRACKS, create_app
from webhelpers import ADMIN_TOKEN, ARGS, CHROMIUM, NEEDS_CHROMIUM, PAGE, admin_app, live_server

PASSWORD = "phone-Pa55-k3"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
# Chromium logs every 4xx answer to fetch() as a console error; the token page expects some.
EXPECTED_CONSOLE = "Failed to load resource: the server responded with a status of 40"

pytestmark = NEEDS_CHROMIUM


def _board(sqlite_url: Callable[[str], str], tmp_path: Path, *names: str) -> dbswap.Switchboard:
    return dbswap.Switchboard({n: sqlite_url(n) for n in names}, runtime_dir=tmp_path / "rt")


@pytest.fixture
def demo(
    sqlite_url: Callable[[str], str], tmp_path: Path
) -> Iterator[tuple[str, dbswap.Switchboard]]:
    board = _board(sqlite_url, tmp_path, "local", "production", "staging")
    try:
        with live_server(create_app(board, admin_password=PASSWORD)) as base:
            yield base, board
    finally:
        board.dispose()


def _fits(page: Any) -> None:
    """No sideways scrolling at the phone's width."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{page.url} is {width} px wide"


def _watch(page: Any, problems: list[str]) -> None:
    def console(message: Any) -> None:
        if message.type == "error" and not message.text.startswith(EXPECTED_CONSOLE):
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda e: problems.append(str(e)))


def _seconds_shown(text: str, prefix: str = "ends in") -> int:
    found = re.search(prefix + r" (?:(\d+):)?(\d+):(\d\d)", text, re.IGNORECASE)
    assert found is not None, text
    hours, minutes, seconds = (int(part or 0) for part in found.groups())
    return hours * 3600 + minutes * 60 + seconds


def test_on_a_phone_an_admin_switches_for_a_while_and_previews_production(
    demo: tuple[str, dbswap.Switchboard],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, board = demo
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            phone = browser.new_context(**PHONE)
            page = phone.new_page()
            _watch(page, problems)
            page.goto(base + "/login")
            _fits(page)
            page.goto(base + PAGE)
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(base + PAGE)
            _fits(page)
            page.evaluate("window.__sameDocument = true")

            # Everybody to staging for 5 minutes: the countdown appears and ticks, no reload.
            limit = page.locator("#time-limit")
            page.select_option("tr[data-target=staging] select.duration", "300")
            page.click("button.switch[data-target=staging]")
            expect(page.locator("#active-badge")).to_have_text("staging")
            expect(limit).to_contain_text("ends in 4:5")
            expect(limit).to_contain_text("then back to local")
            first = _seconds_shown(limit.inner_text())
            page.wait_for_timeout(2200)
            assert _seconds_shown(limit.inner_text()) <= first - 2
            end = limit.locator("time")
            assert ISO.search(end.get_attribute("title") or ""), end.get_attribute("title")

            # Alice's own preview of production: the banner and its countdown, no reload.
            preview = page.locator("#preview-state")
            expect(preview).to_be_hidden()
            page.click("button.preview[data-target=production]")
            expect(preview).to_be_visible()
            expect(preview).to_contain_text("You are previewing production (read-only)")
            expect(preview).to_contain_text("everybody else stays on staging")
            expect(preview).to_contain_text("Ends in 14:5")
            shown = _seconds_shown(preview.inner_text())
            page.wait_for_timeout(1200)
            assert _seconds_shown(preview.inner_text()) < shown
            expect(page.locator("#active-badge")).to_have_text("staging")  # nothing switched
            assert board.active == "staging"
            assert page.evaluate("window.__sameDocument") is True

            # History: "… ago", the exact time (and the ISO one) on hover.
            history = page.locator("#history tbody tr")
            expect(history.first).to_contain_text("preview")
            stamp = history.first.locator("time")
            expect(stamp).to_have_text(re.compile(r"^\d+ s ago$"))
            iso = stamp.get_attribute("datetime") or ""
            assert ISO.fullmatch(iso) and iso in (stamp.get_attribute("title") or "")
            expect(page.locator("#switched-at time")).to_have_text(re.compile(r" ago$"))
            _fits(page)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "admin-preview-phone.png"), full_page=True)

            # Every page of the demo says so, with a button to stop; it fits the phone too.
            site = phone.new_page()
            _watch(site, problems)
            for path in ("/events", "/"):
                site.goto(base + path)
                _fits(site)
                expect(site.locator("#preview-banner")).to_contain_text(
                    "You are previewing production (read-only)"
                )
                expect(site.locator("#preview-banner")).to_contain_text(
                    "everybody else uses staging"
                )
            titles = site.locator("#tracks li.track strong").all_inner_texts()
            assert titles == [t for t, _, _ in SEED_TRACKS["production"]]
            site.screenshot(path=str(ARTIFACTS / "demo-preview-phone.png"), full_page=True)

            # Somebody else, meanwhile: staging, and its time limit.
            other = browser.new_context(**PHONE).new_page()
            other.goto(base + "/")
            expect(other.locator("#preview-banner")).to_have_count(0)
            expect(other.locator("#time-limit-banner")).to_contain_text("then back to local")
            assert "staging" in other.locator("#database").inner_text()
            _fits(other)

            # Stop from the demo's banner: back to staging's rows.
            site.click("#stop-preview")
            expect(site.locator("#preview-banner")).to_have_count(0)
            expect(site.locator("#database strong")).to_have_text("staging")
            assert [e["outcome"] for e in board.history(2)] == ["preview-ended", "preview"]
            assert board.active == "staging" and board.generation == 1

            # Again from the admin page, and stopped there: the box goes, in place.
            page.click("button.preview[data-target=production]")
            expect(preview).to_be_visible()
            page.click("#stop-preview")
            expect(preview).to_be_hidden()
            expect(page.locator("#message")).to_contain_text("Preview stopped")
            assert page.evaluate("window.__sameDocument") is True
            assert [e["outcome"] for e in board.history(2)] == ["preview-ended", "preview"]
        finally:
            browser.close()
    assert (ARTIFACTS / "admin-preview-phone.png").stat().st_size > 10_000
    assert problems == []  # no script error, no CSP violation


def test_on_a_phone_the_token_page_fits_and_counts_down_a_time_boxed_switch(
    sqlite_url: Callable[[str], str], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    board = _board(sqlite_url, tmp_path, "local", "production")
    problems: list[str] = []
    try:
        with (
            live_server(admin_app(board, token_page=True)) as base,
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_context(**PHONE).new_page()
                _watch(page, problems)
                page.goto(base + PAGE)
                _fits(page)
                page.fill("#token", ADMIN_TOKEN)
                page.click("#token-form button[type=submit]")
                limit = page.locator("#time-limit")
                expect(limit).to_have_text("none")
                _fits(page)

                page.select_option("tr[data-target=production] select.duration", "300")
                page.once("dialog", lambda d: d.accept())
                page.click("button.switch[data-target=production]")
                expect(page.locator("#active-badge")).to_have_text("production")
                expect(limit).to_contain_text("ends in 4:5")
                expect(limit).to_contain_text("then back to local")
                first = _seconds_shown(limit.inner_text())
                page.wait_for_timeout(2200)
                assert _seconds_shown(limit.inner_text()) <= first - 2
                # The active target with "no limit" is a switch again: it would end the limit.
                expect(page.locator("button.switch[data-target=production]")).to_be_enabled()
                stamp = page.locator("#history tbody tr").first.locator("time")
                expect(stamp).to_have_text(re.compile(r"^\d+ s ago$"))
                assert ISO.search(stamp.get_attribute("title") or "")
                _fits(page)
                page.screenshot(path=str(ARTIFACTS / "token-page-phone.png"), full_page=True)
                time_limit = board.time_limit
                assert time_limit is not None and time_limit.return_to == "local"
            finally:
                browser.close()
    finally:
        board.dispose()
    assert problems == []
