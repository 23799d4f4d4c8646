"""A real browser (Debian's headless Chromium) drives the demo: log in, switch, see, switch back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import dbswap
from dbswap.demo import SEED_TRACKS, create_app
from webhelpers import PAGE, live_server

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "browser-Pa55-q7"
SCREENSHOT = Path(__file__).resolve().parents[1] / "test-artifacts" / "admin-configuration.png"
PROD_RED = "rgb(198, 40, 40)"  # --prod: #c62828

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
]


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
            expect(page.locator("#message")).to_contain_text("not confirmed")
            assert board.active == "local" and len(dialogs) == 1

            # Accepting it switches, and the page updates in place (no reload).
            page.evaluate("window.__sameDocument = true")
            page.once("dialog", lambda d: (dialogs.append(d.message), d.accept()))
            page.click("button.switch[data-target=production]")
            expect(badge).to_have_text("production")
            assert "PRODUCTION" in dialogs[-1]
            assert page.evaluate("window.__sameDocument") is True
            assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == PROD_RED
            expect(page.locator("#message")).to_contain_text("Switched local → production")
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
