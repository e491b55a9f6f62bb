"""The API against its own OpenAPI document: schemathesis, every check, on a live dispatcher.

The dispatcher is the real one (local backend, real Redis, a bearer token) behind a real port;
``schemathesis run`` fuzzes it from ``/openapi.json`` in a process of its own: examples,
coverage (boundaries and just past them), fuzzing, and stateful sequences built from the
``Location`` of created evaluations. Nothing it tries may break a check: no 5xx, a 4xx for every
request outside the schema, acceptance of every request inside it, responses as documented.

The local backend only queues (concurrency 0): fuzzed code is never run. So that event streams
of queued evaluations end, as those of running ones do, a client cancels what has been queued
for a second.
"""

import asyncio
import contextlib
import json
import os
import pathlib
import sys
import time

import pytest

from tests import redis_mode
from tests.integration.dispatcher.conftest import AppClient, ClientFactory

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CASES_MIN = 1000
# Fixed, so that a failure reproduces; CRUCIBLE_FUZZ_SEED explores others.
SEED = os.environ.get("CRUCIBLE_FUZZ_SEED", "20261205")
SCHEMATHESIS = pathlib.Path(sys.executable).with_name("schemathesis")
QUEUED_SECONDS = 1.0
# schemathesis warnings that mean a part of the schema went untested or was misread.
BLIND_SPOTS = ("unsupported_regex", "validation_mismatch", "missing_deserializer")

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
async def live_api(local_api: ClientFactory) -> AppClient:
    overrides = {"api_tokens": [TOKEN], "sse_verify_wait_seconds": 0.5}
    return await local_api(overrides, concurrency=0, queue_size=100_000)


async def cancel_what_waits(api: AppClient) -> None:
    """Stand in for the workers: an evaluation queued for a second is cancelled, which ends it
    (verified) and so ends its event streams."""
    while True:
        page = await api.get("/v1/evaluations?status=accepted&limit=500", headers=AUTH)
        for item in (await page.json())["items"]:
            if time.time() - item["created_at"] > QUEUED_SECONDS:
                await api.post(f"/v1/evaluations/{item['eval_id']}/cancel", headers=AUTH)
        await asyncio.sleep(0.2)


# On a Redis Cluster the API is the same but for the global stream's position, whose spelled
# out pattern schemathesis's coverage phase does not follow (it sends "0" as if valid).
@redis_mode.one_server_only
async def test_schemathesis_finds_nothing_with_every_check(
    live_api: AppClient, tmp_path: pathlib.Path
) -> None:
    assert SCHEMATHESIS.exists(), "schemathesis is in the test extra: pip install -e '.[test]'"
    report = tmp_path / "schemathesis.json"
    command = [
        str(SCHEMATHESIS), "run", str(live_api.make_url("/openapi.json")),
        "--checks", "all",
        # DELETE is the original design's cancel, deprecated: it keeps the record, which the
        # use-after-free check would take for a failed removal. POST .../cancel is fuzzed.
        "--exclude-deprecated",
        "--header", f"Authorization: Bearer {TOKEN}",
        "--seed", SEED,
        "--workers", "1",  # threads race in CPython 3.11's ast.parse (hypothesis calls it)
        "--request-timeout", "10",
        "--generation-database", "none",
        "--no-color",
        "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    janitor = asyncio.create_task(cancel_what_waits(live_api))
    try:
        fuzzer = await asyncio.create_subprocess_exec(
            *command,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await fuzzer.communicate()
    finally:
        janitor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await janitor
    text = output.decode(errors="replace")
    assert fuzzer.returncode == 0, text
    result = json.loads(report.read_text())
    cases = result["test_cases"]["generated"]
    print(f"schemathesis: {cases} test cases in {result['running_time']:.0f}s, seed {SEED}")
    assert result["failures"] == [], text
    assert result["errors"] == [], text
    assert cases >= CASES_MIN, text
    blind = {name: result["warnings"][name] for name in BLIND_SPOTS if result["warnings"][name]}
    assert not blind, text
    # The sidecars' endpoints take a credential per evaluation, which the fuzzer cannot have:
    # they are tested for refusing everything else.
    assert sorted(result["warnings"]["missing_auth"]) == [
        "GET /ingest/v1/evaluations/{eval_id}/code",
        "POST /ingest/v1/evaluations/{eval_id}/events",
    ]
