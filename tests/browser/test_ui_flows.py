"""The web page as a person uses it: sign in, submit, watch the output arrive and the end come
without reloading, cancel after a confirmation, filter the list, see only one's own."""

import re

from playwright.sync_api import expect

from tests.browser.conftest import (
    ACME_TOKEN,
    GLOBEX_TOKEN,
    OPERATOR_TOKEN,
    Page,
    api,
    screenshot,
)

# Output in two parts with a pause between them, on both streams, then exit 3.
TALKER = """import sys, time
print("first line", flush=True)
print("a warning", file=sys.stderr, flush=True)
time.sleep(3)
print("last line", flush=True)
sys.exit(3)
"""
SLEEPER = "import time; time.sleep(120)"


def test_sign_in_keeps_the_token_in_the_tab_only(ui: Page) -> None:
    page = ui.page
    page.goto(ui.url + "/")
    expect(page).to_have_url(re.compile(r"/ui$"))
    page.get_by_label("API token", exact=True).fill("wrong-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#token-error")).to_contain_text("refused")
    ui.sign_in(ACME_TOKEN)
    expect(page.locator("#who")).to_have_text("tenant acme")
    assert ACME_TOKEN not in page.url
    assert page.context.cookies() == []
    assert page.evaluate("sessionStorage.getItem('crucible.token')") == ACME_TOKEN
    assert page.evaluate("localStorage.length") == 0
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API token", exact=True)).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('crucible.token')") is None
    ui.harmless()


def test_submit_then_watch_output_live_and_the_end_without_reloading(ui: Page) -> None:
    page = ui.page
    ui.sign_in(ACME_TOKEN)
    page.get_by_role("link", name="Submit an evaluation").click()
    page.get_by_label("Code", exact=True).fill(TALKER)
    page.get_by_label("Labels", exact=True).fill("suite=browser\nrun=talker")
    page.get_by_label("Evaluation id (optional)", exact=True).fill("talker-1")
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_role("heading", name="Evaluation talker-1")).to_be_visible()
    output = page.locator("#output")
    # The first line shows while the program still runs: live, not after the end.
    expect(output.locator(".line.stdout").first).to_contain_text("first line")
    status = page.locator("#record dd[data-field=status]")
    expect(status).to_have_text("running")
    expect(output.locator(".line.stderr")).to_contain_text("a warning")
    # Then the end, without a reload.
    expect(status).to_have_text("failed", timeout=30_000)
    expect(output).to_contain_text("last line")
    expect(page.locator("#record dd[data-field=exit_code]")).to_have_text("3")
    expect(page.locator("#record dd[data-field=verified]")).to_have_text("yes")
    kinds = page.locator("#timeline li").evaluate_all("(items) => items.map(i => i.dataset.type)")
    assert kinds[0] == "accepted"
    assert {"running", "failed"} <= set(kinds)
    expect(page.locator("#timeline li[data-verified=true]")).to_have_count(1)
    expect(page.locator("#cancel")).to_be_hidden()
    assert page.evaluate("performance.navigation.type") == 0  # never reloaded
    screenshot(page, "ui-evaluation.png")
    ui.harmless()


def test_list_updates_live_and_filters_by_status(ui: Page) -> None:
    page = ui.page
    api(ui.url, ACME_TOKEN, "POST", "/v1/evaluations", {"eval_id": "done-1", "code": "print(1)"})
    ui.sign_in(ACME_TOKEN)
    table = page.locator("#evaluations")
    expect(table).to_have_attribute("data-live", "true")
    # Submitted elsewhere while the list is open: the row appears, then ends, no reload.
    api(ui.url, ACME_TOKEN, "POST", "/v1/evaluations", {"eval_id": "live-1", "code": "print(2)"})
    row = table.locator("tr[data-id='live-1']")
    expect(row).to_be_visible()
    expect(row.locator(".status")).to_contain_text("completed", timeout=30_000)
    expect(row.locator(".exit")).to_have_text("0")
    expect(row.locator(".duration")).not_to_have_text("")
    # Another tenant's evaluation never shows.
    api(ui.url, GLOBEX_TOKEN, "POST", "/v1/evaluations", {"eval_id": "theirs", "code": "1"})
    api(ui.url, ACME_TOKEN, "POST", "/v1/evaluations", {"eval_id": "live-2", "code": "1"})
    expect(table.locator("tr[data-id='live-2']")).to_be_visible()
    expect(table.locator("tr[data-id='theirs']")).to_have_count(0)
    api(ui.url, ACME_TOKEN, "POST", "/v1/evaluations", {"eval_id": "asleep", "code": SLEEPER})
    expect(table.locator("tr[data-id='asleep'] .status")).to_contain_text("running")
    screenshot(page, "ui-list.png")
    page.get_by_label("Status", exact=True).select_option("running")
    expect(page.locator("caption")).to_contain_text("status running")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table.locator("tbody tr").first).to_have_attribute("data-id", "asleep")
    api(ui.url, ACME_TOKEN, "POST", "/v1/evaluations/asleep/cancel")
    ui.harmless()


def test_operator_sees_every_tenant_named_tenant_tilde_id(ui: Page) -> None:
    api(ui.url, GLOBEX_TOKEN, "POST", "/v1/evaluations", {"eval_id": "g-1", "code": "1"})
    ui.sign_in(OPERATOR_TOKEN)
    expect(ui.page.locator("#who")).to_have_text("operator")
    link = ui.page.get_by_role("link", name="globex~g-1")
    link.click()
    expect(ui.page.locator("#record dd[data-field=tenant]")).to_have_text("globex")
    ui.harmless()


def test_cancel_asks_first_then_cancels(ui: Page) -> None:
    page = ui.page
    api(ui.url, ACME_TOKEN, "POST", "/v1/evaluations", {"eval_id": "long-1", "code": SLEEPER})
    ui.sign_in(ACME_TOKEN)
    page.get_by_role("link", name="long-1").click()
    status = page.locator("#record dd[data-field=status]")
    expect(status).to_have_text("running", timeout=30_000)
    page.get_by_role("button", name="Cancel evaluation").click()
    dialog = page.get_by_role("dialog", name="Cancel this evaluation?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="No, keep it running").click()
    expect(dialog).to_be_hidden()
    expect(status).to_have_text("running")
    assert api(ui.url, ACME_TOKEN, "GET", "/v1/evaluations/long-1")["status"] == "running"
    page.get_by_role("button", name="Cancel evaluation").click()
    dialog.get_by_role("button", name="Yes, cancel it").click()
    expect(status).to_have_text("cancelled", timeout=30_000)
    expect(page.locator("#timeline li[data-type=cancelled]").first).to_be_visible()
    expect(page.locator("#cancel")).to_be_hidden()
    ui.harmless()


def test_invalid_fields_get_the_apis_messages_beside_them(ui: Page) -> None:
    page = ui.page
    before = _eval_ids(ui)
    ui.sign_in(ACME_TOKEN)
    page.get_by_role("link", name="Submit an evaluation").click()
    page.get_by_label("Code", exact=True).fill("print(1)")
    page.get_by_label("Timeout (seconds)", exact=True).fill("-5")
    page.get_by_label("CPU", exact=True).fill("lots")
    page.get_by_label("Memory", exact=True).fill("99Ti")
    page.get_by_label("Environment", exact=True).fill("LD_PRELOAD=/x.so")
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#error-timeout_seconds")).to_contain_text("greater than or equal to 1")
    expect(page.locator("#error-resources\\.cpu")).to_contain_text("not a Kubernetes quantity")
    expect(page.locator("#error-resources\\.memory")).to_contain_text("at most")
    expect(page.locator("#error-env")).to_contain_text("LD_PRELOAD")
    expect(page.get_by_label("CPU", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#form-errors")).to_contain_text("invalid fields")
    # Nothing was created. Ids, not whole records: an earlier test's cancelled evaluation may
    # still be receiving its verified exit (exit code, signal) while this one runs.
    assert _eval_ids(ui) == before
    ui.harmless()


def _eval_ids(ui: Page) -> list[str]:
    return [item["eval_id"] for item in api(ui.url, ACME_TOKEN, "GET", "/v1/evaluations")["items"]]
