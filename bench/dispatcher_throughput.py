"""Accepted submissions per second through the dispatcher's HTTP API.

A real ``crucible serve`` process (local backend with concurrency 0: submissions are validated,
recorded in Redis, published and queued, never run) and a Redis-compatible server of its own;
N concurrent clients in this process POST /v1/evaluations over loopback. The baseline, in the
same run and with the same number of concurrent clients: a raw redis-py loop doing the same
Redis writes a submission makes (create the record, publish ``accepted``, the local backend's
in-flight entry, the job name), with no HTTP and no validation. Prints req/s, the ratio to the
baseline and latency percentiles, and writes bench/results/dispatcher_throughput.json.

    python bench/dispatcher_throughput.py [--requests 3000] [--clients 32] [--rounds 5]
        [--client lean|aiohttp]

Also in the same run: the raw loop's writes in one round trip per submission (what the
dispatcher sends for one), and the HTTP floor: a minimal aiohttp handler (in a process of its
own) that reads the JSON body and makes those writes in one round trip, with no validation,
auth, middleware, consumer or coalescing. It tells what any aiohttp dispatcher can reach here.

A submission is one round trip (local backend): ``create_record.lua`` writes the record with
its job name and the backend's in-flight entry, ``accepted`` is published in the same pipeline
(``backends.reserve``), and the pipelines of requests handled in the same turn of the event loop
go out as one (``store.coalesce``). The consumer acknowledges ``accepted`` without applying it
(it changes nothing but ``last_seq``).

Figures (2026-12, 2 cores shared with other work, load average 1.5-4.6): dispatcher CPU per
request 0.50-0.56 ms (0.91-0.94 ms before, with three round trips); 830-1,940 req/s, which is
0.46-1.11x the raw loop (1,000-2,000/s, the spread comes from the machine's load) and
0.6-0.9x the one-round-trip floor (1,180-2,080/s). The raw loop with one round trip per
submission reaches 2,300-3,500/s.

2026-12-05, idle machine: 1,945/s, 0.77x the raw loop (the median of 5 rounds; the rounds'
ratios 0.73-0.87 in one run: the VM's speed drifts by a third from one second to the next, so
only the median of several rounds means anything). Changes since the figures below, each
checked against redis-py's or pydantic's own result: commands packed in one pass
(``dispatcher.store.packing``: redis-py's packer took 7 % of the CPU, re-joining its buffer at
every argument; 31 -> 19 us for a submission's two scripts), no timer armed for a body that came
with its head, the Spec and Record built from validated values without validating them again.
2026-12-06, idle machine: 2,300/s, 0.85x the raw loop (median of 5, rounds 0.79-0.92), p99 19 ms,
0.42 ms dispatcher CPU per request. Two changes: the load comes from ``bench.support.http_load``
(0.03 ms of CPU per request against aiohttp's client's 0.17 ms, on the same 2 cores as the
server; ``--client aiohttp`` in the same session: 2,071/s, 0.79x, rounds 0.77-0.83), and
``crucible serve`` freezes what it built before serving and collects young garbage 20,000
allocations apart (``dispatcher.serve.tune_gc``: p99 37-48 -> 17-19 ms).
Tried and not kept: uvloop (about 5 % less CPU per request, but the local backend's tests hang
in the event loop's close under it) and hiredis (it speeds the raw loop more than the
dispatcher).

Where the dispatcher's time goes (py-spy, 500 Hz, under this load, before those changes):
redis-py ~29 % (the coalesced pipeline 21 %: socket write ~10 %, packing each argument of the
create and publish scripts ~11 %, reply parsing ~7 %), the consumer group ~11 % (reading and
parsing every ``accepted`` entry it then acknowledges: ~6 % in redis-py's XREADGROUP reply
parsing), aiohttp's request and response handling and the event loop ~35 % (response write ~7 %,
socket reads ~3 %), validation ~7 %, body read and JSON ~5 %, building and encoding the record
~8 %. The socket writes, the packing of ~50 script arguments and aiohttp's per-request machinery
are the floor's too. Before: redis-py 29 % with three round trips, asyncio 26 %, the consumer
applying ``accepted`` ~9 %; before ``dispatcher.store.lua``, SCRIPT EXISTS on every pipeline
took 11 %.
"""

import argparse
import asyncio
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import aiohttp
import yarl

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.support import http_load
from bench.support.baselines import BODY, raw_loop, start_floor, wait_listening
from dispatcher.embedded_redis import EmbeddedRedis, free_port

RESULTS = pathlib.Path(__file__).parent / "results" / "dispatcher_throughput.json"


def start_server(redis_url: str, port: int, work: pathlib.Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CRUCIBLE_REDIS_URL": redis_url,
        "CRUCIBLE_PORT": str(port),
        "CRUCIBLE_LOCAL__CONCURRENCY": "0",
        "CRUCIBLE_LOCAL__QUEUE_SIZE": "1000000",
        "CRUCIBLE_LOCAL__WORK_ROOT": str(work),
        "CRUCIBLE_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "dispatcher"]
    log = open(work / "serve.log", "wb")  # noqa: SIM115 - inherited by the child
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    wait_listening(port, process, (work / "serve.log").read_text)
    return process


async def load(url: str, total: int, clients: int, kind: str = "lean") -> dict[str, Any]:
    """``total`` POSTs of BODY from ``clients`` concurrent keep-alive clients: ``lean``
    (``bench.support.http_load``: prepared bytes, as wrk sends them) or ``aiohttp`` (its
    client, which costs this process about as much CPU per request as a small server)."""
    cpu_before = time.process_time()
    if kind == "lean":
        parsed = yarl.URL(url)
        assert parsed.host is not None
        assert parsed.port is not None
        request = http_load.post_request(parsed.host, parsed.port, parsed.path, BODY)
        elapsed, latencies, codes = await http_load.run(
            parsed.host, parsed.port, request, total, clients
        )
    else:
        elapsed, latencies, codes = await aiohttp_load(url, total, clients)
    cpu = time.process_time() - cpu_before
    statuses: dict[int, int] = {}
    for code in codes:
        statuses[code] = statuses.get(code, 0) + 1
    latencies.sort()
    return {
        "requests": total,
        "clients": clients,
        "seconds": round(elapsed, 3),
        "requests_per_second": round(total / elapsed, 1),
        "latency_ms": {
            "p50": round(statistics.median(latencies) * 1000, 2),
            "p90": round(latencies[int(len(latencies) * 0.90) - 1] * 1000, 2),
            "p99": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
            "max": round(latencies[-1] * 1000, 2),
        },
        "statuses": statuses,
        "client": kind,
        "client_cpu_ms_per_request": round(cpu * 1000 / total, 3),
    }


async def aiohttp_load(url: str, total: int, clients: int) -> tuple[float, list[float], list[int]]:
    latencies: list[float] = []
    codes: list[int] = []
    remaining = iter(range(total))
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            for _ in remaining:
                started = time.perf_counter()
                async with session.post(url, json=BODY) as response:
                    await response.read()
                latencies.append(time.perf_counter() - started)
                codes.append(response.status)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.perf_counter() - started, latencies, codes


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): on a shared machine the
    CPU cost per request is a steadier figure than wall-clock throughput."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_round(
    redis_server: EmbeddedRedis,
    work: pathlib.Path,
    requests: int,
    clients: int,
    warmup: int,
    kind: str,
) -> tuple[dict[str, Any], float]:
    """One dispatcher run (a fresh process, stopped before the baseline so that its consumer
    does not read the baseline's entries), then the raw loop's, each on an empty Redis: a
    dispatcher started on the last one's data would first end its queued submissions."""
    flush(redis_server.url)
    port = free_port()
    server = start_server(redis_server.url, port, work)
    try:
        url = f"http://127.0.0.1:{port}/v1/evaluations"
        asyncio.run(load(url, warmup, clients, kind))
        pids = {"dispatcher": server.pid, "redis": redis_server.pid or 0}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        result = asyncio.run(load(url, requests, clients, kind))
        result["cpu_ms_per_request"] = {
            name: round((cpu_seconds(pid) - before[name]) * 1000 / requests, 3)
            for name, pid in pids.items()
        }
    finally:
        server.terminate()
        server.wait(timeout=60)
    flush(redis_server.url)
    return result, asyncio.run(raw_loop(redis_server.url, requests, clients))


def flush(redis_url: str) -> None:
    import redis

    with redis.Redis.from_url(redis_url) as client:
        client.flushall()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--client",
        choices=["lean", "aiohttp"],
        default="lean",
        help="the load generator (both send the same requests; see bench.support.http_load)",
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="dispatcher and raw-loop runs, alternated"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crucible-bench-") as tmp:
        work = pathlib.Path(tmp)
        with EmbeddedRedis(work / "redis") as redis_server:
            # Alternated, so that drift (the machine's load, Redis's growing data) reaches both.
            rounds = [
                measure_round(
                    redis_server, work, args.requests, args.clients, args.warmup, args.client
                )
                for _ in range(args.rounds)
            ]
            one_trip = asyncio.run(
                raw_loop(redis_server.url, args.requests, args.clients, pipelined=True)
            )
            floor_port = free_port()
            floor_server = start_floor(redis_server.url, floor_port, args.clients)
            try:
                floor_url = f"http://127.0.0.1:{floor_port}/v1/evaluations"
                asyncio.run(load(floor_url, args.warmup, args.clients, args.client))
                floor = asyncio.run(load(floor_url, args.requests, args.clients, args.client))
            finally:
                floor_server.terminate()
                floor_server.wait(timeout=30)
    ratios = sorted(r["requests_per_second"] / b for r, b in rounds)
    # The round whose ratio is the median speaks for the run (latency, CPU).
    result, baseline = next(
        (r, b) for r, b in rounds if r["requests_per_second"] / b == ratios[len(ratios) // 2]
    )
    result["rounds"] = [
        {"requests_per_second": r["requests_per_second"], "raw_loop_per_second": round(b, 1)}
        for r, b in rounds
    ]
    result["ratio_to_raw_loop_range"] = [round(ratios[0], 2), round(ratios[-1], 2)]
    result["baseline_raw_redis_loop_per_second"] = round(baseline, 1)
    result["ratio_to_raw_loop"] = round(result["requests_per_second"] / baseline, 2)
    result["raw_loop_one_round_trip_per_second"] = round(one_trip, 1)
    result["ratio_to_raw_loop_one_round_trip"] = round(result["requests_per_second"] / one_trip, 2)
    result["floor_minimal_aiohttp_per_second"] = floor["requests_per_second"]
    result["floor_ratio_to_raw_loop"] = round(floor["requests_per_second"] / baseline, 2)
    result["ratio_to_floor"] = round(
        result["requests_per_second"] / floor["requests_per_second"], 2
    )
    result.update(
        {
            "benchmark": "dispatcher_throughput",
            "what": "POST /v1/evaluations accepted (validated, recorded, published, queued)",
            "backend": "local, concurrency 0",
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "target_requests_per_second": 1000,
            "target_ratio_to_raw_loop": 0.8,
        }
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    latency, cpu = result["latency_ms"], result["cpu_ms_per_request"]
    print(
        f"{result['requests_per_second']} req/s over {args.requests} requests "
        f"({result['ratio_to_raw_loop']}x the raw redis-py loop's "
        f"{result['baseline_raw_redis_loop_per_second']}/s; the median of {len(rounds)} "
        f"alternated rounds, ratios {ratios[0]:.2f}-{ratios[-1]:.2f}), "
        f"{args.clients} clients; latency p50 {latency['p50']} ms, p99 {latency['p99']} ms; "
        f"CPU per request: dispatcher {cpu['dispatcher']} ms (= "
        f"{1000 / cpu['dispatcher']:.0f} req/s per core), redis {cpu['redis']} ms, "
        f"the load generator ({result['client']}) {result['client_cpu_ms_per_request']} ms; "
        f"statuses {result['statuses']}\n"
        f"the raw loop's writes in one round trip per submission (as the dispatcher sends "
        f"them): {result['raw_loop_one_round_trip_per_second']}/s; the dispatcher is "
        f"{result['ratio_to_raw_loop_one_round_trip']}x that\n"
        f"floor: a minimal aiohttp handler making those writes in one round trip (no "
        f"validation, auth, middleware, consumer or coalescing): "
        f"{result['floor_minimal_aiohttp_per_second']} req/s = "
        f"{result['floor_ratio_to_raw_loop']}x the raw loop; the dispatcher is "
        f"{result['ratio_to_floor']}x that floor -> {RESULTS}"
    )
    return 0 if set(result["statuses"]) == {201} else 1


if __name__ == "__main__":
    sys.exit(main())
