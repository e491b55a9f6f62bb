"""The backend and its reconciler with the real client, a real Redis and a fake API server.

The fake (kube_fake_api) plays the API server and, through the tests, the kubelet; everything
of crucible's runs for real: the kubernetes client, the watch threads, the publish script.
"""

import asyncio
import datetime
import pathlib
from typing import Any

import pytest
import redis.asyncio

from dispatcher import errors
from dispatcher.api import ingest
from dispatcher.backends.kube import config as kube_config
from dispatcher.backends.kube.backend import KubernetesBackend
from dispatcher.backends.kube.jobs import names
from dispatcher.backends.kube.watch import cancels, reconciler
from tests.redis_mode import SPACE
from tests.unit.kube import kube_samples
from tests.unit.kube.backend_harness import Make, all_events, launched, submission, wait_event
from tests.unit.kube.kube_fake_api import FakeKubeAPI
from wire import keys, limits


def terminated(exit_code: int, reason: str) -> dict[str, Any]:
    return {
        "phase": "Failed" if exit_code else "Succeeded",
        "containerStatuses": [
            {
                "name": "evaluation",
                "ready": False,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": reason,
                        "startedAt": "2026-01-01T00:00:01Z",
                        "finishedAt": "2026-01-01T00:00:03Z",
                    }
                },
            }
        ],
    }


def waiting(reason: str) -> dict[str, Any]:
    return {
        "phase": "Pending",
        "containerStatuses": [
            {"name": "evaluation", "ready": False, "state": {"waiting": {"reason": reason}}}
        ],
    }


async def test_submit_creates_the_instrumented_job_and_publishes_scheduled(
    make_backend: Make, fake_api: FakeKubeAPI, redis_client: redis.asyncio.Redis
) -> None:
    backend = await make_backend()
    scheduled = await backend.submit(submission())
    assert scheduled.job_name == names.job_name("eval-1")
    queued = await wait_event(redis_client, "eval-1", lambda e: e.type == "queued")
    assert (queued.position, queued.source) == (1, "dispatcher")
    event = await wait_event(redis_client, "eval-1", lambda e: e.type == "scheduled")
    job = fake_api.objects["jobs"][scheduled.job_name]
    assert job["metadata"]["namespace"] == "evals"
    assert job["metadata"]["labels"][names.LABEL_EVAL_ID] == "eval-1"
    main = job["spec"]["template"]["spec"]["containers"][0]
    assert main["command"][-4:] == ["--", "python", "-c", "print('hi')"]
    assert event.job_name == scheduled.job_name
    assert event.source == "dispatcher"


async def test_submitting_the_same_evaluation_again_is_idempotent(
    make_backend: Make, fake_api: FakeKubeAPI, redis_client: redis.asyncio.Redis
) -> None:
    backend = await make_backend()
    first = await backend.submit(submission())
    again = await backend.submit(submission())
    assert first == again
    await wait_event(redis_client, "eval-1", lambda e: e.type == "scheduled")
    await backend.submit(submission())
    await asyncio.sleep(0.2)  # an admitter that wrongly took it again would create by now
    assert len(fake_api.objects["jobs"]) == 1
    scheduled = [e for e in await all_events(redis_client, "eval-1") if e.type == "scheduled"]
    assert len(scheduled) == 1


@pytest.mark.parametrize(
    ("exit_code", "reason", "want_type", "want_reason"),
    [
        # No sidecar reported here: the verdict says so where the kubelet gives no reason.
        (0, "Completed", "completed", reconciler.NO_REPORT_REASON),
        (137, "OOMKilled", "failed", "OOMKilled"),
        (3, "Error", "failed", reconciler.NO_REPORT_REASON),
    ],
)
async def test_verified_verdict_is_published_when_the_main_container_terminates(
    make_backend: Make,
    fake_api: FakeKubeAPI,
    redis_client: redis.asyncio.Redis,
    exit_code: int,
    reason: str,
    want_type: str,
    want_reason: str | None,
) -> None:
    backend = await make_backend()
    job = await launched(backend, fake_api, redis_client)
    await fake_api.put_pod(job, {"phase": "Running"})
    await fake_api.put_pod(job, terminated(exit_code, reason))
    verdict = await wait_event(redis_client, "eval-1", lambda e: e.terminal)
    assert (verdict.type, verdict.reason, verdict.exit_code) == (want_type, want_reason, exit_code)
    assert verdict.verified is True
    assert verdict.source == "dispatcher"
    assert verdict.duration_seconds == 2.0


async def test_image_pull_failure_is_pending_then_error_and_the_job_is_deleted(
    make_backend: Make, fake_api: FakeKubeAPI, redis_client: redis.asyncio.Redis
) -> None:
    backend = await make_backend(pending_grace_seconds=1.0)
    job = await launched(backend, fake_api, redis_client)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    await fake_api.put_pod(job, waiting("ImagePullBackOff"), creationTimestamp=now)
    pending = await wait_event(redis_client, "eval-1", lambda e: e.type == "pending")
    assert pending.reason == "ImagePullBackOff"
    error = await wait_event(redis_client, "eval-1", lambda e: e.type == "error")
    assert error.reason is not None
    assert error.reason.startswith("ImagePullBackOff")
    await fake_api.wait_for(lambda: job["metadata"]["name"] not in fake_api.objects["jobs"])


async def test_cancel_deletes_the_job_and_the_reconciler_confirms_cancelled(
    make_backend: Make, fake_api: FakeKubeAPI, redis_client: redis.asyncio.Redis
) -> None:
    backend = await make_backend()
    job = await launched(backend, fake_api, redis_client)
    assert await backend.cancel("eval-1") is True
    assert job["metadata"]["name"] not in fake_api.objects["jobs"]
    verdict = await wait_event(redis_client, "eval-1", lambda e: e.terminal)
    assert (verdict.type, verdict.verified) == ("cancelled", True)
    assert await backend.cancel("eval-1") is False  # nothing left to stop


async def test_a_cancel_before_the_submit_creates_no_job(
    make_backend: Make, fake_api: FakeKubeAPI
) -> None:
    backend = await make_backend()
    assert await backend.cancel("eval-1") is False
    await backend.submit(submission())
    await asyncio.sleep(0.2)
    assert fake_api.objects["jobs"] == {}


async def test_a_cancel_racing_the_create_leaves_no_job(
    make_backend: Make, fake_api: FakeKubeAPI, redis_client: redis.asyncio.Redis
) -> None:
    backend = await make_backend()

    created = asyncio.Event()

    async def cancel_while_creating(job: dict[str, Any]) -> None:
        # Another replica's cancel lands between our tombstone check and our create.
        await cancels.remember(redis_client, "eval-1", 60)
        created.set()

    fake_api.on_create = cancel_while_creating
    await backend.submit(submission())
    async with asyncio.timeout(10):
        await created.wait()
    await fake_api.wait_for(lambda: fake_api.objects["jobs"] == {})
    await asyncio.sleep(0.2)
    assert fake_api.objects["jobs"] == {}
    assert not [e for e in await all_events(redis_client, "eval-1") if e.type == "scheduled"]


async def test_a_job_deleted_by_someone_else_is_an_error(
    make_backend: Make, fake_api: FakeKubeAPI, redis_client: redis.asyncio.Redis
) -> None:
    backend = await make_backend()
    job = await launched(backend, fake_api, redis_client)
    await fake_api.remove("jobs", job["metadata"]["name"])
    verdict = await wait_event(redis_client, "eval-1", lambda e: e.terminal)
    assert verdict.type == "error"
    assert verdict.reason is not None
    assert verdict.reason.startswith("JobDeleted")


async def test_watches_resume_after_410_gone_by_listing_again(
    make_backend: Make, fake_api: FakeKubeAPI, redis_client: redis.asyncio.Redis
) -> None:
    backend = await make_backend()
    await fake_api.wait_for(lambda: all(fake_api.open_watches.values()))
    lists_before = dict(fake_api.lists)
    await fake_api.expire_watches()
    await fake_api.wait_for(
        lambda: all(fake_api.lists[k] > lists_before[k] for k in ("jobs", "pods"))
    )
    await fake_api.put_pod(
        await launched(backend, fake_api, redis_client), terminated(0, "Completed")
    )
    verdict = await wait_event(redis_client, "eval-1", lambda e: e.terminal)
    assert verdict.type == "completed"


async def test_orphan_jobs_without_a_record_are_deleted_and_others_kept(
    make_backend: Make, fake_api: FakeKubeAPI, redis_client: redis.asyncio.Redis
) -> None:
    for eval_id in ("orphan", "known"):
        manifest = kube_samples_manifest(eval_id)
        manifest["metadata"]["creationTimestamp"] = "2020-01-01T00:00:00Z"
        await fake_api.put("jobs", manifest)
    await redis_client.set(SPACE.record("known"), "stand-in for the record hash")
    await redis_client.set(keys.EPOCH, "1")  # Redis kept its data: no record means an orphan
    await make_backend()
    await fake_api.wait_for(lambda: names.job_name("orphan") not in fake_api.objects["jobs"])
    assert names.job_name("known") in fake_api.objects["jobs"]


def kube_samples_manifest(eval_id: str) -> dict[str, Any]:
    from dispatcher.backends.kube import backend
    from dispatcher.backends.kube.jobs import templates

    config = kube_config.KubernetesConfig(namespace="evals")
    template = templates.load(str(kube_samples.CHART_TEMPLATE))
    return backend.manifest(template, submission(eval_id), config, now=0.0)


async def test_a_job_the_api_server_refuses_for_good_ends_the_evaluation_as_error(
    make_backend: Make, fake_api: FakeKubeAPI, redis_client: redis.asyncio.Redis
) -> None:
    backend = await make_backend()
    fake_api.fail_with = (422, {"kind": "Status", "code": 422, "message": "invalid: " * 500})
    await backend.submit(submission())
    error = await wait_event(redis_client, "eval-1", lambda e: e.terminal)
    assert error.type == "error"
    assert error.reason is not None
    assert error.reason.startswith("the Job could not be created: ")
    assert len(error.reason) <= limits.REASON_LIMIT_CHARS
    assert fake_api.objects["jobs"] == {}


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (403, 'jobs.batch "x" is forbidden: exceeded quota: evals, requested: count/jobs.batch=1'),
        (500, "etcd down " * 500),
    ],
)
async def test_a_job_the_api_server_refuses_for_now_is_created_when_it_takes_it(
    make_backend: Make,
    fake_api: FakeKubeAPI,
    redis_client: redis.asyncio.Redis,
    status: int,
    message: str,
) -> None:
    backend = await make_backend(admission_tick_seconds=0.1)
    fake_api.fail_with = (status, {"kind": "Status", "code": status, "message": message})
    scheduled = await backend.submit(submission())
    await asyncio.sleep(0.5)  # a few refused attempts
    assert fake_api.objects["jobs"] == {}
    fake_api.fail_with = None
    await wait_event(redis_client, "eval-1", lambda e: e.type == "scheduled")
    assert scheduled.job_name in fake_api.objects["jobs"]
    assert not [e for e in await all_events(redis_client, "eval-1") if e.terminal]


# The fake API server stops while the backend's client threads reconnect to it; a connection
# aiohttp accepts during that shutdown can be left to the garbage collector, whose
# ResourceWarning lands in whichever test runs then (about 1 run in 6, on main too).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_an_unreachable_api_server_queues_and_is_not_ready(
    make_backend: Make, fake_api: FakeKubeAPI, redis_client: redis.asyncio.Redis
) -> None:
    backend = await make_backend(api_timeout_seconds=2.0)
    assert await backend.ready() is True
    await fake_api.stop()
    assert await backend.ready() is False
    await backend.submit(submission())  # nothing is lost: it waits in the queue
    queued = await wait_event(redis_client, "eval-1", lambda e: e.type == "queued")
    assert queued.position == 1


async def test_a_broken_template_stops_the_start(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(kube_samples.CHART_TEMPLATE.read_text().replace("kind: Job", "kind: Pod"))
    config = kube_config.KubernetesConfig(job_template_path=str(path))
    link = ingest.SidecarLink(url="http://crucible:8080", key=b"test-key")
    backend = KubernetesBackend(config, redis_client=None, publisher=None, link=link)  # type: ignore[arg-type]
    with pytest.raises(errors.TemplateError, match="not a Job"):
        await backend.start()


async def test_plain_mode_job_is_deleted_when_the_sidecar_outlives_main(
    make_backend: Make, fake_api: FakeKubeAPI, redis_client: redis.asyncio.Redis
) -> None:
    backend = await make_backend(sidecar_mode="plain", plain_sidecar_linger_seconds=0.0)
    job = await launched(backend, fake_api, redis_client)
    status = terminated(137, "OOMKilled") | {"phase": "Running"}  # the sidecar still runs
    await fake_api.put_pod(job, status)
    verdict = await wait_event(redis_client, "eval-1", lambda e: e.terminal)
    assert verdict.reason == "OOMKilled"
    await fake_api.wait_for(lambda: job["metadata"]["name"] not in fake_api.objects["jobs"])
