"""Records rebuilt from Jobs after Redis lost its data, on a real Redis and the fake API server."""

import asyncio
from typing import Any

import redis.asyncio

from dispatcher.backends.kube import backend as kube_backend
from dispatcher.backends.kube import config as kube_config
from dispatcher.backends.kube.jobs import templates
from dispatcher.backends.kube.watch import rebuild
from dispatcher.store import publish, records
from dispatcher.store.store import Store
from tests import redis_mode
from tests.unit.kube import kube_samples
from tests.unit.kube.backend_harness import Make, launched, submission, wait_event
from tests.unit.kube.kube_fake_api import FakeKubeAPI
from wire import events, keys


def test_a_job_says_everything_a_record_needs_but_the_request_digest() -> None:
    template = templates.load(str(kube_samples.CHART_TEMPLATE))
    given = submission("acme~r1", labels={"team": "ml"})
    job = kube_backend.manifest(template, given, kube_config.KubernetesConfig(), now=1e9)
    record = rebuild.record_from_job(job)
    assert record is not None
    assert (record.eval_id, record.status, record.job_name) == (
        "acme~r1",
        records.Status.SCHEDULED,
        job["metadata"]["name"],
    )
    assert (record.image, record.command, record.timeout_seconds) == (
        given.image,
        given.command,
        given.timeout_seconds,
    )
    assert (record.resources, record.labels, record.created_at) == (
        given.resources,
        given.labels,
        1e9,
    )
    assert record.request_digest == rebuild.REBUILT_DIGEST
    del job["metadata"]["annotations"]
    assert rebuild.record_from_job(job) is None


def running() -> dict[str, Any]:
    return {
        "phase": "Running",
        "containerStatuses": [
            {"name": "evaluation", "ready": True, "state": {"running": {}}, "restartCount": 0}
        ],
    }


def ended() -> dict[str, Any]:
    state = {"exitCode": 3, "reason": "Error", "startedAt": "2026-01-01T00:00:01Z"}
    state["finishedAt"] = "2026-01-01T00:00:02Z"
    return {
        "phase": "Failed",
        "containerStatuses": [
            {"name": "evaluation", "ready": False, "state": {"terminated": state}}
        ],
    }


# A whole Redis losing its data; on a cluster (FLUSHALL on every master under the consumer's
# blocking reads) it hung once in CI, unexplained: it runs in the one-server pass.
@redis_mode.one_server_only
async def test_after_redis_lost_its_data_the_running_evaluation_ends_with_its_record(
    make_backend: Make, fake_api: FakeKubeAPI, redis_client: redis.asyncio.Redis
) -> None:
    backend = await make_backend(tick_seconds=0.05)
    store = Store(redis_client, ttl_seconds=600)
    given = submission("acme~lost")
    job = await launched(backend, fake_api, redis_client, given)
    await fake_api.put_pod(job, running())
    await redis_client.flushall()  # a Redis restart without persistence
    # The sidecar goes on reporting (it retries its POSTs until the dispatcher takes them).
    said = events.Event(eval_id="acme~lost", type=events.EventType.OUTPUT, source="sidecar")
    await publish.Publisher(redis_client).publish(
        said.model_copy(update={"stream": "stdout", "offset": 0, "data": "still here\n"})
    )
    async with asyncio.timeout(10):
        # Nothing announces a rebuilt record: look for it.
        while (record := await store.get("acme~lost")) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert (record.status, record.job_name, record.image) == (
        records.Status.SCHEDULED,
        job["metadata"]["name"],
        given.image,
    )
    assert await redis_client.zscore(keys.ADMITTED, "acme~lost") is not None  # it still runs
    await fake_api.put_pod(job, ended())
    verdict = await wait_event(redis_client, "acme~lost", lambda e: e.terminal)
    assert (verdict.type, verdict.exit_code, verdict.verified) == ("failed", 3, True)
    final = await store.sync("acme~lost")
    assert (final.status, final.exit_code, final.verified) == (records.Status.FAILED, 3, True)
    assert await redis_client.zscore(keys.ADMITTED, "acme~lost") is None
    assert names_left(fake_api) == [job["metadata"]["name"]]  # rebuilt, not swept as an orphan


def names_left(fake_api: FakeKubeAPI) -> list[str]:
    return list(fake_api.objects["jobs"])
