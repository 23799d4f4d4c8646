"""A real browser (Debian's headless Chromium) drives the demo: log in, switch, see, switch back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import dbswap
from dbswap.demo import SEED_TRACKS, create_app
from webhelpers import ARGS, CHROMIUM, NEEDS_CHROMIUM, PAGE, live_server

PASSWORD = "browser-Pa55-q7"
SCREENSHOT = Path(__file__).resolve().parents[1] / "test-artifacts" / "admin-configuration.png"
PROD_RED = "rgb(198, 40, 40)"  # --prod: #c62828

pytestmark = NEEDS_CHROMIUM


@pytest.fixture
def site(
    sqlite_url: Callable[[str], str], tmp_path: Path
) -> Iterator[tuple[str, dbswap.Switchboard]]:
    board = dbswap.Switchboard(
        {"local": sqlite_url("local"), "production": sqlite_url("production")},
        runtime_dir=tmp_path / "rt",
    )
    try:
        with live_server(create_app(board, admin_password=PASSWORD)) as base:
            yield base, board
    finally:
        board.dispose()


def test_an_admin_switches_to_production_and_back_in_a_real_browser(
    site: tuple[str, dbswap.Switchboard],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, board = site
    dialogs: list[str] = []
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))

            # Anonymous: the admin page sends us to the login form, then back.
            page.goto(base + PAGE)
            assert "/login" in page.url
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(base + PAGE)
            badge = page.locator("#active-badge")
            expect(badge).to_have_text("local")
            local_tag = page.locator("tr[data-target=local] .tag.current")
            production_tag = page.locator("tr[data-target=production] .tag.current")
            expect(local_tag).to_be_visible()
            expect(production_tag).to_be_hidden()

            # Refusing the confirmation changes nothing.
            page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.click("button.switch[data-target=production]")
            # The outcome shows in the row of the button used (issue #21: where the tap was).
            production_result = page.locator("tr[data-target=production] .result")
            expect(production_result).to_contain_text("not confirmed")
            assert board.active == "local" and len(dialogs) == 1

            # Accepting it switches, and the page updates in place (no reload).
            page.evaluate("window.__sameDocument = true")
            page.once("dialog", lambda d: (dialogs.append(d.message), d.accept()))
            page.click("button.switch[data-target=production]")
            expect(badge).to_have_text("production")
            assert "PRODUCTION" in dialogs[-1]
            assert page.evaluate("window.__sameDocument") is True
            assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == PROD_RED
            expect(production_result).to_contain_text("Switched local → production")
            expect(page.locator("#history tbody tr").first).to_contain_text("production")
            expect(page.locator("#generation")).to_have_text("1")
            expect(page.locator("button.switch[data-target=production]")).to_be_disabled()
            expect(page.locator("button.switch[data-target=local]")).to_be_enabled()
            expect(production_tag).to_be_visible()
            expect(local_tag).to_be_hidden()
            assert board.active == "production"
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)

            # The public site now shows the production rows under a red banner.
            page.goto(base + "/")
            expect(page.locator("#production-banner")).to_be_visible()
            titles = page.locator("#tracks li.track strong").all_inner_texts()
            assert titles == [t for t, _, _ in SEED_TRACKS["production"]]

            # Back to local: no confirmation needed, banner gone, local rows back.
            page.goto(base + PAGE)
            page.click("button.switch[data-target=local]")
            expect(badge).to_have_text("local")
            assert len(dialogs) == 2
            page.goto(base + "/")
            expect(page.locator("#production-banner")).to_have_count(0)
            titles = page.locator("#tracks li.track strong").all_inner_texts()
            assert titles == [t for t, _, _ in SEED_TRACKS["local"]]
        finally:
            browser.close()
    assert board.active == "local"
    assert SCREENSHOT.stat().st_size > 10_000
    assert problems == []  # no script error, no CSP violation


def _seconds_shown(text: str) -> int:
    import re

    found = re.search(r"ends in (?:(\d+):)?(\d+):(\d\d)", text)
    assert found is not None, text
    hours, minutes, seconds = (int(part or 0) for part in found.groups())
    return hours * 3600 + minutes * 60 + seconds


def test_the_page_counts_down_a_time_boxed_switch_and_shows_its_end(
    site: tuple[str, dbswap.Switchboard],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, board = site
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(base + PAGE)
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(base + PAGE)
            limit = page.locator("#time-limit")
            expect(limit).to_have_text("none")

            # 5 min beside production's button: the switch is time-boxed, and counts down.
            page.evaluate("window.__sameDocument = true")
            page.select_option("tr[data-target=production] select.duration", "300")
            page.once("dialog", lambda d: d.accept())
            page.click("button.switch[data-target=production]")
            expect(page.locator("#active-badge")).to_have_text("production")
            expect(limit).to_contain_text("ends in 4:5")
            expect(limit).to_contain_text("then back to local")
            first = _seconds_shown(limit.inner_text())
            page.wait_for_timeout(2200)
            assert _seconds_shown(limit.inner_text()) <= first - 2  # ticking, no reload
            assert page.evaluate("window.__sameDocument") is True
            time_limit = board.time_limit
            assert time_limit is not None and time_limit.return_to == "local"
            # The active target with "no limit" is a switch again: it would end the limit.
            expect(page.locator("button.switch[data-target=production]")).to_be_enabled()

            # The demo's own pages say it too.
            site_page = browser.new_page()
            site_page.goto(base + "/")
            expect(site_page.locator("#time-limit-banner")).to_contain_text("then back to local")
            site_page.close()

            # A limit that ends while the page is open: the page shows the return by itself.
            board.use("production", user="tester", for_=3)
            page.reload()
            page.evaluate("window.__sameDocument = true")
            expect(limit).to_contain_text("ends in 0:0")
            expect(page.locator("#active-badge")).to_have_text("local", timeout=10_000)
            expect(limit).to_have_text("none")
            assert page.evaluate("window.__sameDocument") is True
            assert board.active == "local"
            assert board.history(1)[0]["outcome"] == "expired"
        finally:
            browser.close()
    assert problems == []
