"""A real browser (Debian's headless Chromium) on the token page: ``admin_router(token_page=True)``.

The admin types a bearer token, the page keeps it in sessionStorage and drives
the JSON API with it: refused tokens are forgotten and asked for again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import dbswap
from webhelpers import (
    ADMIN_TOKEN,
    ARGS,
    CHROMIUM,
    NEEDS_CHROMIUM,
    PAGE,
    USER_TOKEN,
    admin_app,
    live_server,
)

SCREENSHOT = Path(__file__).resolve().parents[1] / "test-artifacts" / "admin-token-page.png"
PROD_RED = "rgb(198, 40, 40)"  # --prod: #c62828
# Chromium logs every 4xx answer to fetch() as a console error; refusals are expected here.
EXPECTED_CONSOLE = "Failed to load resource: the server responded with a status of 40"

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
        with live_server(admin_app(board, token_page=True)) as base:
            yield base, board
    finally:
        board.dispose()


def test_an_admin_opens_the_token_page_switches_reloads_and_forgets_the_token(
    site: tuple[str, dbswap.Switchboard],
) -> None:
    from playwright.sync_api import ConsoleMessage, Dialog, expect, sync_playwright

    base, board = site
    dialogs: list[str] = []
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith(EXPECTED_CONSOLE):
            problems.append(message.text)

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    def accept(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            page = context.new_page()
            page.on("console", console)
            page.on("pageerror", lambda e: problems.append(str(e)))

            def stored() -> list[object]:
                found: list[object] = page.evaluate(
                    "[sessionStorage.length, localStorage.length, Object.values(sessionStorage)]"
                )
                return found

            prompt = page.locator("#token-prompt")
            admin = page.locator("#admin")
            message = page.locator("#message")
            badge = page.locator("#active-badge")
            rows = page.locator("#targets tbody tr")

            def enter(token: str) -> None:
                page.fill("#token", token)
                page.click("#token-form button[type=submit]")

            # Nobody yet: the shell asks for a token and shows no data.
            page.goto(base + PAGE)
            expect(prompt).to_be_visible()
            expect(admin).to_be_hidden()
            expect(message).to_contain_text("Enter the admin token")
            expect(rows).to_have_count(0)

            # A wrong token and a plain user's token are refused, and not kept.
            enter("not-the-token")
            expect(message).to_contain_text("was refused (HTTP 401: unknown token)")
            expect(prompt).to_be_visible()
            expect(admin).to_be_hidden()
            assert stored() == [0, 0, []]
            enter(USER_TOKEN)
            expect(message).to_contain_text("HTTP 403: bob is not an administrator")
            expect(admin).to_be_hidden()
            assert stored() == [0, 0, []]

            # The admin's token opens the page: the active target, every target, the history.
            enter(ADMIN_TOKEN)
            expect(badge).to_have_text("local")
            expect(prompt).to_be_hidden()
            expect(rows).to_have_count(2)
            expect(page.locator("tr[data-target=local] .tag.current")).to_be_visible()
            expect(page.locator("#history tbody")).to_contain_text("No switch recorded yet.")
            expect(page.locator("#token")).to_have_value("")
            assert stored() == [1, 0, [ADMIN_TOKEN]]
            assert context.cookies() == []

            # Production asks first; refusing changes nothing.
            page.once("dialog", dismiss)
            page.click("button.switch[data-target=production]")
            production_result = page.locator("tr[data-target=production] .result")
            expect(production_result).to_contain_text("not confirmed")
            assert board.active == "local" and len(dialogs) == 1

            # Accepting switches; the page shows it in place.
            page.once("dialog", accept)
            page.click("button.switch[data-target=production]")
            expect(badge).to_have_text("production")
            assert "PRODUCTION" in dialogs[-1]
            assert board.active == "production"
            assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == PROD_RED
            expect(production_result).to_contain_text("Switched local → production")
            expect(page.locator("#generation")).to_have_text("1")
            expect(page.locator("#switched-by")).to_have_text("alice")
            expect(page.locator("#history tbody tr").first).to_contain_text("production")
            expect(page.locator("button.switch[data-target=production]")).to_be_disabled()
            expect(page.locator("button.switch[data-target=local]")).to_be_enabled()
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)

            # A reload keeps the tab's token: no prompt, the data straight away.
            page.reload()
            expect(badge).to_have_text("production")
            expect(prompt).to_be_hidden()
            expect(page.locator("#forget-token")).to_be_visible()
            assert stored() == [1, 0, [ADMIN_TOKEN]]

            # A token the server stops accepting is dropped, and asked for again.
            page.evaluate("t => sessionStorage.setItem(sessionStorage.key(0), t)", "revoked-token")
            page.reload()
            expect(prompt).to_be_visible()
            expect(message).to_contain_text("The stored token was refused (HTTP 401")
            expect(rows).to_have_count(0)
            assert stored() == [0, 0, []]

            # Back in; switching to local needs no confirmation.
            enter(ADMIN_TOKEN)
            expect(badge).to_have_text("production")
            page.click("button.switch[data-target=local]")
            expect(badge).to_have_text("local")
            assert board.active == "local" and len(dialogs) == 2

            # Forgetting the token: the prompt again, no data left, nothing stored.
            page.click("#forget-token")
            expect(prompt).to_be_visible()
            expect(admin).to_be_hidden()
            expect(message).to_contain_text("Token forgotten")
            expect(rows).to_have_count(0)
            expect(badge).to_have_text("")
            assert stored() == [0, 0, []]
            page.reload()
            expect(prompt).to_be_visible()
            expect(admin).to_be_hidden()
            assert context.cookies() == []
        finally:
            browser.close()
    assert board.active == "local"
    assert SCREENSHOT.stat().st_size > 10_000
    assert problems == []  # no script error, no CSP violation
