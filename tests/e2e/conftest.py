"""End-to-end fixtures: the chart installed into a fresh namespace of a real cluster.

The cluster is whatever KUBECONFIG points at (pytest-helm-charts' convention; CI starts one with
tests/cluster/up.sh). Without a reachable cluster every test here is skipped with the reason,
unless CRUCIBLE_E2E_REQUIRED=1 (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.e2e import kube
from tests.e2e.api import Dispatcher

RELEASE = "crucible-e2e"  # contains the chart name, so resource names start with it
OWN_TOKENS_SECRET = "crucible-e2e-tokens"
VALUES = kube.REPO / "tests" / "e2e" / "values.yaml"
INSTALL_TIMEOUT = int(os.environ.get("CRUCIBLE_E2E_INSTALL_TIMEOUT", "300"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.e2e)
            # Pods start in seconds, but a cold node pulls nothing and still needs the time of
            # a helm install on the first test.
            item.add_marker(pytest.mark.timeout(900))


@pytest.fixture(scope="session", autouse=True)
def cluster_available() -> None:
    problem = kube.cluster_problem()
    if problem is None:
        return
    if os.environ.get("CRUCIBLE_E2E_REQUIRED") == "1":
        pytest.fail(f"CRUCIBLE_E2E_REQUIRED=1 but {problem}", pytrace=False)
    pytest.skip(problem)


@dataclass(frozen=True)
class Release:
    namespace: str
    name: str
    api: Dispatcher
    redis: redis.Redis

    def jobs(self) -> list[dict[str, Any]]:
        """Every Job in the release's namespace (the namespace is the suite's own)."""
        items: list[dict[str, Any]] = kube.kubectl_json("get", "jobs", "-n", self.namespace)[
            "items"
        ]
        return items

    def job(self, name: str) -> dict[str, Any]:
        job: dict[str, Any] = kube.kubectl_json("get", "job", name, "-n", self.namespace)
        return job

    def pod_of(self, job_name: str) -> dict[str, Any]:
        pods = kube.kubectl_json("get", "pods", "-n", self.namespace, "-l", f"job-name={job_name}")
        assert len(pods["items"]) == 1, pods["items"]
        pod: dict[str, Any] = pods["items"][0]
        return pod


@contextmanager
def installed(*values: Path, tokens: str | None = None) -> Iterator[Release]:
    """The chart, installed with the local images into a fresh namespace that enforces Pod
    Security "restricted", reached through its Services; uninstalled, namespace deleted after.
    ``tokens``: the API token entries (one per line, ``TENANT:TOKEN`` or an operator's bare
    token, which comes first), put in a Secret of the test's own as a user would; default: the
    chart generates an operator token."""
    helm = kube.helm_binary()
    assert helm
    namespace = f"crucible-e2e-{secrets.token_hex(3)}"
    kube.kubectl("create", "namespace", namespace)
    kube.kubectl(
        "label", "namespace", namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
    )  # fmt: skip
    values_args = [arg for path in values for arg in ("--values", str(path))]
    if tokens is not None:
        kube.kubectl(
            "create", "secret", "generic", OWN_TOKENS_SECRET, "--namespace", namespace,
            f"--from-literal=tokens={tokens}",
        )  # fmt: skip
        values_args += ["--set", f"dispatcher.auth.existingSecret={OWN_TOKENS_SECRET}"]
    try:
        install = kube.run(
            helm, "install", RELEASE, str(kube.CHART), "--namespace", namespace, *values_args,
            "--wait", "--timeout", f"{INSTALL_TIMEOUT}s",
            timeout=INSTALL_TIMEOUT + 30, check=False,
        )  # fmt: skip
        if install.returncode != 0:
            details = kube.diagnose(namespace)
            pytest.fail(f"helm install failed: {install.stderr}\n{details}", pytrace=False)
        tokens_secret = f"{RELEASE}-api-tokens" if tokens is None else OWN_TOKENS_SECRET
        token = kube.secret_value(namespace, tokens_secret, "tokens").split()[0]
        password = kube.secret_value(namespace, f"{RELEASE}-redis", "dispatcher-password")
        with (
            kube.service_endpoint(namespace, f"{RELEASE}-dispatcher", 8080) as (host, port),
            kube.service_endpoint(namespace, f"{RELEASE}-redis", 6379) as (rhost, rport),
        ):
            client = redis.Redis(
                host=rhost, port=rport, username="dispatcher", password=password,
                decode_responses=True,
            )  # fmt: skip
            try:
                api = Dispatcher(f"http://{host}:{port}", token)
                yield Release(namespace, RELEASE, api, client)
            finally:
                client.close()
    finally:
        kube.run(helm, "uninstall", RELEASE, "--namespace", namespace, "--wait", check=False)
        kube.kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s", check=False)


@pytest.fixture(scope="session")
def release(cluster_available: None) -> Iterator[Release]:
    """The release most tests share: native sidecars (the chart's default)."""
    with installed(VALUES) as installed_release:
        yield installed_release


@pytest.fixture
def api(release: Release) -> Dispatcher:
    return release.api
