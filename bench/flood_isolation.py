"""Does one evaluation flooding output delay another's end? Local backend, real Redis.

    python bench/flood_isolation.py [--count 40] [--flooders 3]

Runs ``crucible serve`` (local backend, ``flooders + 1`` worker slots) as its own process and
measures, for ``--count`` quiet evaluations one after another, the time from the child's last
act (it prints ``time.time()``) to the first terminal event at an SSE client, as
``bench/latency.py`` does. Three times, in the same run:

- alone;
- while ``--flooders`` other evaluations each write 64 MiB as short lines to /dev/null,
  restarted as soon as they end: the same processes and CPU as a flood, and no output (on two
  cores that CPU alone delays everyone: this is the baseline the flood is judged against);
- while they print those 64 MiB to stdout instead, as fast as they can: the flood. What each
  flooder can push is capped where it leaves (8 MiB per stream on the channel, the byte
  budget at the dispatcher).

The target: the flood adds under 100 ms at p99 to a quiet evaluation's end. Prints p50/p99 of
the three phases and what the flood adds over the busy baseline, and writes them to
``bench/results/flood_isolation.json``. Nothing is asserted.
"""

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import latency

from bench.support import local_serve, stats
from dispatcher.embedded_redis import EmbeddedRedis

RESULTS = Path(__file__).resolve().parent / "results" / "flood_isolation.json"
FLOOD_CODE = (
    "import sys\nline = b'x' * 79 + b'\\n'\nw = {target}.write\n"
    "for _ in range(64 * 1024 * 1024 // 80):\n    w(line)\n"
)
FLOOD_TARGETS = {"busy": "open('/dev/null', 'wb')", "flood": "sys.stdout.buffer"}


async def quiet_phase(
    session: aiohttp.ClientSession, base: str, subscriber: latency.Subscriber, name: str, n: int
) -> list[float]:
    found = []
    for i in range(n):
        result = await latency.one_evaluation(session, base, subscriber, f"{name}-{i}")
        found.append(result["sse"])
    return found


async def flood_forever(
    session: aiohttp.ClientSession, base: str, name: str, code: str, stop: asyncio.Event
) -> int:
    i = 0
    while not stop.is_set():
        eval_id = f"{name}-{i}"
        i += 1
        body = {"eval_id": eval_id, "code": code, "timeout_seconds": 120}
        async with session.post(f"{base}/v1/evaluations", json=body) as response:
            if response.status != 201:
                raise RuntimeError(f"flood submit: {response.status} {await response.text()}")
        while not stop.is_set():
            async with session.get(f"{base}/v1/evaluations/{eval_id}") as response:
                if (await response.json())["status"] in latency.TERMINAL:
                    break
            await asyncio.sleep(0.2)
    return i


async def run(args: argparse.Namespace, base: str, redis_url: str) -> dict[str, Any]:
    client = redis.asyncio.Redis.from_url(redis_url)
    subscriber = latency.Subscriber(client)
    await subscriber.start()
    prefix = f"flood-bench-{os.getpid()}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
            await latency.one_evaluation(session, base, subscriber, f"{prefix}-warm-up")
            phases = {"alone": await quiet_phase(session, base, subscriber, prefix, args.count)}
            flood_runs = 0
            for phase, target in FLOOD_TARGETS.items():
                stop = asyncio.Event()
                code = FLOOD_CODE.format(target=target)
                floods = [
                    asyncio.create_task(
                        flood_forever(session, base, f"{prefix}-{phase}{j}", code, stop)
                    )
                    for j in range(args.flooders)
                ]
                await asyncio.sleep(1.0)  # the load is on before the first quiet evaluation
                name = f"{prefix}-quiet-{phase}"
                phases[phase] = await quiet_phase(session, base, subscriber, name, args.count)
                stop.set()
                flood_runs += sum(await asyncio.gather(*floods))
    finally:
        await subscriber.stop()
        await client.aclose()
    found = {name: stats.summary(values) for name, values in phases.items()}
    busy, flood = found["busy"], found["flood"]
    return {
        "flooders": args.flooders,
        "load_evaluations": flood_runs,
        **found,
        "flood_added_over_busy_p50_ms": round(flood["p50_ms"] - busy["p50_ms"], 2),
        "flood_added_over_busy_p99_ms": round(flood["p99_ms"] - busy["p99_ms"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--flooders", type=int, default=3)
    args = parser.parse_args()
    with (
        EmbeddedRedis(Path(os.environ.get("TMPDIR", "/tmp")) / f"flood-{os.getpid()}") as redis_,
        local_serve.serve(redis_.url, CRUCIBLE_LOCAL__CONCURRENCY=str(args.flooders + 1)) as (
            base,
            _,
        ),
    ):
        started = time.monotonic()
        result = asyncio.run(run(args, base, redis_.url))
    result["seconds"] = round(time.monotonic() - started, 1)
    result["load_average_1m_after"] = os.getloadavg()[0]
    print(f"flood isolation: {args.flooders} flooders, {result['load_evaluations']} load runs")
    stats.show("quiet evaluation alone: exit -> SSE end", result["alone"])
    stats.show("the same, others busy (no output)", result["busy"])
    stats.show("the same, others flooding output", result["flood"])
    added = (result["flood_added_over_busy_p50_ms"], result["flood_added_over_busy_p99_ms"])
    print(f"  added by the flood over busy: p50 {added[0]} ms, p99 {added[1]} ms")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
