"""The program of a ``code`` evaluation, fetched from the dispatcher into a file before the
sidecar listens.

Why a file: Linux takes 128 KiB per argument and ``code`` may be 1 MiB, so the main container
runs ``python -u <file>``. The file is in the run volume, which the main container mounts
read-only: the command reads it, user code cannot change it. The wrapper connects only once
the sidecar listens, and runs the command only after that, so the file is whole before anything
reads it (written aside, then renamed into place).
"""

import asyncio
import logging
import os
import pathlib
from typing import TYPE_CHECKING

from sidecar import errors
from wire import ingest_route, limits

if TYPE_CHECKING:
    from sidecar.publisher import Client

log = logging.getLogger(__name__)

_BACKOFF_SECONDS = (0.05, 0.1, 0.2, 0.5, 1.0)
_RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


class ProgramError(Exception):
    """The program could not be fetched; the evaluation cannot run."""


async def fetch(
    client: "Client", *, eval_id: str, token: str, target: pathlib.Path, within: float
) -> None:
    """Fetch the program into ``target`` (mode 0644), retrying for ``within`` seconds."""
    headers = {"Authorization": f"Bearer {token}"}
    path = ingest_route.code_path(eval_id)
    try:
        async with asyncio.timeout(within):
            for attempt in range(1 << 30):
                try:
                    response = await client.get(path, headers, max_body=limits.PROGRAM_MAX_BYTES)
                except errors.IngestUnavailableError as e:
                    log.warning("program fetch failed (%s); retrying", e)
                else:
                    if response.status == 200:
                        _write(target, response.body)
                        log.info("program fetched: %d bytes into %s", len(response.body), target)
                        return
                    if response.status not in _RETRIED_STATUSES:
                        raise ProgramError(f"the dispatcher answered {response.status}")
                    log.warning("program fetch answered %d; retrying", response.status)
                await asyncio.sleep(_BACKOFF_SECONDS[min(attempt, len(_BACKOFF_SECONDS) - 1)])
    except TimeoutError:
        raise ProgramError(f"no program within {within:g}s") from None


def _write(target: pathlib.Path, body: bytes) -> None:
    aside = target.with_name(f".{target.name}.{os.getpid()}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        os.fchmod(fd, 0o644)  # whatever the umask: the main container's user reads it
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(aside, target)
