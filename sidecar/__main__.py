"""``python -m sidecar``: build the settings from the environment and run the service."""

import asyncio
import contextlib
import logging
import os
import signal
import sys

from sidecar import publisher, service, settings, transport
from wire import hardening

# Niceness added once the service is done and only the process exit is left.
EXIT_NICENESS = 10


async def serve(config: settings.SidecarSettings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # The handler only flags; the service decides how to drain.
        loop.add_signal_handler(signum, stop.set)
    client = transport.HttpClient(str(config.ingest_url), timeout=config.ingest_timeout_seconds)
    try:
        sink = publisher.IngestPublisher(
            client, eval_id=config.eval_id, token=config.ingest_token.get_secret_value()
        )
        code = await service.Service(config, sink).run(stop)
    finally:
        await client.aclose()
    yield_cpu()
    return code


def yield_cpu() -> None:
    """Lower this process's priority: the events are out and only the exit is left, which
    nobody waits for, while the dispatcher is delivering the terminal event to clients on the
    same CPUs at that very moment."""
    with contextlib.suppress(OSError):
        os.nice(EXIT_NICENESS)


def main() -> None:
    # Its ingest token is in its environment: keep /proc/<pid>/environ from code of the same
    # user (the local backend; in a pod user code cannot see this process at all).
    try:
        hardening.make_undumpable()
    except hardening.HardeningError as e:
        print(f"sidecar: {e}; continuing", file=sys.stderr)
    config = settings.SidecarSettings()  # eval_id and the rest come from the environment
    logging.basicConfig(
        level=config.log_level,
        stream=sys.stderr,
        format="%(asctime)s sidecar %(levelname)s %(name)s: %(message)s",
    )
    sys.exit(asyncio.run(serve(config)))


if __name__ == "__main__":
    main()
