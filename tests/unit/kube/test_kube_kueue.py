"""The hand-off to Kueue (``kueue_queue_name``): suspended, labelled Jobs, and what the
reconciler says while Kueue holds them."""

import copy
from typing import Any

import kubernetes_validate
import pydantic
import pytest
import redis.asyncio

from dispatcher.backends.kube import config as kube_config
from dispatcher.backends.kube.jobs import hardening, instrument, names, templates
from dispatcher.backends.kube.watch import verdicts
from tests.unit.kube import kube_samples
from tests.unit.kube.backend_harness import Make, launched, wait_event
from tests.unit.kube.kube_fake_api import FakeKubeAPI
from wire.events import EventType

CONFIG = kube_config.KubernetesConfig(namespace="evals", kueue_queue_name="crucible-e2e")
TEMPLATE = templates.load(str(kube_samples.CHART_TEMPLATE))
TARGET = instrument.Target(
    eval_id="eval-1",
    job_name=names.job_name("eval-1"),
    timeout_seconds=30.0,
    labels={},
    created_at="2026-01-01T00:00:00Z",
    main_container="evaluation",
)
NOW = 1_767_225_630.0  # 2026-01-01T00:00:30Z
FAR_PAST_GRACE = NOW + 10 * CONFIG.pending_grace_seconds


def rendered(**spec: Any) -> dict[str, Any]:
    job = TEMPLATE.render(kube_samples.values(command=["python", "-c", "print(1)"]))
    job["spec"].update(spec)
    return job


def instrumented(config: kube_config.KubernetesConfig = CONFIG, **spec: Any) -> dict[str, Any]:
    return instrument.instrument(rendered(**spec), TARGET, config)


def test_with_a_queue_the_job_is_created_suspended_and_labelled_for_it() -> None:
    job = instrumented(suspend=False)
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"][instrument.KUEUE_QUEUE_LABEL] == "crucible-e2e"
    # Kueue manages the Job; a labelled pod would be a second workload if pod integration ran.
    assert instrument.KUEUE_QUEUE_LABEL not in job["spec"]["template"]["metadata"]["labels"]
    assert job["spec"]["activeDeadlineSeconds"] == hardening.active_deadline_seconds(30, CONFIG)


def test_without_a_queue_a_templates_suspend_is_dropped_and_no_label_added() -> None:
    job = instrumented(CONFIG.model_copy(update={"kueue_queue_name": None}), suspend=True)
    assert "suspend" not in job["spec"]
    assert instrument.KUEUE_QUEUE_LABEL not in job["metadata"]["labels"]


@pytest.mark.parametrize("version", ["1.29.0", kubernetes_validate.utils.latest_version()])
def test_the_suspended_job_is_valid_for_kubernetes(version: str) -> None:
    kubernetes_validate.validate(instrumented(), version, strict=True)


@pytest.mark.parametrize("name", ["", "Queue", "under_score", "a" * 64, "-dash", "q."])
def test_a_queue_name_must_be_a_dns_label(name: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="kueue_queue_name"):
        kube_config.KubernetesConfig(kueue_queue_name=name)


def job_status(job: dict[str, Any], *, suspended: bool) -> dict[str, Any]:
    job = copy.deepcopy(job)
    job["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    job["spec"]["suspend"] = suspended
    if suspended:
        job["status"] = {
            "conditions": [
                {"type": "Suspended", "status": "True", "reason": "JobSuspended",
                 "message": "Job suspended", "lastTransitionTime": "2026-01-01T00:00:00Z"}
            ]
        }  # fmt: skip
    return job


def test_a_suspended_job_is_pending_with_the_reason_however_long_kueue_holds_it() -> None:
    job = job_status(instrumented(), suspended=True)
    for now in (NOW, FAR_PAST_GRACE):
        verdict = verdicts.decide(job, None, now=now, config=CONFIG)
        assert verdict == verdicts.Verdict(EventType.PENDING, verdicts.SUSPENDED)


def test_an_admitted_job_waiting_for_its_pod_says_nothing() -> None:
    job = job_status(instrumented(), suspended=False)
    assert verdicts.decide(job, None, now=FAR_PAST_GRACE, config=CONFIG) is None


def test_a_suspended_job_cancelled_or_deleted_ends_as_without_kueue() -> None:
    cancelled = verdicts.decide(None, None, now=NOW, config=CONFIG, cancel_requested=True)
    assert cancelled is not None
    assert cancelled.type == EventType.CANCELLED
    deleted = verdicts.decide(None, None, now=NOW, config=CONFIG)
    assert deleted is not None
    assert (deleted.type, deleted.reason) == (
        EventType.ERROR,
        "JobDeleted: the Job was deleted before it finished",
    )


async def test_the_reconciler_reports_the_wait_then_the_verified_end(
    make_backend: Make, fake_api: FakeKubeAPI, redis_client: redis.asyncio.Redis
) -> None:
    backend = await make_backend(kueue_queue_name="crucible-e2e", pending_grace_seconds=0.2)
    job = await launched(backend, fake_api, redis_client)
    assert job["spec"]["suspend"] is True
    pending = await wait_event(redis_client, "eval-1", lambda e: e.type == "pending")
    assert pending.reason == verdicts.SUSPENDED
    # Kueue admits it: unsuspended, the Job controller creates the pod, which runs and ends.
    admitted = copy.deepcopy(fake_api.objects["jobs"][job["metadata"]["name"]])
    admitted["spec"]["suspend"] = False
    await fake_api.put("jobs", admitted)
    await fake_api.put_pod(
        admitted,
        {
            "phase": "Succeeded",
            "containerStatuses": [
                {"name": "evaluation", "ready": False, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                          "startedAt": "2026-01-01T00:00:01Z",
                                          "finishedAt": "2026-01-01T00:00:03Z"}}}
            ],
        },
    )  # fmt: skip
    verdict = await wait_event(redis_client, "eval-1", lambda e: e.terminal)
    assert (verdict.type, verdict.verified) == ("completed", True)
