"""Hostile data renders as text (no script runs, no policy is violated, a 10 MB line does not
freeze the page); the page is keyboard reachable; axe-core finds nothing serious."""

import json
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ACME_TOKEN, Page, api

PAYLOADS = [
    "<script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned = 2">',
    "<b>bold?</b> &amp; <iframe src=javascript:window.__pwned=3></iframe>",
]
BIG = 10 * 1024 * 1024
HOSTILE = f"""import sys
for p in {json.dumps(PAYLOADS)}:
    print(p, flush=True)
print("\\x1b[31mred\\x1b[0m \\x1b]0;title\\x07done \\x07bell", flush=True)
print("<script>window.__pwned = 4</script>", file=sys.stderr, flush=True)
sys.stdout.write("A" * {BIG} + "\\n")
print("after the big line", flush=True)
"""


def test_hostile_output_renders_as_text_and_a_10mb_line_is_capped(ui: Page) -> None:
    page = ui.page
    api(ui.url, ACME_TOKEN, "POST", "/v1/evaluations", {"eval_id": "hostile-1", "code": HOSTILE})
    ui.sign_in(ACME_TOKEN)
    page.get_by_role("link", name="hostile-1").click()
    expect(page.locator("#record dd[data-field=status]")).to_have_text("completed", timeout=60_000)
    output = page.locator("#output")
    for payload in PAYLOADS:
        expect(output.get_by_text(payload, exact=True)).to_have_count(1)
    expect(output.locator(".stderr")).to_contain_text("<script>window.__pwned = 4</script>")
    # Terminal escapes are dropped and other control characters shown as symbols.
    expect(output.get_by_text("red done ␇bell", exact=True)).to_have_count(1)
    assert output.locator("script, img, iframe, b").count() == 0
    # The 10 MB line (what the wrapper kept of it) shows its start and a button for the rest.
    big = output.locator(".line", has_text="AAAA").first
    shown = big.locator(".text").evaluate("(n) => n.textContent.length")
    assert shown <= 2000
    more = big.get_by_role("button", name="show all")
    expect(more).to_be_visible()
    assert page.evaluate("1 + 1") == 2  # the page still answers
    ui.harmless()


@pytest.mark.parametrize(
    ("label", "lines", "field", "shown"),
    [
        ("Environment", "<script>window.__pwned++</script>=1", "env", "env.<script>window"),
        ("Environment", "<img src=x onerror=window.__pwned=5>", "env", "env.<img src:"),
        ("Labels", "<b>bold</b>=v", "labels", "labels.<b>bold</b>: "),
    ],
)
def test_hostile_text_in_422_messages_renders_as_text(
    ui: Page, label: str, lines: str, field: str, shown: str
) -> None:
    page = ui.page
    ui.sign_in(ACME_TOKEN)
    page.get_by_role("link", name="Submit an evaluation").click()
    page.get_by_label("Code", exact=True).fill("print(1)")
    page.get_by_label(label, exact=True).fill(lines)
    page.get_by_role("button", name="Submit").click()
    expect(page.locator(f"#error-{field}")).to_contain_text(shown)
    assert page.locator("#submit-form img, #submit-form script, #submit-form b").count() == 0
    ui.harmless()


def test_everything_is_reachable_with_the_keyboard(ui: Page) -> None:
    page = ui.page
    api(ui.url, ACME_TOKEN, "POST", "/v1/evaluations", {"eval_id": "keys-1", "code": "1"})
    page.goto(ui.url + "/ui")
    token = page.get_by_label("API token", exact=True)
    expect(token).to_be_focused()
    page.keyboard.type(ACME_TOKEN)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Evaluations")).to_be_focused()
    expect(page.locator("#evaluations tr[data-id='keys-1']")).to_be_visible()
    # Tab forward to the row's link, then open it with Enter.
    focused = _tab_until(page, "a[href='#/evaluations/keys-1']")
    assert focused
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Evaluation keys-1")).to_be_focused()
    # Back to the navigation, then the form's fields in order.
    assert _tab_until(page, "#nav-new", key="Shift+Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Submit an evaluation")).to_be_focused()
    for control in ("#mode-code", "#field-code", "#field-image", "#field-timeout_seconds"):
        assert _tab_until(page, control, limit=4), control
    ui.harmless()


def test_cancel_dialog_works_from_the_keyboard(ui: Page) -> None:
    page = ui.page
    body = {"eval_id": "keys-2", "code": "import time; time.sleep(120)"}
    api(ui.url, ACME_TOKEN, "POST", "/v1/evaluations", body)
    ui.sign_in(ACME_TOKEN)
    page.goto(ui.url + "/ui#/evaluations/keys-2")
    expect(page.locator("#record dd[data-field=status]")).to_have_text("running", timeout=30_000)
    assert _tab_until(page, "#cancel")
    page.keyboard.press("Enter")
    expect(page.locator("#confirm-no")).to_be_focused()  # the safe choice first
    page.keyboard.press("Escape")
    expect(page.locator("#confirm-cancel")).to_be_hidden()
    expect(page.locator("#cancel")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Shift+Tab")
    expect(page.locator("#confirm-yes")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#record dd[data-field=status]")).to_have_text("cancelled", timeout=30_000)
    ui.harmless()


def _tab_until(page: Any, selector: str, limit: int = 40, key: str = "Tab") -> bool:
    for _ in range(limit):
        page.keyboard.press(key)
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return True
    return False


def _axe(page: Any, source: str) -> list[str]:
    """axe-core's serious and critical violations on the page as it is (WCAG 2.1 A/AA)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(source)  # through the DevTools protocol: the page's CSP stays enforced
    result = page.evaluate(
        """async () => {
        const r = await axe.run(document, {runOnly: ["wcag2a", "wcag2aa", "wcag21a",
            "wcag21aa", "best-practice"]});
        return r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
            .map(v => v.id + ": " + v.nodes.map(n => n.target.join(" ")).join(", "));
    }"""
    )
    return list(result)


def test_axe_finds_no_serious_violation_on_any_view(ui: Page, axe_source: str) -> None:
    page = ui.page
    body = {"eval_id": "axe-1", "code": "import sys; print('out'); print('err', file=sys.stderr)"}
    api(ui.url, ACME_TOKEN, "POST", "/v1/evaluations", body)
    page.goto(ui.url + "/ui")
    expect(page.get_by_label("API token", exact=True)).to_be_visible()
    assert _axe(page, axe_source) == [], "sign-in"
    ui.sign_in(ACME_TOKEN)
    expect(page.locator("#evaluations tbody tr").first).to_be_visible()
    assert _axe(page, axe_source) == [], "list"
    page.get_by_role("link", name="axe-1").click()
    expect(page.locator("#record dd[data-field=status]")).to_have_text("completed", timeout=30_000)
    expect(page.locator("#output .stderr")).to_be_visible()
    assert _axe(page, axe_source) == [], "evaluation"
    page.get_by_role("link", name="Submit", exact=True).click()
    page.get_by_label("CPU", exact=True).fill("lots")
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#error-resources\\.cpu")).to_be_visible()
    assert _axe(page, axe_source) == [], "form with errors"
    ui.harmless()
