"""``helm upgrade`` under load, as an operator rolls out a new image: evaluations in flight end
correctly, the generated Secrets and the records survive, and ``helm test`` passes after."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e import kube
from tests.e2e.conftest import INSTALL_TIMEOUT, RELEASE, VALUES, Release, installed

SLOW = "import time\nprint('started', flush=True)\ntime.sleep(20)\nprint('survived')"
NEXT_TAG = "ci-next"  # the same image under a second tag (tests/cluster/images.sh)


@pytest.fixture(scope="module")
def upgraded_release(cluster_available: None) -> Iterator[Release]:
    with installed(VALUES) as release:
        yield release


def _secrets(namespace: str) -> dict[str, str]:
    return {
        name: kube.secret_value(namespace, f"{RELEASE}-{name}", key)
        for name, key in (
            ("api-tokens", "tokens"),
            ("ingest-key", "ingest-key"),
            ("redis", "dispatcher-password"),
        )
    }


SMALL = {"cpu": "200m", "memory": "128Mi"}


def test_an_upgrade_keeps_evaluations_in_flight_records_and_secrets(
    upgraded_release: Release,
) -> None:
    api, namespace = upgraded_release.api, upgraded_release.namespace
    done_before = api.submit_ok(code="print('before')")
    assert api.wait_verified(done_before["eval_id"])["status"] == "completed"
    # Small: the three must fit the 2-CPU node beside two dispatchers and the rollout's surge.
    flying = [api.submit_ok(code=SLOW, resources=SMALL)["eval_id"] for _ in range(3)]
    for eval_id in flying:
        api.wait(eval_id, lambda r: r["status"] == "running", 120, "running")
    secrets_before = _secrets(namespace)

    helm = kube.helm_binary()
    assert helm
    upgrade = kube.run(
        helm, "upgrade", RELEASE, str(kube.CHART), "--namespace", namespace,
        "--values", str(VALUES), "--set", f"image.tag={NEXT_TAG}",
        "--set", "dispatcher.logLevel=DEBUG", "--wait", "--timeout", f"{INSTALL_TIMEOUT}s",
        timeout=INSTALL_TIMEOUT + 30, check=False,
    )  # fmt: skip
    assert upgrade.returncode == 0, upgrade.stderr + kube.diagnose(namespace)
    deployment = kube.kubectl_json("get", "deployment", f"{RELEASE}-dispatcher", "-n", namespace)
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith(f":{NEXT_TAG}"), image

    # The evaluations that ran through the rollout end as they would have, verified.
    for eval_id in flying:
        done = api.wait_verified(eval_id, timeout=180)
        assert (done["status"], done["exit_code"]) == ("completed", 0), done
        assert api.output(eval_id)["stdout"] == "started\nsurvived\n"
    # What was there before is still there: the records and the generated Secrets.
    assert api.get(done_before["eval_id"])["output"] == "before\n"
    assert _secrets(namespace) == secrets_before
    # And the release passes its own test on the new image.
    test = kube.run(
        helm, "test", RELEASE, "--namespace", namespace, "--timeout", "300s",
        timeout=330, check=False,
    )  # fmt: skip
    assert test.returncode == 0, test.stdout + test.stderr + kube.diagnose(namespace)
