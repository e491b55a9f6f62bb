"""The plain sidecar mode (clusters older than 1.29) through a release of its own.

There the sidecar starts with user code, not before it, so the reconciler's verified verdict can
reach the status store before the sidecar's events: the record must still get the output.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e import kube
from tests.e2e.conftest import VALUES, Release, installed


@pytest.fixture(scope="module")
def plain_release(cluster_available: None) -> Iterator[Release]:
    with installed(VALUES, VALUES.with_name("plain-sidecar-values.yaml")) as release:
        yield release


def test_plain_sidecar_reports_output_and_exits(plain_release: Release) -> None:
    record = plain_release.api.submit_ok(code="print('plain says hi')")
    done = plain_release.api.wait_verified(record["eval_id"])
    assert done["status"] == "completed", done
    assert done["exit_code"] == 0
    outcome, job = kube.wait_for_job(plain_release.namespace, done["job_name"], timeout=120)
    assert outcome == "succeeded", job["status"]
    assert plain_release.api.output(record["eval_id"])["stdout"] == "plain says hi\n"
    # The record, not only /output, carries the tail once the sidecar has published.
    final = plain_release.api.wait(
        record["eval_id"], lambda r: r["output"] is not None, 30, "carrying its output"
    )
    assert "plain says hi" in final["output"]
