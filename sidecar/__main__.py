"""``python -m sidecar``: build the settings from the environment and run the service."""

import asyncio
import logging
import signal
import sys

from sidecar import publisher, service, settings, streams


async def serve(config: settings.SidecarSettings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # The handler only flags; the service decides how to drain.
        loop.add_signal_handler(signum, stop.set)
    async with publisher.connect(config) as client:
        sink = streams.Publisher(client, config.limits())
        return await service.Service(config, sink).run(stop)


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
