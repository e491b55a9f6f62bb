"""Dispatcher memory while many clients list and fetch large outputs. Local backend, real Redis.

    python bench/api_memory.py [--evaluations 10] [--clients 50] [--seconds 20]

Runs ``crucible serve`` (local backend, concurrency 0: nothing runs) against a Redis of its
own, creates ``--evaluations`` records through the API and gives each 8 MiB of stdout as a
sidecar would (output events of 64 KiB through the dispatcher's own publish script). Then
``--clients`` clients, for ``--seconds``, each loop: list 500 records, fetch one evaluation's
whole output (JSON), fetch one stream as text. The dispatcher's resident memory (VmRSS) is
sampled every 50 ms. Prints it idle, at peak and what the load added, plus the bytes served,
and writes ``bench/results/api_memory.json``. Target: peak under 256 MiB. Nothing is asserted.
"""

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.support import local_serve
from dispatcher.store.publish import Publisher
from wire import events

RESULTS = Path(__file__).resolve().parent / "results" / "api_memory.json"
OUTPUT_BYTES = 8 * 1024 * 1024
CHUNK_BYTES = 64 * 1024


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def output_event(eval_id: str, offset: int, data: str) -> events.Event:
    return events.Event(
        eval_id=eval_id, type="output", source="sidecar", stream="stdout", offset=offset, data=data
    )


async def seed(session: aiohttp.ClientSession, base: str, redis_url: str, count: int) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    publisher = Publisher(client)
    line = ("x" * 99 + "\n") * (CHUNK_BYTES // 100)
    for i in range(count):
        body = {"eval_id": f"big-{i}", "code": "print('big')"}
        async with session.post(f"{base}/v1/evaluations", json=body) as response:
            assert response.status == 201, await response.text()
        batch = [
            (output_event(f"big-{i}", offset, line), f"o{offset}")
            for offset in range(0, OUTPUT_BYTES, len(line))
        ]
        for first in range(0, len(batch), 16):
            await publisher.publish_many(batch[first : first + 16])
    await client.aclose()


async def load(
    session: aiohttp.ClientSession, base: str, args: argparse.Namespace, pid: int
) -> dict[str, Any]:
    stop = time.monotonic() + args.seconds
    served = {"bytes": 0, "requests": 0}
    peak = 0.0

    async def client() -> None:
        while time.monotonic() < stop:
            which = f"big-{random.randrange(args.evaluations)}"
            for path in (
                "/v1/evaluations?limit=500",
                f"/v1/evaluations/{which}/output",
                f"/v1/evaluations/{which}/output?stream=stdout",
            ):
                async with session.get(base + path) as response:
                    assert response.status == 200, await response.text()
                    async for chunk in response.content.iter_chunked(256 * 1024):
                        served["bytes"] += len(chunk)
                served["requests"] += 1

    async def sample() -> None:
        nonlocal peak
        while time.monotonic() < stop:
            peak = max(peak, rss_mib(pid))
            await asyncio.sleep(0.05)

    await asyncio.gather(sample(), *(client() for _ in range(args.clients)))
    return {"peak_rss_mib": round(peak, 1), **served}


async def run(args: argparse.Namespace, base: str, redis_url: str, server: Any) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await seed(session, base, redis_url, args.evaluations)
        await asyncio.sleep(1)
        idle = rss_mib(server.pid)
        found = await load(session, base, args, server.pid)
    return {"idle_rss_mib": round(idle, 1), **found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evaluations", type=int, default=10)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    with local_serve.serving(
        CRUCIBLE_LOCAL__CONCURRENCY="0", CRUCIBLE_LOCAL__QUEUE_SIZE="1000"
    ) as (
        base,
        server,
        redis_url,
    ):
        found = asyncio.run(run(args, base, redis_url, server))
    result = {
        "benchmark": "api_memory",
        "evaluations": args.evaluations,
        "output_bytes_each": OUTPUT_BYTES,
        "clients": args.clients,
        "seconds": args.seconds,
        **found,
        "added_mib": round(found["peak_rss_mib"] - found["idle_rss_mib"], 1),
        "served_mib": round(found["bytes"] / 2**20, 1),
        "target_peak_rss_mib": 256,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"dispatcher RSS: idle {result['idle_rss_mib']} MiB, peak {result['peak_rss_mib']} MiB "
        f"(+{result['added_mib']} MiB; target < 256 MiB) while {args.clients} clients listed and "
        f"fetched the 8 MiB outputs of {args.evaluations} evaluations for {args.seconds:g} s: "
        f"{result['requests']} requests, {result['served_mib']} MiB served -> {RESULTS}"
    )


if __name__ == "__main__":
    main()
