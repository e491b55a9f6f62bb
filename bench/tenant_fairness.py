"""Does one tenant's burst delay another tenant's evaluation? Local backend, real Redis.

    python bench/tenant_fairness.py [--count 10] [--burst 1000] [--concurrency 2]

Runs ``crucible serve`` (local backend, ``--concurrency`` worker slots, the default tenant
limits: 100 evaluations not yet ended, 20 submissions/s with a burst of 100) with two tenants,
``acme`` and ``globex``. For ``--count`` rounds, globex submits one ``print(1)`` evaluation and
waits for its verified end over SSE, measured from the POST to that end:

- alone;
- while acme fires ``--burst`` submissions at once from another process (the same
  ``print(1)``, or ``--burst-code``), ``--head-start`` seconds before globex submits. acme's
  burst is refused past its limits (429) and what it gets in waits in the local queue, which
  serves tenants round robin. A worker slot is not taken from a running evaluation, so with
  long-running burst code globex also waits for the shortest of those to end.

Prints p50/max of both and what the burst adds (target: under a second), how many of acme's
submissions were accepted and refused, and writes ``bench/results/tenant_fairness.json``.
Nothing is asserted.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

import crucible

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.support import local_serve, stats

RESULTS = Path(__file__).resolve().parent / "results" / "tenant_fairness.json"
ACME = {"Authorization": "Bearer acme-bench-token-0123456789"}
GLOBEX = {"Authorization": "Bearer globex-bench-token-0123456789"}
TOKENS = "acme:acme-bench-token-0123456789,globex:globex-bench-token-0123456789"


async def one_end(session: aiohttp.ClientSession, base: str, eval_id: str) -> float:
    """POST one evaluation as globex; seconds until its verified end arrives over SSE."""
    started = time.monotonic()
    body = {"eval_id": eval_id, "code": "print(1)"}
    async with session.post(f"{base}/v1/evaluations", json=body, headers=GLOBEX) as response:
        assert response.status == 201, await response.text()
    async with session.get(f"{base}/v1/evaluations/{eval_id}/events", headers=GLOBEX) as stream:
        async for line in stream.content:
            if line.startswith(b"data: ") and json.loads(line[6:]).get("verified") is True:
                return time.monotonic() - started
    raise RuntimeError(f"{eval_id}: the stream ended without a verified end")


def burst_process(base: str, round_no: int, size: int, code: str) -> subprocess.Popen[bytes]:
    """acme's burst, fired from a process of its own: its client's CPU is not in the loop
    that times globex. Prints its statuses as JSON."""
    script = (
        "import asyncio, json, sys, aiohttp\n"
        "base, round_no, size, code, token = sys.argv[1:6]\n"
        "async def main():\n"
        "    statuses = {}\n"
        "    headers = {'Authorization': 'Bearer ' + token}\n"
        "    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:\n"
        "        async def one(i):\n"
        "            body = {'eval_id': f'burst-{round_no}-{i}', 'code': code}\n"
        "            url = base + '/v1/evaluations'\n"
        "            async with s.post(url, json=body, headers=headers) as r:\n"
        "                statuses[r.status] = statuses.get(r.status, 0) + 1\n"
        "        await asyncio.gather(*(one(i) for i in range(int(size))))\n"
        "    print(json.dumps(statuses))\n"
        "asyncio.run(main())\n"
    )
    token = ACME["Authorization"].removeprefix("Bearer ")
    command = [sys.executable, "-c", script, base, str(round_no), str(size), code, token]
    return subprocess.Popen(command, stdout=subprocess.PIPE)


async def drain(session: aiohttp.ClientSession, base: str) -> None:
    """Cancel what is left of acme's burst, so each round starts from an idle backend."""
    while True:
        async with session.get(f"{base}/v1/evaluations?limit=500", headers=ACME) as response:
            items = (await response.json())["items"]
        open_ids = [i["eval_id"] for i in items if i["status"] not in crucible.TERMINAL]
        if not open_ids:
            return
        for eval_id in open_ids:
            async with session.delete(f"{base}/v1/evaluations/{eval_id}", headers=ACME):
                pass
        await asyncio.sleep(0.2)


async def run(args: argparse.Namespace, base: str) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await one_end(session, base, "warm-up")
        alone = [await one_end(session, base, f"alone-{i}") for i in range(args.count)]
        during: list[float] = []
        totals: dict[int, int] = {}
        for i in range(args.count):
            fired = burst_process(base, i, args.burst, args.burst_code)
            await asyncio.sleep(args.head_start)  # the burst's requests are on their way
            during.append(await one_end(session, base, f"during-{i}"))
            out, _ = await asyncio.to_thread(fired.communicate)
            for status, n in json.loads(out).items():
                totals[int(status)] = totals.get(int(status), 0) + n
            await drain(session, base)
    return {"alone": alone, "during": during, "burst_statuses": totals}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--burst-code", default="print(1)", help="what acme's evaluations run")
    parser.add_argument("--head-start", type=float, default=0.3, help="seconds the burst leads")
    args = parser.parse_args()
    with local_serve.serving(
        CRUCIBLE_API_TOKENS=TOKENS,
        CRUCIBLE_LOCAL__CONCURRENCY=str(args.concurrency),
        CRUCIBLE_LOCAL__QUEUE_SIZE=str(args.burst + 10),
    ) as (base, _, _):
        found = asyncio.run(run(args, base))
    alone, during = stats.summary(found["alone"]), stats.summary(found["during"])
    result = {
        "benchmark": "tenant_fairness",
        "rounds": args.count,
        "burst": args.burst,
        "concurrency": args.concurrency,
        "cpus": os.cpu_count(),
        "alone_ms": alone,
        "during_burst_ms": during,
        "added_p50_ms": round(during["p50_ms"] - alone["p50_ms"], 1),
        "added_max_ms": round(during["max_ms"] - alone["max_ms"], 1),
        "burst_statuses": found["burst_statuses"],
        "target_added_ms": 1000,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"globex's evaluation, POST to verified end: alone p50 {alone['p50_ms']} ms, max "
        f"{alone['max_ms']} ms; during acme's burst of {args.burst}: p50 {during['p50_ms']} ms, "
        f"max {during['max_ms']} ms; the burst adds {result['added_p50_ms']} ms at p50, "
        f"{result['added_max_ms']} ms at max (target < 1000 ms). acme's submissions by status, "
        f"all rounds: {found['burst_statuses']} -> {RESULTS}"
    )


if __name__ == "__main__":
    main()
