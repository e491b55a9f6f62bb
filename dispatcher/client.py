"""What the CLI does with the API, on ``crucible.AsyncClient``: follow an evaluation's stream
(reconnecting where it broke), print its output live, and exit with its verified verdict."""

import asyncio
import contextlib
import dataclasses
import sys
from collections.abc import AsyncIterator
from typing import Any, TextIO

import crucible
from crucible.async_client import AsyncClient

# Exit codes of `crucible submit --watch` for ends without a process exit code (GNU timeout's
# 124; 128 + SIGINT for a cancel, as a shell reports an interrupted command).
EXIT_TIMEOUT = 124
EXIT_CANCELLED = 130
EXIT_ERROR = 1
_RECONNECTS = 5


async def events(client: AsyncClient, eval_id: str) -> AsyncIterator[crucible.Event]:
    """The evaluation's events until the server ends the stream (after the verified end,
    which may follow a fast unverified one); reconnects after the last event seen if the
    connection drops before an end."""
    last_id: str | None = None
    failures = 0
    ended = False
    while True:
        try:
            async with contextlib.aclosing(client.watch(eval_id, last_id)) as stream:
                async for event in stream:
                    last_id, failures = event.id or last_id, 0
                    ended = ended or event.terminal
                    yield event
            if ended:
                return
        except crucible.TransportError:
            pass
        failures += 1
        if failures > _RECONNECTS:
            raise crucible.TransportError("the event stream keeps failing")
        await asyncio.sleep(min(0.2 * 2**failures, 5.0))


def exit_code(kind: str, code: int | None) -> int:
    """The shell exit code for a terminal event of type ``kind``."""
    if kind == "timeout":
        return EXIT_TIMEOUT
    if kind == "cancelled":
        return EXIT_CANCELLED
    if kind == "completed":
        return code & 0xFF if code is not None else 0
    if kind == "failed" and code is not None and code & 0xFF:
        return code & 0xFF
    return EXIT_ERROR


def status_line(event: crucible.Event) -> str:
    parts = [f"crucible: {event.eval_id} {event.type}"]
    for name in ("job_name", "exit_code", "signal", "reason"):
        if (value := getattr(event, name)) is not None:
            parts.append(f"{name}={value}")
    if event.duration_seconds is not None:
        parts.append(f"in {event.duration_seconds:.2f}s")
    return " ".join(parts)


def as_json(evaluation: crucible.Evaluation) -> dict[str, Any]:
    """The record as the API sent it (known fields, then any the client does not know)."""
    known = {f.name: getattr(evaluation, f.name) for f in dataclasses.fields(evaluation)}
    extra = known.pop("extra")
    return {**known, "command": list(evaluation.command), **extra}


async def watch(
    client: AsyncClient, eval_id: str, *, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr
) -> int:
    """Print live output to stdout/stderr and status lines to stderr; the exit code, from the
    verified verdict when one came (it corrects a fast one that disagreed)."""
    final: crucible.Event | None = None
    async for event in events(client, eval_id):
        if event.type == "output":
            target = stdout if event.stream == "stdout" else stderr
            target.write(event.data or "")
            target.flush()
            continue
        if event.terminal and final is not None:
            said = (final.type, exit_code(final.type, final.exit_code))
            if (event.type, exit_code(event.type, event.exit_code)) != said:
                line = status_line(event) + " (corrected by the verified verdict)"
                print(line, file=stderr, flush=True)
            final = event
            continue
        print(status_line(event), file=stderr, flush=True)
        if event.terminal:
            final = event
    return EXIT_ERROR if final is None else exit_code(final.type, final.exit_code)
