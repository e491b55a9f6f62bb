"""Hands batches of events to the dispatcher (``wire.ingest``), retrying until they are in.

One batch at a time, in order. A failure to get an answer (connection refused or lost, a
timeout) and the statuses that mean "not now" (503 with Retry-After, 502/504 from a proxy,
408, 429) are retried forever with capped exponential backoff, the same batch with the same
dedup tokens, so order is kept and a reply lost after the dispatcher stored the events is not a
duplicate. Any other answer (401 wrong credential, 403, 404, 422 a batch that breaks the
contract, 500) cannot get better by retrying: ``PublishRejectedError``, and the sidecar exits
non-zero.
"""

import asyncio
import dataclasses
import json
import logging
import math
import pathlib
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from sidecar import errors, program, transport
from wire import event_dicts, ingest_route

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 2.0
# A Retry-After is honoured up to this; the dispatcher asks for about a second.
RETRY_AFTER_CAP_SECONDS = 30.0
RETRY_STATUSES = frozenset({408, 429, 502, 503, 504})


class Client(Protocol):
    """``transport.HttpClient``, or a fake of it in tests."""

    async def post(
        self, path: str, body: bytes, headers: Mapping[str, str]
    ) -> transport.Response: ...

    async def get(
        self, path: str, headers: Mapping[str, str], *, max_body: int
    ) -> transport.Response: ...


@dataclasses.dataclass(frozen=True)
class Encoded:
    """One item of a batch, already JSON (``{"token": ..., "event": ...}``)."""

    token: str
    json: bytes
    terminal: bool = False
    output_bytes: int = 0


def encode(event: event_dicts.EventDict, token: str, output_bytes: int = 0) -> Encoded:
    body = b'{"token":%s,"event":%s}' % (
        json.dumps(token).encode(),
        event_dicts.body_json(event).encode(),
    )
    return Encoded(token, body, event_dicts.is_terminal(event), output_bytes)


def batch_body(items: Sequence[Encoded]) -> bytes:
    return b'{"events":[' + b",".join(item.json for item in items) + b"]}"


def body_size(items: Sequence[Encoded]) -> int:
    return len(b'{"events":[]}') + sum(len(item.json) + 1 for item in items) - 1


@dataclasses.dataclass
class Counts:
    events: int = 0
    duplicates: int = 0
    dropped: int = 0  # refused by the dispatcher's per-evaluation byte budget
    output_bytes: int = 0
    batches: int = 0
    retries: int = 0


class IngestPublisher:
    def __init__(
        self,
        client: Client,
        *,
        eval_id: str,
        token: str,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self._eval_id = eval_id
        self._token = token
        self._path = ingest_route.path(eval_id)
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
        }
        self._sleep = sleep
        self.counts = Counts()

    async def fetch_program(self, target: pathlib.Path, *, within: float) -> None:
        """The program of a ``code`` evaluation into ``target`` (``sidecar.program``)."""
        await program.fetch(
            self._client, eval_id=self._eval_id, token=self._token, target=target, within=within
        )

    async def publish(self, items: Sequence[Encoded]) -> None:
        """Return once the dispatcher has the batch; raise ``PublishRejectedError`` if never."""
        body = batch_body(items)
        failures = 0
        while True:
            try:
                response = await self._client.post(self._path, body, self._headers)
            except errors.IngestUnavailableError as e:
                problem, delay = str(e), None
            else:
                if 200 <= response.status < 300:
                    if failures:
                        log.info("ingest is back after %d failed attempts", failures)
                    self._count(items, response.body)
                    return
                problem = f"ingest answered {response.status}"
                if response.status not in RETRY_STATUSES:
                    detail = response.body.decode("utf-8", "replace")
                    raise errors.PublishRejectedError(errors.bounded(f"{problem}: {detail}"))
                delay = retry_after(response.headers.get("retry-after"))
            failures += 1
            self.counts.retries += 1
            if failures == 1:
                log.warning("%s; retrying %d events", errors.bounded(problem), len(items))
            await self._sleep(backoff(failures) if delay is None else delay)

    def _count(self, items: Sequence[Encoded], reply: bytes) -> None:
        self.counts.batches += 1
        self.counts.events += len(items)
        self.counts.output_bytes += sum(item.output_bytes for item in items)
        try:
            results = json.loads(reply)["results"]
            self.counts.duplicates += sum(bool(r.get("duplicate")) for r in results)
            dropped = sum(bool(r.get("dropped")) for r in results)
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("ingest accepted a batch with an unreadable reply")
            return
        if dropped:
            self.counts.dropped += dropped
            log.warning("ingest dropped %d events over the evaluation's budget", dropped)


def backoff(failures: int) -> float:
    """Capped exponential, jittered down to half so retrying sidecars spread out."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** min(failures - 1, 32))
    return ceiling * (0.5 + random.random() / 2)


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (the HTTP-date form is not used by the dispatcher)."""
    try:
        seconds = float(value) if value is not None else math.nan
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, RETRY_AFTER_CAP_SECONDS)
