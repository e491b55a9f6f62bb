"""Chart tests: helm renders the chart, the tests assert on the manifests as dicts.

Every test here is marked ``chart``; without a helm binary they skip with the reason.
"""

import os
import pathlib
from collections.abc import Callable

import pytest

from dispatcher.settings import DispatcherSettings
from tests.chart import render

HERE = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in pathlib.Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.chart)


@pytest.fixture(scope="session")
def helm() -> str:
    binary = render.helm_binary()
    if binary is None:
        pytest.skip("no helm: run tests/cluster/build-tools.sh helm, or set CRUCIBLE_HELM")
    return binary


@pytest.fixture(scope="session")
def defaults(helm: str) -> list[render.Manifest]:
    """The chart rendered with its default values."""
    return render.template()


@pytest.fixture
def chart_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> Callable[[list[render.Manifest]], DispatcherSettings]:
    """Builds DispatcherSettings from exactly the rendered Deployment's env (the API token and
    ingest key files are copied from the rendered Secrets to temporary paths)."""

    def build(manifests: list[render.Manifest]) -> DispatcherSettings:
        env = render.resolved_env(manifests)
        for variable, secret, key in (
            ("CRUCIBLE_API_TOKENS_FILE", f"{render.FULLNAME}-api-tokens", "tokens"),
            ("CRUCIBLE_INGEST_KEY_FILE", f"{render.FULLNAME}-ingest-key", "ingest-key"),
        ):
            copy = tmp_path / key
            copy.write_text(render.secret_value(manifests, secret, key))
            env[variable] = str(copy)
        for key in [k for k in os.environ if k.startswith("CRUCIBLE_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return DispatcherSettings()

    return build
