"""The sidecar's lifetime: watch, publish, and on SIGTERM drain within a deadline, then exit.

Three tasks in one TaskGroup (a crash in one cancels the others): the tail follows the state
directory into the outbox, the drain publishes the outbox, and the body waits for whichever
comes first, the terminal event being out (with ``exit_after_terminal``) or the stop signal.
On stop: stop watching, look at the state once more (``exit.json`` may just have landed),
close the outbox and give the drain ``drain_deadline_seconds`` to publish what is left. Without
``exit.json`` no terminal event is published (the dispatcher's reconciler reports such an end,
e.g. an OOM kill), but the output is flushed.
"""

import asyncio
import logging
import os
import time

from sidecar import errors, outbox, progress, publisher, settings, streams, tail, watcher
from wrapper import state

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_DRAIN_INCOMPLETE = 1
EXIT_REJECTED = 2


class Service:
    def __init__(self, config: settings.SidecarSettings, sink: streams.Publisher) -> None:
        self._config = config
        self._dir = str(config.state_dir)
        self._box = outbox.Outbox(
            batch_bytes=config.batch_bytes,
            batch_interval=config.batch_interval_seconds,
            backlog_max_bytes=config.backlog_max_bytes,
        )
        self._publisher = publisher.EventPublisher(sink)
        self._tail = tail.StateTail(config.eval_id, self._dir, self._box)

    async def run(self, stop: asyncio.Event) -> int:
        """Run until done or ``stop`` is set; the process exit code."""
        os.makedirs(self._dir, exist_ok=True)
        self._box.restore(progress.load(self._dir))
        changes = watcher.open_watcher(
            self._dir, mode=self._config.watch, poll_interval=self._config.poll_interval_seconds
        )
        try:
            record = {"pid": os.getpid(), "watcher": changes.kind, "ready_at": time.time()}
            state.write_json_atomic(self._dir, state.SIDECAR_READY_FILE, record)
            log.info("watching %s (%s) for %s", self._dir, changes.kind, self._config.eval_id)
            code = await self._supervise(changes, stop)
        finally:
            changes.close()
        self._log_summary()
        return code

    async def _supervise(self, changes: watcher.Watcher, stop: asyncio.Event) -> int:
        drain = publisher.OutboxDrain(
            self._box,
            self._publisher,
            eval_id=self._config.eval_id,
            state_dir=self._dir,
            exit_after_terminal=self._config.exit_after_terminal,
        )
        code = EXIT_REJECTED
        try:
            async with asyncio.TaskGroup() as group:
                following = group.create_task(self._tail.follow(changes))
                publishing = group.create_task(drain.run())
                stopping = group.create_task(stop.wait())
                await asyncio.wait({publishing, stopping}, return_when=asyncio.FIRST_COMPLETED)
                following.cancel()
                stopping.cancel()
                if publishing.done():
                    code = EXIT_OK
                else:
                    code = await self._drain_after_stop(following, publishing)
        except* errors.PublishRejectedError as group_error:
            log.error("publishing rejected, giving up: %s", group_error.exceptions[0])
        return code

    async def _drain_after_stop(
        self, following: "asyncio.Task[None]", publishing: "asyncio.Task[None]"
    ) -> int:
        deadline = self._config.drain_deadline_seconds
        log.info("stop requested: draining for up to %gs", deadline)
        await asyncio.wait({following})
        await self._tail.look()
        self._box.close()
        return await self._drain(publishing)

    async def _drain(self, publishing: "asyncio.Task[None]") -> int:
        try:
            async with asyncio.timeout(self._config.drain_deadline_seconds):
                await publishing
        except TimeoutError:
            log.error(
                "drain deadline passed: %d output bytes%s not published",
                self._box.unpublished_bytes(),
                " and an event" if self._box.holds_events() else "",
            )
            return EXIT_DRAIN_INCOMPLETE
        return EXIT_OK

    def _log_summary(self) -> None:
        counts = self._publisher.counts
        log.info(
            "published %d events (%d already there), %d output bytes; %d retries, %d bytes lost%s",
            counts.events,
            counts.duplicates,
            counts.output_bytes,
            counts.retries,
            self._box.lost_bytes,
            "" if self._tail.ended else "; the evaluation's end was not seen",
        )
