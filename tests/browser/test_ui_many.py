"""1,000 evaluations in the list: two pages (the API's cursor), every row live. The time to
render them is printed (measured in the page: performance.measure), never asserted.

The dispatcher of this module runs nothing (local backend, concurrency 0): its evaluations stay
queued, so that 1,000 of them cost a submission each and no process.
"""

import concurrent.futures
import time
import urllib.parse
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests import redisproc
from tests.browser.conftest import OPERATOR_TOKEN, Page, api, serve

COUNT = 1000


@pytest.fixture(scope="module")
def dispatcher_url(
    redis_server: redisproc.RedisProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("browser-many")
    extra = {"CRUCIBLE_LOCAL__CONCURRENCY": "0", "CRUCIBLE_LOCAL__QUEUE_SIZE": str(COUNT * 2)}
    with serve(redis_server, directory, **extra) as url:
        yield url


def test_a_thousand_rows_render_and_stay_live(ui: Page) -> None:
    def submit(n: int) -> None:
        body = {"eval_id": f"many-{n:04d}", "code": "1", "labels": {"batch": "many"}}
        api(ui.url, OPERATOR_TOKEN, "POST", "/v1/evaluations", body)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(submit, range(COUNT)))
    page = ui.page
    ui.sign_in(OPERATOR_TOKEN)
    rows = page.locator("#evaluations tbody tr")
    expect(rows).to_have_count(500)
    started = time.perf_counter()
    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(COUNT, timeout=30_000)
    second_page = time.perf_counter() - started
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    first = api(ui.url, OPERATOR_TOKEN, "GET", "/v1/evaluations?limit=500")
    cursor = urllib.parse.quote(first["next_cursor"])
    rest = api(ui.url, OPERATOR_TOKEN, "GET", f"/v1/evaluations?limit=500&cursor={cursor}")
    newest_first = [r["eval_id"] for r in first["items"] + rest["items"]]
    assert rows.evaluate_all("(rows) => rows.map(r => r.dataset.id)") == newest_first
    # Still live with 1,000 rows: a cancel elsewhere shows in its row.
    api(ui.url, OPERATOR_TOKEN, "POST", "/v1/evaluations/many-0007/cancel")
    expect(page.locator("tr[data-id='many-0007'] .status")).to_contain_text("cancelled")
    took = page.evaluate(
        "performance.getEntriesByName('crucible:render-rows').map(m => [m.detail, m.duration])"
    )
    pages = [f"{int(n)} rows in {ms:.1f} ms" for n, ms in took if n > 1]
    print(f"\nrender time in Chromium, per page: {'; '.join(pages)}")
    timing = page.evaluate(
        """() => { const t0 = performance.now();
        document.querySelector('#evaluations tbody').getBoundingClientRect();
        return performance.now() - t0; }"""
    )
    print(f"layout of the 1,000-row table after it: {timing:.1f} ms")
    print(f"'Load more' click to 1,000 rows on the page (fetch + render): {second_page:.2f} s")
    ui.harmless()
