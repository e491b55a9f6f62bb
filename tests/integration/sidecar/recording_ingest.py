"""RecordingIngest: a recording stand-in for the dispatcher's ingest route, for sidecar tests.

It speaks the ``wire.ingest`` contract (path, Bearer credential, ``Batch`` body, 200 results,
401, 422, 503 + Retry-After, and the program's GET) and records every request and every event
it stores, with the dedup tokens honoured as the real publish script does. It is NOT the
dispatcher: the real route (``dispatcher.api.ingest``) is covered by the pipeline tests.
"""

import asyncio
import dataclasses
import json
from typing import Any

import pydantic
from aiohttp import web

from wire import events, ingest, ingest_route, limits

TOKEN = "0123abcd" * 8


@dataclasses.dataclass(frozen=True)
class Scripted:
    """How to answer one request: a fixed status without storing, or store as usual and then
    reply late (``delay``) or not at all (``drop``: the connection is closed)."""

    status: int | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


@dataclasses.dataclass
class Stored:
    seq: int
    token: str
    event: events.Event


class RecordingIngest:
    def __init__(self, eval_id: str, token: str = TOKEN) -> None:
        self.eval_id = eval_id
        self.token = token
        self.requests: list[tuple[int, dict[str, Any] | None]] = []  # status, body
        self.stored: list[Stored] = []
        self._by_token: dict[str, Stored] = {}
        self._script: list[Scripted] = []
        self.changed = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None
        # What GET of the program answers (``sidecar.program``); None: 404.
        self.program: bytes | None = None

    def answer_next(self, status: int, times: int = 1, **headers: str) -> None:
        """Answer the next ``times`` requests with ``status`` (and headers) without storing."""
        scripted = Scripted(status, {k.replace("_", "-"): v for k, v in headers.items()})
        self._script += [scripted] * times

    def store_then_reply_late(self, delay: float) -> None:
        """Store the next batch, but answer only after ``delay`` seconds."""
        self._script.append(Scripted(delay=delay))

    def store_then_drop(self) -> None:
        """Store the next batch, then close the connection without an answer."""
        self._script.append(Scripted(drop=True))

    @property
    def published(self) -> list[events.Event]:
        return [s.event for s in self.stored]

    @property
    def batches(self) -> list[list[str]]:
        """The tokens of every request that was answered 200, in order."""
        return [
            [item["token"] for item in body["events"]]
            for status, body in self.requests
            if status == 200 and body is not None
        ]

    async def start(self) -> "RecordingIngest":
        app = web.Application(client_max_size=limits.INGEST_BODY_MAX_BYTES)
        app.router.add_post(ingest.ROUTE, self._handle)
        app.router.add_get(ingest_route.CODE_ROUTE, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, condition: Any, within: float = 20.0) -> list[events.Event]:
        """The stored events once ``condition(events)`` holds; fails after ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                while not condition(self.published):
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            found = self.published[-5:]
            raise AssertionError(f"events not as expected in {within}s: {found}") from None
        return self.published

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        scripted = self._script.pop(0) if self._script else Scripted()
        if scripted.status is not None:
            response = web.json_response({"error": "scripted"}, status=scripted.status)
            response.headers.update(scripted.headers)
        else:
            response = self._answer(request, raw)
        self.requests.append((response.status, body))
        self.changed.set()
        if scripted.drop and request.transport is not None:
            request.transport.close()
        await asyncio.sleep(scripted.delay)
        return response

    def _answer(self, request: web.Request, raw: bytes) -> web.Response:
        if request.match_info["eval_id"] != self.eval_id:
            return web.json_response({"error": "not found"}, status=404)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "unauthorized"}, status=401)
        if request.method == "GET":
            if self.program is None:
                return web.json_response({"error": "no program"}, status=404)
            return web.Response(body=self.program, content_type="text/plain")
        try:
            batch = ingest.Batch.model_validate_json(raw)
        except pydantic.ValidationError as e:
            return web.json_response({"error": str(e)}, status=422)
        results = [self._store(item) for item in batch.events]
        return web.json_response({"results": results})

    def _store(self, item: ingest.Item) -> dict[str, Any]:
        known = self._by_token.get(item.token)
        if known is not None:
            return {"seq": known.seq, "id": f"{known.seq}-0", "duplicate": True}
        stored = Stored(len(self.stored) + 1, item.token, item.event)
        self.stored.append(stored)
        self._by_token[item.token] = stored
        return {"seq": stored.seq, "id": f"{stored.seq}-0", "duplicate": False}
