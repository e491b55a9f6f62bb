"""Latency from an evaluation's end to the clients that wait for it, through the local backend.

    python bench/latency.py [--count 200] [--concurrency 1 4]

For each ``--concurrency`` level, runs ``crucible serve`` (local backend, that many worker
slots) as its own process, as a user would, against an embedded Redis the benchmark starts, and
submits ``--count`` evaluations, as many at a time as there are slots. Each evaluation's last act
is to print ``time.time()``; that printed time is the start of the clock. It is used rather than
the wrapper's exit record because it is the earliest point of the end (before the process
exit, the wrapper's reaping and its EXIT frame) and because it travels inside the terminal
event's output tail, so both clients read it from what they receive. The clock stops when

  (a) the first terminal event arrives at an SSE client of ``/v1/evaluations/{id}/events``,
  (b) its message arrives at a redis-py subscriber of ``evaluation:completed``.

Both clients run in this process, on this machine, so one wall clock serves all. The floor is
the same child run as a bare subprocess followed by one PUBLISH of its output, heard by the
same subscriber: what process exit plus Redis cost with nothing of crucible in between.

Prints p50/p90/p99/max in milliseconds and writes them to ``bench/results/latency.json``.
Nothing is asserted: timings vary by machine and load.

Where the time goes (``bench/latency_hops.py``: this benchmark under ``perf trace``, each hop
from the kernel's timestamps of the same run; 2 cores shared with other work, load 2.5-3.6;
perf adds a little to every hop; ms, p50 / p90):

  ===========================  ===============  ===============
  hop                          before           after
  ===========================  ===============  ===============
  print -> command exit        6.4 / 8.0        7.1 / 10.4
  exit -> wrapper reaps        1.8 / 2.1        1.1 / 1.7
  reaped -> EXIT frame         0.4 / 0.6        0.4 / 1.0
  EXIT frame -> sidecar reads  0.2 / 0.3        0.2 / 0.3
  sidecar read -> POST sent    0.8 / 1.5        0.5 / 0.8
  POST -> dispatcher reads     0.3 / 1.2        0.5 / 1.4
  dispatcher -> script sent    1.2 / 2.0        0.8 / 2.1
  script -> Redis reads        0.3 / 0.8        0.2 / 0.6
  Redis -> PUBLISH written     0.5 / 1.2        0.4 / 0.7
  PUBLISH -> subscriber        0.4 / 1.4        0.3 / 1.4
  exit -> subscriber           6.6 / 10.0       5.1 / 9.6
  ===========================  ===============  ===============

- The largest share is the command's own end: its interpreter shuts down after the print
  (3.5-4 ms alone, more while the wrapper and sidecar handle its output on the same two cores).
  The floor pays it too.
- The wrapper reaped through the signal thread (SIGCHLD -> sigtimedwait -> a byte on the wakeup
  pipe -> the main loop); it now waits on the command's pidfd, so the exit wakes the main loop
  itself, and with a pidfd there is no poll interval left in the loop.
- The sidecar formatted and wrote its "exit received" log line before its POST; the line is
  now written after the POST is on the wire. What is left there is the asyncio hand-off from
  the session task to the publishing task and the event's JSON (about 0.3 ms in process).
  Nothing on the exit path waits on a timer: EXIT makes output due at once (the batch
  interval only holds output while the command runs), the terminal event goes in the same
  POST as the last output, both asyncio transports set TCP_NODELAY.
- The dispatcher's ~1 ms is aiohttp's request handling and redis-py's pipeline (py-spy of an
  ingest load: the handler's own parsing and checks are about 25 us of it); its event loop also
  wakes for the wrapper's SIGCHLD and the consumer's XREADGROUP at the same moment.
- Redis wakes the blocked XREADGROUP reader and replies to the dispatcher before it writes
  the subscriber's message (one event loop turn, 0.4 ms).
"""

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import local_serve, stats
from bench.support.stats import summary
from dispatcher.backends.base import CODE_COMMAND
from dispatcher.backends.local import interpreter
from dispatcher.embedded_redis import EmbeddedRedis
from wire import events

RESULTS = Path(__file__).resolve().parent / "results" / "latency.json"
CHILD_CODE = "import time\nprint(repr(time.time()))"
FLOOR_CHANNEL = "crucible:bench:floor"
TERMINAL = {t.value for t in events.TERMINAL_TYPES}


class Subscriber:
    """One pub/sub connection on ``evaluation:completed`` and the floor's channel."""

    def __init__(self, client: "redis.asyncio.Redis") -> None:
        self._pubsub = client.pubsub()
        self.arrivals: dict[str, asyncio.Future[tuple[float, dict[str, Any]]]] = {}
        self._task: asyncio.Task[None] | None = None

    def expect(self, key: str) -> "asyncio.Future[tuple[float, dict[str, Any]]]":
        return self.arrivals.setdefault(key, asyncio.get_running_loop().create_future())

    async def start(self) -> None:
        await self._pubsub.subscribe("evaluation:completed", FLOOR_CHANNEL)
        self._task = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _listen(self) -> None:
        async for message in self._pubsub.listen():
            now = time.time()
            if message["type"] != "message":
                continue
            payload = json.loads(message["data"])
            future = self.expect(payload["eval_id"])
            if not future.done():
                future.set_result((now, payload))


async def sse_terminal(
    session: aiohttp.ClientSession, base: str, eval_id: str
) -> tuple[float, dict[str, Any]]:
    """Arrival time and body of the first terminal event on the evaluation's SSE stream; the
    body gains ``xadd_at``, Redis's clock when the event was added (the SSE id is its entry
    id, whose first part is milliseconds), and the ``running`` event's ``started_at``."""
    async with session.get(f"{base}/v1/evaluations/{eval_id}/events") as response:
        response.raise_for_status()
        kind, entry_id, started_at = "", "", 0.0
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("id:"):
                entry_id = line.partition(":")[2].strip()
            elif line.startswith("event:"):
                kind = line.partition(":")[2].strip()
            elif line.startswith("data:") and kind == "running":
                started_at = float(json.loads(line.partition(":")[2])["started_at"])
            elif line.startswith("data:") and kind in TERMINAL:
                arrived = time.time()
                event: dict[str, Any] = json.loads(line.partition(":")[2])
                event["xadd_at"] = int(entry_id.partition("-")[0]) / 1000
                event["started_at"] = started_at
                return arrived, event
    raise RuntimeError(f"{eval_id}: stream ended without a terminal event")


async def one_evaluation(
    session: aiohttp.ClientSession, base: str, subscriber: Subscriber, eval_id: str
) -> dict[str, float]:
    heard = subscriber.expect(eval_id)
    submitted = time.time()
    async with session.post(
        f"{base}/v1/evaluations", json={"eval_id": eval_id, "code": CHILD_CODE}
    ) as response:
        if response.status != 201:
            raise RuntimeError(f"submit: {response.status} {await response.text()}")
    sse_at, event = await sse_terminal(session, base, eval_id)
    if event["type"] != "completed":
        raise RuntimeError(f"{eval_id} ended {event['type']}: {event}")
    pubsub_at, payload = await asyncio.wait_for(heard, 30)
    child_exit = float(event["output"].strip())
    assert float(payload["output"].strip()) == child_exit
    # The wrapper's reap of the command: its spawn (wall clock) plus the duration it measured.
    reaped = event["started_at"] + float(event["duration_seconds"])
    return {
        "sse": sse_at - child_exit,
        "pubsub": pubsub_at - child_exit,
        "reaped_to_pubsub": pubsub_at - reaped,
        "submit_to_end": sse_at - submitted,
        # Where the time goes: the sidecar builds the event (its ts), Redis adds it (ms clock).
        "to_event_built": event["ts"] - child_exit,
        "to_xadd": event["xadd_at"] - child_exit,
    }


async def floor(
    client: "redis.asyncio.Redis", subscriber: Subscriber, count: int, python: str
) -> tuple[list[float], list[float]]:
    """A bare child and one PUBLISH of its output: the least any design could do. From the
    child's print, and from its reap (``communicate`` returning). The child is the command a
    ``code`` submission runs, with the ``python`` the local backend gives it."""
    latencies, from_reap = [], []
    for i in range(count):
        key = f"floor-{i}"
        heard = subscriber.expect(key)
        child = await asyncio.create_subprocess_exec(
            python, *CODE_COMMAND[1:], CHILD_CODE, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await child.communicate()
        reaped = time.time()
        await client.publish(FLOOR_CHANNEL, json.dumps({"eval_id": key, "output": out.decode()}))
        arrived, payload = await asyncio.wait_for(heard, 10)
        latencies.append(arrived - float(payload["output"].strip()))
        from_reap.append(arrived - reaped)
    return latencies, from_reap


async def run(count: int, concurrency: int, base: str, redis_url: str) -> dict[str, Any]:
    client = redis.asyncio.Redis.from_url(redis_url)
    subscriber = Subscriber(client)
    await subscriber.start()
    results: list[dict[str, float]] = []
    slots = asyncio.Semaphore(concurrency)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            prefix = f"bench-{os.getpid()}-c{concurrency}"
            await one_evaluation(session, base, subscriber, f"{prefix}-warm-up")  # not counted
            load_before = os.getloadavg()[0]

            async def bounded(i: int) -> None:
                async with slots:
                    eval_id = f"{prefix}-{i}"
                    results.append(await one_evaluation(session, base, subscriber, eval_id))

            started = time.monotonic()
            await asyncio.gather(*(bounded(i) for i in range(count)))
            elapsed = time.monotonic() - started
    finally:
        await subscriber.stop()
        await client.aclose()
    return {
        "concurrency": concurrency,
        "load_average_1m_before": load_before,
        "sse_terminal": summary([r["sse"] for r in results]),
        "pubsub_completed": summary([r["pubsub"] for r in results]),
        "reaped_to_pubsub": summary([r["reaped_to_pubsub"] for r in results]),
        "breakdown_child_exit_to_event_built": summary([r["to_event_built"] for r in results]),
        "breakdown_child_exit_to_xadd_ms_clock": summary([r["to_xadd"] for r in results]),
        "submit_to_terminal": summary([r["submit_to_end"] for r in results]),
        "evaluations_per_second": round(count / elapsed, 2),
    }


async def measure_floor(redis_url: str, count: int) -> dict[str, dict[str, float]]:
    client = redis.asyncio.Redis.from_url(redis_url)
    subscriber = Subscriber(client)
    await subscriber.start()
    try:
        with tempfile.TemporaryDirectory(prefix="crucible-bench-python-") as root:
            python = str(interpreter.prepare(Path(root)) / "python")
            from_print, from_reap = await floor(client, subscriber, count, python)
        return {"from_print": summary(from_print), "from_reap": summary(from_reap)}
    finally:
        await subscriber.stop()
        await client.aclose()


def run_level(args: argparse.Namespace, concurrency: int, redis_url: str) -> dict[str, Any]:
    """One ``crucible serve`` with this many worker slots, and ``--count`` evaluations."""
    with local_serve.serve(
        redis_url,
        CRUCIBLE_LOCAL__CONCURRENCY=str(concurrency),
        CRUCIBLE_LOCAL__QUEUE_SIZE=str(args.count + 10),
    ) as (base, _):
        return asyncio.run(run(args.count, concurrency, base, redis_url))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="evaluations per level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--floor-count", type=int, default=200)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    # The benchmark owns the Redis, so that its subscriber can be in place before the server.
    with (
        tempfile.TemporaryDirectory(prefix="crucible-bench-") as tmp,
        EmbeddedRedis(Path(tmp) / "redis") as redis_server,
    ):
        levels = [run_level(args, c, redis_server.url) for c in args.concurrency]
        floor_figures = asyncio.run(measure_floor(redis_server.url, args.floor_count))
    report = {
        "benchmark": "latency",
        "clock_start": "time.time() printed by the evaluation as its last act",
        "target": "p99 < 10 ms from the child's exit to the terminal event at a pub/sub subscriber",
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_after": os.getloadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "levels": levels,
        "floor_subprocess_then_publish": floor_figures,
    }
    for level in levels:
        print(
            f"concurrency {level['concurrency']} (load {level['load_average_1m_before']:.1f}): "
            f"{level['evaluations_per_second']} evaluations/s"
        )
        for name, figures in level.items():
            if isinstance(figures, dict):
                stats.show(name, figures)
    print("floor: a bare subprocess, then one PUBLISH")
    stats.show("from the print", floor_figures["from_print"])
    stats.show("from the reap", floor_figures["from_reap"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
