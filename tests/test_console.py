"""The operator console end to end: a real headless Chromium (Debian's ``chromium``,
driven by Playwright) on ``/ui/`` of a running Bridge, a fake switch over TCP
replaying a real capture, a real receiver.

Signs in with an account token, creates a hook through the form (a validation
error first), replays the bundled bridged-call capture, and checks on the page
the attempts with their status codes, the live tail's calls and the switch's
state; resends a delivery, disables and re-enables the hook; a hook named as
markup shows as text and runs nothing.  The screenshot goes to
``$ESLHOOK_CONSOLE_SCREENSHOT`` (scripts/console_screenshot.py: docs/console.png)
or the test's tmp_path.  Without Chromium or Playwright: skipped, and failed
under CI=true (.ci/run installs both).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

import helpers
from receiver import Reply
from world import FAST_DELIVERY

ACME = helpers.ACCOUNT
EAST = "a0000000000000000000000000000002"
TOKEN = "console-e2e-acme-token-0123456789"
ACCOUNTS = [{"id": ACME, "name": "Acme", "auth_tokens": [TOKEN]},
            {"id": EAST, "name": "Acme East", "parent_id": ACME}]
CAPTURE = Path(__file__).resolve().parent.parent / "eslhook" / "data" / \
    "json-bridged-call-all-events.esl"
INBOUND_LEGS = ("fcac29d0-7f0d-4996-a1f0-18ddd3daac16", "2664ea6c-3033-42f2-a99d-df1043e8fbe2")
XSS_NAME = "<img src=x onerror=alert(1)>"
WAIT_MS = 10_000          # every wait on the page is bounded by this


def chromium_path() -> str | None:
    return shutil.which("chromium") or next(
        (p for p in ("/usr/bin/chromium",) if os.path.exists(p)), None)


def missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (test extra)"
    if chromium_path() is None:
        return "no chromium (Debian: apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module."""
    reason = missing_browser()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the console test: " + reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(),
                                              args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    yield opened
    context.close()


def console_world(world, switch_port: int):
    """A bridge whose switch "fs1" is not up yet: starting a fake switch on its port
    later replays the capture once eslhook (re)connects and subscribes."""
    made = world(accounts=ACCOUNTS, default_account_id=ACME, switches=("fs0",),
                 dead_switches=[("fs1", switch_port)], heartbeat_seconds=None,
                 delivery={**FAST_DELIVERY, "tenant_allowed_networks": ["127.0.0.0/8"]},
                 extra={"api": {"listen": "127.0.0.1:0"}})
    made.bridge.start()
    return made


def test_console_drives_hooks_deliveries_and_the_live_tail(world, page, tmp_path):
    from playwright.sync_api import expect

    from eslhook.fakeswitch import FakeSwitch

    expect.set_options(timeout=WAIT_MS)

    port = helpers.free_port()
    made = console_world(world, port)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))    # uncaught in the page

    page.goto(made.url("/ui/"))
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_label("Account")).to_have_value(ACME)
    expect(page.get_by_label("Account").locator("option")).to_have_text(
        ["Acme", "Acme East (in Acme)"])
    expect(page.locator("#switches")).to_contain_text("fs1: down")

    # a new hook: the API's validation error shows next to the URI field
    page.get_by_role("button", name="New hook").click()
    form = page.locator("#hook-form")
    form.get_by_label("Name").fill("CRM calls")
    form.get_by_label("URI").fill("ftp://crm.example.com/calls")
    form.get_by_label("Event").select_option("all")
    form.get_by_label("Retries").fill("1")
    form.get_by_role("button", name="Save").click()
    expect(page.locator("#f-uri-error")).not_to_be_empty()
    expect(form.get_by_label("URI")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-name-error")).to_be_empty()
    form.get_by_label("URI").fill(made.receiver.url("/crm"))
    form.get_by_role("button", name="Save").click()
    hooks = page.get_by_role("table", name="Hooks")
    row = hooks.locator("tr", has_text="CRM calls")
    expect(row).to_contain_text("enabled")
    expect(row).to_contain_text("post / json")
    expect(page.locator("#hook-editor")).to_be_hidden()

    # the real capture through the fake switch: the first delivery fails once
    made.receiver.script(Reply(500))
    page.get_by_role("button", name="Deliveries of CRM calls").click()
    switch = FakeSwitch([CAPTURE], port=port, heartbeat_seconds=None, settle_seconds=0.0)
    switch.start()
    try:
        assert switch.replay_done.wait(WAIT_MS / 1000)
        live = page.get_by_role("table", name="Live calls")
        for leg in INBOUND_LEGS:
            expect(live.locator("tr", has_text=leg).filter(has_text="channel_destroy")
                   ).to_have_count(1)
        expect(live).to_contain_text("channel_create")
        expect(live).to_contain_text("NORMAL_CLEARING")
        expect(live).to_contain_text("Alice Example +15551234567")
        expect(page.locator("#switches")).to_contain_text("fs1: connected")

        attempts = page.get_by_role("table", name="Attempts")
        page.get_by_role("button", name="Refresh deliveries").click()
        expect(attempts.locator("tbody tr").filter(has_text="500")).to_have_count(1)
        expect(attempts.locator("tbody tr").filter(has_text="200").first).to_be_visible()
        successes = len(made.receiver.requests) - 1
        assert successes >= 6           # 2 inbound + 1 outbound leg: create/answer/destroy
        expect(attempts.locator("tbody tr")).to_have_count(successes + 1)
        # every attempt shows how long it took, in milliseconds
        column = attempts.locator("thead th").all_inner_texts().index("Duration (ms)") + 1
        durations = attempts.locator("tbody td:nth-child(%d)" % column).all_inner_texts()
        assert len(durations) == successes + 1
        assert all(re.fullmatch(r"\d+\.\d", shown) for shown in durations), durations
        expect(page.locator("#chart rect.ok").first).to_be_visible()
        expect(page.locator("#chart rect.bad")).to_have_count(1)
        page.get_by_label("Result").select_option("failure")
        expect(attempts.locator("tbody tr")).to_have_count(1)
        page.get_by_label("Result").select_option("")

        # resend the newest delivery: a new attempt, trigger "resend"
        before = len(made.receiver.requests)
        attempts.locator("tbody tr").first.get_by_role("button", name="Resend").click()
        expect(attempts.get_by_role("cell", name="resend", exact=True)).to_have_count(1)
        assert len(made.receiver.requests) == before + 1
        expect(row).to_contain_text("success 200")
        page.screenshot(path=str(os.environ.get("ESLHOOK_CONSOLE_SCREENSHOT")
                                 or tmp_path / "console.png"), full_page=True)
    finally:
        switch.stop()

    # disable, then enable again, through the row's buttons (keyboard: Enter)
    page.get_by_role("button", name="Disable CRM calls").click()
    expect(row).to_contain_text("disabled")
    page.get_by_role("button", name="Enable CRM calls").focus()
    page.keyboard.press("Enter")
    expect(row).to_contain_text("enabled")
    stored = made.bridge.hooks.hooks
    assert [(h.name, h.enabled) for h in stored] == [("CRM calls", True)]

    # markup in a name is text: no element made, no script run
    page.get_by_role("button", name="New hook").click()
    form.get_by_label("Name").fill(XSS_NAME)
    form.get_by_label("URI").fill(made.receiver.url("/xss"))
    form.get_by_role("button", name="Save").click()
    expect(hooks.get_by_role("cell", name=XSS_NAME, exact=True)).to_have_count(1)
    assert hooks.locator("img").count() == 0
    page.wait_for_timeout(200)          # an onerror would have fired by now
    assert dialogs == [] and errors == []
