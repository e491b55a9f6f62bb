"""Browser tests: Debian's headless Chromium, driven by Playwright for Python (it launches that
executable; it never downloads a browser), against a live ``crucible serve`` (the real local
backend, the session's real Redis) with two tenants' tokens and an operator's.

Without Chromium the tests skip with the reason, unless ``CRUCIBLE_E2E_REQUIRED=1`` (CI), where
that is a failure: ``tests/cluster/prereqs.sh`` installs it. Each page records what must never
happen, and every test fails on it: a script error, a Content-Security-Policy violation (the
``securitypolicyviolation`` events, collected from before the page's own scripts run) or a
``window.__pwned`` that a hostile payload would set.
"""

import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests import redisproc, serving

CHROMIUM = os.environ.get("CRUCIBLE_CHROMIUM", "/usr/bin/chromium")
HERE = pathlib.Path(__file__).parent
SHOTS = HERE.parent.parent / "docs" / "images"
VIEWPORT = {"width": 1280, "height": 800}
ACME_TOKEN = "acme-browser-token-5d1e8f"
GLOBEX_TOKEN = "globex-browser-token-2a7c4b"
OPERATOR_TOKEN = "operator-browser-token-6b3f90"
TOKENS = [f"acme:{ACME_TOKEN}", f"globex:{GLOBEX_TOKEN}", OPERATOR_TOKEN]
# Chromium as root needs --no-sandbox; the rest keeps it off a network this machine lacks.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
WATCH = """
document.addEventListener("securitypolicyviolation", (e) => {
  (window.__cspViolations = window.__cspViolations || []).push(
    e.violatedDirective + " " + e.blockedURI);
});
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if str(item.path).startswith(str(HERE)):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.timeout(300))


def _problem() -> str | None:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (tests/cluster/prereqs.sh installs Debian's chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (it is in the test extra: make venv)"
    return None


@pytest.fixture(scope="session", autouse=True)
def browser_available() -> None:
    problem = _problem()
    if problem is None:
        return
    if os.environ.get("CRUCIBLE_E2E_REQUIRED") == "1":
        pytest.fail(f"CRUCIBLE_E2E_REQUIRED=1 but {problem}", pytrace=False)
    pytest.skip(problem)


# Package scope: Playwright's sync API runs an event loop in this thread while it is started,
# and pytest-asyncio cannot start its own beside it, so it must stop before the other tests.
@pytest.fixture(scope="package")
def browser(browser_available: None) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def axe_source(browser_available: None) -> str:
    installer = HERE / "install-axe.sh"
    if shutil.which("npm") is None and os.environ.get("CRUCIBLE_E2E_REQUIRED") != "1":
        pytest.skip("npm is needed to install axe-core")
    path = subprocess.run([str(installer)], check=True, capture_output=True, text=True).stdout
    return pathlib.Path(path.strip()).read_text()


def serve(
    redis_server: redisproc.RedisProcess, directory: pathlib.Path, **extra: str
) -> contextlib.AbstractContextManager[str]:
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRUCIBLE_")}
    env |= {
        "CRUCIBLE_REDIS_URL": redis_server.url,
        "CRUCIBLE_PORT": str(redisproc.free_port()),
        "CRUCIBLE_LOCAL__WORK_ROOT": str(directory / "work"),
        "CRUCIBLE_API_TOKENS": ",".join(TOKENS),
        **extra,
    }
    return serving.serving(env, directory / "serve.log")


@pytest.fixture(scope="module")
def dispatcher_url(
    redis_server: redisproc.RedisProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A ready ``crucible serve`` for the module (one at a time: they share the consumer group)."""
    with serve(redis_server, tmp_path_factory.mktemp("browser-serve")) as url:
        yield url


class Page:
    """A fresh browser context (its own sessionStorage) on the dispatcher, and what it saw."""

    def __init__(self, browser: Any, url: str) -> None:
        self.url = url
        self.context = browser.new_context(viewport=VIEWPORT)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.add_init_script(WATCH)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", self._console)

    def _console(self, message: Any) -> None:
        # A refused request (a wrong token's 401, a 422) is logged by Chromium itself: expected.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def sign_in(self, token: str) -> None:
        self.page.goto(self.url + "/ui")
        self.page.get_by_label("API token", exact=True).fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_role("heading", name="Evaluations").wait_for()

    def harmless(self) -> None:
        """No script of a payload ran, no policy was violated, no script failed."""
        assert self.page.evaluate("window.__pwned") is None, "a payload's script ran"
        assert self.page.evaluate("window.__cspViolations || []") == []
        assert self.errors == []


@pytest.fixture
def ui(browser: Any, dispatcher_url: str) -> Iterator[Page]:
    page = Page(browser, dispatcher_url)
    yield page
    page.context.close()


def api(url: str, token: str, method: str, path: str, body: Any = None) -> Any:
    """The API from the test's side (what another client does meanwhile)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    request = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def screenshot(page: Any, name: str) -> None:
    """A documentation picture (docs/images), small: PNG of the 1280x800 viewport. Taken
    always (the page must render), written into docs/images only with
    CRUCIBLE_UI_SCREENSHOTS=1, so a test run leaves the checkout unchanged."""
    picture = page.screenshot(full_page=False)
    assert picture.startswith(b"\x89PNG")
    if os.environ.get("CRUCIBLE_UI_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / name).write_bytes(picture)
