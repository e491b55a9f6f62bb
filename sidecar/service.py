"""The sidecar's lifetime: hold the wrapper's channel, publish, and on SIGTERM drain, then exit.

1. A marker in the spool says a channel was accepted before: this is a restarted sidecar (the
   kubelet restarts a native sidecar in the same pod). User code may be running by now, and
   anyone could connect, so it serves nothing and publishes nothing: it logs why and waits for
   SIGTERM (or exits 0 with ``exit_after_terminal``). The dispatcher's reconciler gives the
   verdict.
2. Otherwise listen, accept exactly one connection (the wrapper's: it connects before user code
   starts), claim the marker, create the spool, then serve the session.
3. Two tasks in one TaskGroup (a crash in one cancels the other): the session feeds the outbox
   from the channel, the drain publishes it. When the drain is done (the channel ended and all
   is out, the terminal event last), exit with ``exit_after_terminal``, else wait for SIGTERM.
   On SIGTERM, keep reading the channel (the wrapper's EXIT may be on its way) and publishing
   for at most ``drain_deadline_seconds``.
"""

import asyncio
import contextlib
import logging
import os
import signal
import socket

from sidecar import (
    channel,
    drain,
    errors,
    outbox,
    program,
    publisher,
    session,
    settings,
    spool,
    transport,
)

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_DRAIN_INCOMPLETE = 1
EXIT_REJECTED = 2
# The channel could not be held safely (no valid HELLO, an unsafe spool): nothing was published.
EXIT_REFUSED = 3

# Niceness added once the service is done and only the process exit is left.
EXIT_NICENESS = 10


async def serve(config: settings.SidecarSettings) -> int:
    """The process (``python -m sidecar``): signals, the ingest client, the service; the exit
    code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # The handler only flags; the service decides how to drain.
        loop.add_signal_handler(signum, stop.set)
    client = transport.HttpClient(config.ingest_url, timeout=config.ingest_timeout_seconds)
    try:
        sink = publisher.IngestPublisher(
            client, eval_id=config.eval_id, token=config.ingest_token.get_secret_value()
        )
        code = await Service(config, sink).run(stop)
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


class Service:
    def __init__(self, config: settings.SidecarSettings, sink: publisher.IngestPublisher) -> None:
        self._config = config
        self._sink = sink
        self._spool_dir = str(config.spool_dir)
        self._box = outbox.Outbox(
            batch_bytes=config.batch_bytes, batch_interval=config.batch_interval_seconds
        )
        self._outcome: session.Outcome | None = None
        self._spooled: spool.Spool | None = None
        self._drain: drain.OutboxDrain | None = None

    async def run(self, stop: asyncio.Event) -> int:
        """Run until done or ``stop`` is set; the process exit code."""
        # Mounted volumes in a pod (no-ops there); plain directories for the local backend.
        os.makedirs(self._spool_dir, mode=0o700, exist_ok=True)
        os.makedirs(self._config.socket_path.parent, exist_ok=True)
        if spool.restarted(self._spool_dir):
            log.warning(
                "restarted: a channel was accepted before (%s in %s); user code may be running, "
                "so no new connection is trusted and nothing is published",
                spool.MARKER_NAME,
                self._spool_dir,
            )
            return await self._idle(stop, EXIT_OK)
        if self._config.code_file is not None:
            try:
                await self._sink.fetch_program(
                    self._config.code_file, within=self._config.code_fetch_seconds
                )
            except program.ProgramError as e:
                log.error("cannot run the evaluation, its program was not fetched: %s", e)
                return await self._idle(stop, EXIT_REFUSED)
        conn = await self._accept(stop)
        if conn is None:
            log.info("stopped before the wrapper connected")
            return EXIT_OK
        try:
            spool.claim(self._spool_dir)
            self._spooled = spool.Spool(self._spool_dir, self._config.output_cap_bytes)
        except errors.SpoolError as e:
            conn.close()
            log.error("channel refused, nothing will be published: %s", e)
            return await self._idle(stop, EXIT_REFUSED)
        try:
            code = await self._serve(conn, self._spooled, stop)
        finally:
            self._spooled.close()
        self._log_summary()
        return code

    async def _accept(self, stop: asyncio.Event) -> socket.socket | None:
        listener = channel.Listener(
            str(self._config.socket_path), peer_parent_pid=self._config.peer_parent_pid
        )
        listener.open()
        log.info("listening on %s for %s", self._config.socket_path, self._config.eval_id)
        try:
            async with asyncio.TaskGroup() as group:
                accepting = group.create_task(listener.accept())
                stopping = group.create_task(stop.wait())
                await asyncio.wait({accepting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                accepting.cancel()
                stopping.cancel()
        finally:
            listener.close()
        if accepting.cancelled():
            return None
        return accepting.result()

    async def _serve(self, conn: socket.socket, spooled: spool.Spool, stop: asyncio.Event) -> int:
        reader, writer = await asyncio.open_unix_connection(sock=conn)
        channel_session = session.Session(self._config.eval_id, self._box, spooled)
        self._drain = drain.OutboxDrain(
            self._box, spooled, self._sink, eval_id=self._config.eval_id
        )
        code = EXIT_REJECTED
        try:
            async with asyncio.TaskGroup() as group:
                reading = group.create_task(channel_session.run(reader, writer))
                publishing = group.create_task(self._drain.run())
                stopping = group.create_task(stop.wait())
                await asyncio.wait({publishing, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if publishing.done():
                    # With the wrapper's EXIT in and its verdict out, nothing is left to do:
                    # even a native sidecar leaves now rather than at the kubelet's SIGTERM,
                    # which comes only once the kubelet has seen the command end (its next
                    # relist, up to a second) and holds the pod's end back by as much.
                    ended = channel_session.outcome is session.Outcome.ENDED
                    if not (self._config.exit_after_terminal or ended):
                        await stopping
                    code = EXIT_OK
                else:
                    code = await self._drain_after_stop(publishing)
                for task in (reading, stopping):
                    task.cancel()  # no-ops, except for reading after the drain deadline
        except* errors.PublishRejectedError as group_error:
            log.error("publishing rejected, giving up: %s", group_error.exceptions[0])
        self._outcome = channel_session.outcome
        if self._outcome is session.Outcome.REFUSED and code == EXIT_OK:
            code = EXIT_REFUSED
        return code

    async def _drain_after_stop(self, publishing: "asyncio.Task[None]") -> int:
        deadline = self._config.drain_deadline_seconds
        log.info("stop requested: draining for up to %gs", deadline)
        self._box.hurry()
        try:
            async with asyncio.timeout(deadline):
                await publishing  # the session closes the outbox when the channel ends
        except TimeoutError:
            log.error(
                "drain deadline passed: %d output bytes%s not published",
                self._box.unpublished_bytes(),
                " and an event" if self._box.holds_events() else "",
            )
            return EXIT_DRAIN_INCOMPLETE
        return EXIT_OK

    async def _idle(self, stop: asyncio.Event, code: int) -> int:
        if not self._config.exit_after_terminal:
            await stop.wait()
        return code

    def _log_summary(self) -> None:
        counts = self._sink.counts
        ended = self._outcome is session.Outcome.ENDED
        log.info(
            "published %d events in %d batches (%d already there, %d dropped by the budget), "
            "%d output bytes; %d retries; %d bytes over the cap dropped; %s",
            counts.events,
            counts.batches,
            counts.duplicates,
            counts.dropped,
            counts.output_bytes,
            counts.retries,
            self._spooled.dropped if self._spooled else 0,
            "the verdict was published"
            if ended and self._drain is not None and self._drain.terminal_published
            else "no verdict from the sidecar",
        )
