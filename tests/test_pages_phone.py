"""The admin pages and the demo in a real browser, as a person uses them (issue #21, 2 and 3).

On a phone (390 px): the result of a tap shows where the tap was, the history
stays short with a way to see more, the shortest time limit is 1 minute. Times
read the same on every page: local, the exact time on hover. Focus stays on the
control used, and the controls repeated on each row have names of their own.
Debian's headless Chromium, driven by Playwright, against real uvicorn servers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import dbswap
from dbswap.demo import create_app
from webhelpers import ADMIN_TOKEN, ARGS, CHROMIUM, NEEDS_CHROMIUM, PAGE, admin_app, live_server

PASSWORD = "phone-Pa55-r9"
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
# A zone whose clock is not UTC's, by a half hour: a UTC time shown as local cannot pass.
LOCAL = {"locale": "en-GB", "timezone_id": "Asia/Kolkata"}
KOLKATA = timezone(timedelta(hours=5, minutes=30))
TARGETS = ("local", "production", "staging")
# Chromium logs every 4xx answer to fetch() as a console error; the token page expects some.
EXPECTED_CONSOLE = "Failed to load resource: the server responded with a status of 40"

pytestmark = NEEDS_CHROMIUM


@pytest.fixture
def board(sqlite_url: Callable[[str], str], tmp_path: Path) -> Iterator[dbswap.Switchboard]:
    board = dbswap.Switchboard({n: sqlite_url(n) for n in TARGETS}, runtime_dir=tmp_path / "rt")
    try:
        yield board
    finally:
        board.dispose()


@pytest.fixture
def demo(board: dbswap.Switchboard) -> Iterator[str]:
    with live_server(create_app(board, admin_password=PASSWORD)) as base:
        yield base


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _watch(page: Any) -> list[str]:
    problems: list[str] = []

    def console(message: Any) -> None:
        if message.type == "error" and not message.text.startswith(EXPECTED_CONSOLE):
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


def _log_in(page: Any, base: str) -> None:
    page.goto(base + PAGE)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + PAGE)


def _fits(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{page.url} is {width} px wide"


def _focused(page: Any, locator: Any) -> bool:
    return bool(locator.evaluate("element => element === document.activeElement"))


def _box(locator: Any) -> dict[str, float]:
    box: dict[str, float] | None = locator.bounding_box()
    assert box is not None
    return box


def _local_clock(iso: str) -> str:
    """``15:12``: an ISO UTC time as en-GB writes it in Kolkata."""
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return when.astimezone(KOLKATA).strftime("%H:%M")


def test_on_a_phone_the_result_of_a_tap_shows_where_the_tap_was(
    demo: str, board: dbswap.Switchboard, browser: Any
) -> None:
    from playwright.sync_api import expect

    page = browser.new_context(**PHONE).new_page()
    problems = _watch(page)
    _log_in(page, demo)
    switch = page.locator("button.switch[data-target=staging]")
    switch.tap()
    expect(page.locator("#active-badge")).to_have_text("staging")
    assert board.active == "staging"
    result = page.get_by_text(re.compile(r"Switched local → staging"))
    expect(result).to_be_visible()
    # Where the thumb is: on the screen, just under the button tapped (not at the page's top).
    shown, tapped = _box(result), _box(switch)
    assert shown["y"] >= 0 and shown["y"] + shown["height"] <= 844, shown
    assert abs(shown["y"] - tapped["y"]) < 160, (shown, tapped)
    assert page.evaluate("window.scrollY") > 0  # the row was below the fold: it scrolled there

    # A refusal too (production asks first; refusing is said in the row).
    page.once("dialog", lambda d: d.dismiss())
    production = page.locator("button.switch[data-target=production]")
    production.tap()
    refused = page.get_by_text("Not switched: production was not confirmed.")
    expect(refused).to_be_visible()
    assert abs(_box(refused)["y"] - _box(production)["y"]) < 160
    _fits(page)
    assert problems == []


def test_on_a_phone_the_history_stays_short_with_a_way_to_see_more(
    demo: str, board: dbswap.Switchboard, browser: Any
) -> None:
    from playwright.sync_api import expect

    for _ in range(6):
        board.use("staging", user="tester")
        board.use("local", user="tester")
    phone = browser.new_context(**PHONE).new_page()
    problems = _watch(phone)
    _log_in(phone, demo)
    rows = phone.locator("#history tbody tr")
    expect(rows).to_have_count(12)
    visible = phone.locator("#history tbody tr:visible")
    expect(visible).to_have_count(5)
    more = phone.get_by_role("button", name="Show all 12 switches")
    expect(more).to_have_attribute("aria-expanded", "false")
    more.tap()
    expect(visible).to_have_count(12)
    fewer = phone.get_by_role("button", name="Show fewer")
    expect(fewer).to_have_attribute("aria-expanded", "true")
    _fits(phone)

    # A switch made elsewhere re-draws the history: still short after "Show fewer".
    fewer.tap()
    board.use("staging", user="elsewhere")
    expect(phone.locator("#history tbody tr").first).to_contain_text("elsewhere")
    expect(visible).to_have_count(5)

    # A wide screen shows them all, with no button.
    wide = browser.new_page(viewport={"width": 1200, "height": 900})
    problems += _watch(wide)
    _log_in(wide, demo)
    expect(wide.locator("#history tbody tr:visible")).to_have_count(13)
    expect(wide.get_by_role("button", name=re.compile("Show all"))).to_be_hidden()
    assert problems == []


def test_the_shortest_time_limit_on_both_pages_is_one_minute(
    demo: str, board: dbswap.Switchboard, browser: Any
) -> None:
    from playwright.sync_api import expect

    page = browser.new_context(**PHONE).new_page()
    problems = _watch(page)
    _log_in(page, demo)
    values = page.locator("tr[data-target=staging] select.duration option").evaluate_all(
        "options => options.map(o => [o.value, o.textContent])"
    )
    assert values[:2] == [["", "no limit"], ["60", "1 min"]]
    page.select_option("tr[data-target=staging] select.duration", "60")
    page.locator("button.switch[data-target=staging]").tap()
    expect(page.locator("#time-limit")).to_contain_text(re.compile(r"ends in 0:5\d"))
    limit = board.time_limit
    assert limit is not None and 55 < limit.seconds_left <= 60

    with live_server(admin_app(board, token_page=True)) as base:
        token_page = browser.new_page()
        problems += _watch(token_page)
        token_page.goto(base + PAGE)
        token_page.fill("#token", ADMIN_TOKEN)
        token_page.click("#token-form button[type=submit]")
        options = token_page.locator("tr[data-target=local] select.duration option")
        expect(options.nth(1)).to_have_text("1 min")
        assert options.nth(1).get_attribute("value") == "60"
    assert problems == []


def test_times_read_the_same_everywhere_local_with_the_exact_time_on_hover(
    demo: str, board: dbswap.Switchboard, browser: Any
) -> None:
    from playwright.sync_api import expect

    board.use("production", user="tester", for_=900)
    limit = board.time_limit
    assert limit is not None
    clock = _local_clock(limit.expires_at)
    context = browser.new_context(**LOCAL)
    page = context.new_page()
    problems = _watch(page)

    # The demo's site: the end of the time limit in local time, the exact one on hover.
    page.goto(demo + "/")
    banner = page.locator("#time-limit-banner")
    expect(banner).to_contain_text(f"(at {clock})")
    expect(banner).to_contain_text(re.compile(r"ends in 1[45]:\d\d"))
    assert "Z" not in banner.inner_text() and limit.expires_at[:10] not in banner.inner_text()
    end = banner.locator("time")
    assert limit.expires_at in (end.first.get_attribute("title") or "")

    # The admin page says it the same way.
    _log_in(page, demo)
    cell = page.locator("#time-limit")
    expect(cell).to_contain_text(f"(at {clock})")
    expect(cell).to_contain_text(re.compile(r"ends in 1[45]:\d\d"))
    assert limit.expires_at in (cell.locator("time").first.get_attribute("title") or "")

    # A preview's end, on the admin page and the site's banner.
    page.locator("button.preview[data-target=staging]").click()
    box = page.locator("#preview-state")
    expect(box).to_contain_text(re.compile(r"Ends in 14:5\d \(at \d\d:\d\d\)"))
    redrawn: list[str] = []
    page.on("request", lambda r: redrawn.append(r.url) if r.resource_type == "fetch" else None)
    page.goto(demo + "/")
    preview = page.locator("#preview-banner")
    expect(preview).to_contain_text(re.compile(r"ends in 14:5\d \(at \d\d:\d\d\)"))
    preview_end = preview.locator("time").first.get_attribute("title") or ""
    assert re.search(r"\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\)$", preview_end), preview_end
    # The public status says what this page says (the preview's target), so the page, which
    # asks it each second, never draws itself again while nothing changes.
    state = page.evaluate("fetch('/api/status').then(r => r.json())")
    assert state["target"] == "staging" and state["preview"]["target"] == "staging"
    assert state["sharedTarget"] == "production"
    page.wait_for_timeout(2500)
    assert any(url.endswith("/api/status") for url in redrawn)
    assert not any(url.endswith(demo + "/") for url in redrawn), redrawn
    assert problems == []


def test_focus_stays_on_the_control_used_and_each_rows_controls_have_their_own_names(
    demo: str, board: dbswap.Switchboard, browser: Any
) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems = _watch(page)
    _log_in(page, demo)
    for name in TARGETS:
        for role, label in (
            ("button", f"Switch to {name}"),
            ("button", f"Preview {name}"),
            ("checkbox", f"read-only for {name}"),
            ("combobox", f"How long on {name}"),
        ):
            expect(page.get_by_role(role, name=label, exact=True)).to_have_count(1)

    # With the keyboard: the switch happens, and focus stays on the button pressed.
    staging = page.get_by_role("button", name="Switch to staging", exact=True)
    staging.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#active-badge")).to_have_text("staging")
    expect(staging).to_be_disabled()  # nothing more to do there, yet it keeps the focus
    assert _focused(page, staging)

    production = page.get_by_role("button", name="Switch to production", exact=True)
    production.focus()
    page.once("dialog", lambda d: d.accept())
    page.keyboard.press("Enter")
    expect(page.locator("#active-badge")).to_have_text("production")
    assert _focused(page, production)

    preview = page.get_by_role("button", name="Preview local", exact=True)
    preview.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#preview-state")).to_be_visible()
    assert _focused(page, preview)

    # A switch made elsewhere re-draws the rows: focus stays where it was.
    board.use("local", user="elsewhere")
    expect(page.locator("#active-badge")).to_have_text("local")
    assert _focused(page, preview)

    # The token page: same names, same focus.
    with live_server(admin_app(board, token_page=True)) as base:
        token_page = browser.new_page()
        problems += _watch(token_page)
        token_page.goto(base + PAGE)
        token_page.fill("#token", ADMIN_TOKEN)
        token_page.click("#token-form button[type=submit]")
        for name in TARGETS:
            for role, label in (
                ("button", f"Switch to {name}"),
                ("checkbox", f"read-only for {name}"),
                ("combobox", f"How long on {name}"),
            ):
                expect(token_page.get_by_role(role, name=label, exact=True)).to_have_count(1)
        staging = token_page.get_by_role("button", name="Switch to staging", exact=True)
        staging.focus()
        token_page.keyboard.press("Enter")
        expect(token_page.locator("#active-badge")).to_have_text("staging")
        assert _focused(token_page, staging)
        board.use("local", user="elsewhere")
        expect(token_page.locator("#active-badge")).to_have_text("local")
        assert _focused(token_page, staging)
    assert problems == []
