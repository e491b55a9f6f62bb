"""``python -m sidecar``: build the settings from the environment and run the service."""

import asyncio
import contextlib
import logging
import os
import signal
import sys

from sidecar import publisher, service, settings, streams

# Niceness added once the service is done and only the process exit is left.
EXIT_NICENESS = 10


async def serve(config: settings.SidecarSettings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # The handler only flags; the service decides how to drain.
        loop.add_signal_handler(signum, stop.set)
    async with publisher.connect(config) as client:
        sink = streams.Publisher(client, config.limits())
        code = await service.Service(config, sink).run(stop)
        yield_cpu()
        return code


def yield_cpu() -> None:
    """Lower this process's priority: the events are out and only the exit is left (closing the
    client, interpreter shutdown), which nobody waits for, while the dispatcher and Redis are
    delivering the terminal event to clients on the same CPUs at that very moment."""
    with contextlib.suppress(OSError):
        os.nice(EXIT_NICENESS)


def main() -> None:
    config = settings.SidecarSettings()  # eval_id and the rest come from the environment
    logging.basicConfig(
        level=config.log_level,
        stream=sys.stderr,
        format="%(asctime)s sidecar %(levelname)s %(name)s: %(message)s",
    )
    sys.exit(asyncio.run(serve(config)))


if __name__ == "__main__":
    main()
