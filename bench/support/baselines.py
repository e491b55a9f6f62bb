"""What ``bench/dispatcher_throughput.py`` measures the dispatcher against: the same Redis
writes straight from redis-py (the raw loop, as the issue defines the baseline, and the same
writes in one round trip), and the least an aiohttp server can do per submission (the floor).
"""

import asyncio
import os
import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

# The submission every client sends, and whose writes the baselines make.
BODY = {
    "code": "print('hello from the benchmark')",
    "timeout_seconds": 30,
    "resources": {"cpu": "250m", "memory": "256Mi"},
    "env": {"BENCH": "1"},
    "labels": {"suite": "bench"},
}


def wait_listening(
    port: int, process: subprocess.Popen[bytes], log: Callable[[], str] = lambda: ""
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("server did not start listening")


class RawWrites:
    """The Redis writes of one submission, straight from redis-py (no HTTP, no validation)."""

    def __init__(self, redis_url: str, clients: int) -> None:
        import redis.asyncio

        from dispatcher.store.publish import Publisher
        from dispatcher.store.store import Store

        self.client = redis.asyncio.Redis.from_url(redis_url, max_connections=clients)
        self._store, self._publisher = Store(self.client, ttl_seconds=3600), Publisher(self.client)

    @staticmethod
    def _record(eval_id: str, job_name: str | None = None) -> Any:
        from dispatcher.store.records import Record, Resources, Status

        return Record(
            eval_id=eval_id, status=Status.ACCEPTED, backend="local", image="python",
            command=["python", "-c", BODY["code"]], timeout_seconds=30.0,
            resources=Resources(cpu="250m", memory="256Mi"), labels={"suite": "bench"},
            created_at=time.time(), request_digest="0" * 64, job_name=job_name,
        )  # fmt: skip

    async def submit(self, eval_id: str) -> None:
        """One command (or script) a round trip, as the issue's baseline defines it."""
        from wire import events, keys

        await self._store.create(self._record(eval_id))
        accepted = events.Event(eval_id=eval_id, type="accepted", source="dispatcher")
        await self._publisher.publish(accepted, token="accepted")
        await self.client.hset(keys.STANDALONE.local_inflight(0), eval_id, "bench")  # type: ignore[misc]
        await self._store.set_job_name(eval_id, f"local-{eval_id}")

    async def submit_pipelined(self, eval_id: str) -> None:
        """The same writes in one round trip, as the dispatcher sends a submission's (record
        with its job name and the in-flight entry, then ``accepted``), with no coalescing."""
        from dispatcher.store import layout, lua
        from wire import events, keys

        record = self._record(eval_id, job_name=f"local-{eval_id}")
        entry = layout.QueueEntry(keys.STANDALONE.local_inflight(0), eval_id, "bench")
        accepted = events.Event(eval_id=eval_id, type="accepted", source="dispatcher")
        args = self._store.create_args(record, '"' + os.urandom(16).hex() + '"', None, entry)
        async with self.client.pipeline(transaction=False) as pipe:
            space = keys.STANDALONE
            lua.CREATE_RECORD.queue(
                pipe, layout.create_keys(space, record, entry_key=entry.key), args
            )
            self._publisher.queue(pipe, accepted, token="accepted")
            await lua.execute(pipe)


async def raw_loop(redis_url: str, total: int, clients: int, *, pipelined: bool = False) -> float:
    """Submissions per second of the same writes straight from redis-py (the baseline)."""
    writes = RawWrites(redis_url, clients)
    remaining = iter(range(total))
    submit = writes.submit_pipelined if pipelined else writes.submit

    async def one_client() -> None:
        for i in remaining:
            await submit(f"raw-{'p' if pipelined else ''}{os.getpid()}-{i}")

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    await writes.client.aclose()
    return total / elapsed


def serve_floor(redis_url: str, port: int, clients: int) -> None:
    """The HTTP floor: the least an aiohttp server can do per submission. It reads the JSON
    body, makes the raw loop's writes in one round trip (``submit_pipelined``) and answers 201
    with a small JSON body: no validation, no auth, no middleware, no consumer, and no
    coalescing of concurrent submissions' round trips (the dispatcher's one trick beyond it)."""
    from aiohttp import web

    writes = RawWrites(redis_url, clients)
    counter = iter(range(10**12))

    async def submit(request: web.Request) -> web.Response:
        await request.json()
        eval_id = f"floor-{next(counter)}"
        await writes.submit_pipelined(eval_id)
        return web.json_response({"eval_id": eval_id, "status": "accepted"}, status=201)

    app = web.Application()
    app.router.add_post("/v1/evaluations", submit)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def start_floor(redis_url: str, port: int, clients: int) -> subprocess.Popen[bytes]:
    code = (
        "import sys; sys.path[:0] = [sys.argv[1]]\n"
        "from bench.support import baselines\n"
        "baselines.serve_floor(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))"
    )
    repo = str(pathlib.Path(__file__).resolve().parents[2])
    command = [sys.executable, "-c", code, repo, redis_url, str(port), str(clients)]
    process = subprocess.Popen(command)
    wait_listening(port, process)
    return process
