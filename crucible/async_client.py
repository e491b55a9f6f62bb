"""``crucible.AsyncClient``: the API from asyncio code, over one aiohttp session.

The same calls as ``crucible.Client`` (``calls`` builds and reads them for both); ``list``
and ``watch`` are async iterators.
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import aiohttp
import yarl

from crucible import calls, endpoint, errors, models, sse


class AsyncClient:
    """A client of one dispatcher; ``async with`` it, or ``await aclose()``. ``url`` defaults
    to ``CRUCIBLE_URL`` (else ``http://127.0.0.1:8080``), ``token`` to ``CRUCIBLE_TOKEN``.
    ``timeout`` bounds connecting and each read of a call; ``stream_timeout`` how long an event
    stream may stay silent (the dispatcher sends a heartbeat every 15 s by default); None: no
    limit. A ``session`` given is used and left open."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float | None = 30.0,
        stream_timeout: float | None = 120.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._endpoint = endpoint.Endpoint.resolve(url, token)
        self._call_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout, sock_read=timeout
        )
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout, sock_read=stream_timeout
        )
        self._session = session
        self._owns_session = session is None

    def __repr__(self) -> str:
        return self._endpoint.describe(type(self).__name__)

    @property
    def url(self) -> str:
        return self._endpoint.url

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def submit(
        self,
        code: str | None = None,
        command: Sequence[str] | None = None,
        *,
        eval_id: str | None = None,
        image: str | None = None,
        timeout_seconds: float | None = None,
        resources: Mapping[str, str | int | float] | None = None,
        env: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> models.Evaluation:
        """Submit Python ``code`` or a ``command``; the new record (or, for a retry with the
        same ``eval_id`` and body, the existing one)."""
        body = calls.submission(
            code,
            command,
            eval_id=eval_id,
            image=image,
            timeout_seconds=timeout_seconds,
            resources=resources,
            env=env,
            labels=labels,
        )
        answer = await self._call("POST", calls.EVALUATIONS, body=body)
        return models.Evaluation.from_json(answer)

    async def get(self, eval_id: str) -> models.Evaluation:
        answer = await self._call("GET", calls.evaluation_path(eval_id))
        return models.Evaluation.from_json(answer)

    async def cancel(self, eval_id: str) -> models.Evaluation:
        """Ask for a cancel; the record as it is now. The verified end follows on the stream
        (``wait``); an evaluation that had ended is left as it was."""
        answer = await self._call("POST", calls.evaluation_path(eval_id, "/cancel"))
        return models.Evaluation.from_json(answer)

    async def output(self, eval_id: str) -> models.Output:
        answer = await self._call("GET", calls.evaluation_path(eval_id, "/output"))
        return models.Output.from_json(answer)

    async def list(
        self, status: str | None = None, limit: int | None = None
    ) -> AsyncGenerator[models.Evaluation, None]:
        """Every evaluation the token may see, newest first, ``limit`` per request (the
        dispatcher's page size by default), following the pages as the iteration goes."""
        cursor: str | None = None
        while True:
            query = calls.list_query(status, limit, cursor)
            answer = await self._call("GET", calls.EVALUATIONS, query=query)
            items, cursor = calls.page(answer, cursor)
            for item in items:
                yield item
            if cursor is None:
                return

    def watch(
        self, eval_id: str, last_event_id: str | None = None
    ) -> AsyncGenerator[models.Event, None]:
        """The evaluation's events, replayed from the start (or after ``last_event_id``), then
        live, until the dispatcher ends the stream (after the verified end). The request is
        made when iteration starts; ``aclose()`` the iterator to stop early."""
        return self._events(eval_id, last_event_id)

    async def wait(
        self,
        eval_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - the same call as Client.wait
    ) -> models.Evaluation:
        """Watch until the verified end (or the stream ends), then the final record.
        ``WaitTimeoutError`` after ``timeout`` seconds; the evaluation goes on."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        scope = asyncio.timeout_at(deadline)
        try:
            async with scope, contextlib.aclosing(self._events(eval_id, None)) as events:
                async for event in events:
                    if event.final:
                        break
        except TimeoutError:
            if not scope.expired():
                raise
            raise errors.WaitTimeoutError(f"{eval_id} has not ended in time") from None
        return await self._settled(eval_id, deadline)

    async def _settled(self, eval_id: str, deadline: float | None) -> models.Evaluation:
        loop = asyncio.get_running_loop()
        until = loop.time() + calls.SETTLE_SECONDS
        until = until if deadline is None else min(until, deadline)
        while True:
            record = await self.get(eval_id)
            if record.finished or loop.time() >= until:
                return record
            await asyncio.sleep(calls.POLL_SECONDS)

    async def _events(
        self, eval_id: str, last_event_id: str | None
    ) -> AsyncGenerator[models.Event, None]:
        url = self._url(calls.evaluation_path(eval_id, "/events"))
        headers = self._endpoint.headers(calls.stream_headers(last_event_id))
        try:
            async with self._http().get(
                url, headers=headers, timeout=self._stream_timeout, allow_redirects=False
            ) as response:
                if response.status >= 400:
                    raise self._error(response, await response.read())
                calls.check_stream(response.headers.get("Content-Type"))
                decoder = sse.Decoder()
                async for chunk in response.content.iter_any():
                    for message in decoder.feed(chunk):
                        yield calls.event(message)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise self._transport_error(e) from _cause(e)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        query: Mapping[str, str] | None = None,
    ) -> Any:
        headers = self._endpoint.headers()
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            async with self._http().request(
                method,
                self._url(path, query),
                data=data,
                headers=headers,
                timeout=self._call_timeout,
                allow_redirects=False,
            ) as response:
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            raise self._transport_error(e) from _cause(e)
        if response.status >= 400:
            raise self._error(response, raw)
        return calls.decode(raw, response.status)

    def _http(self) -> aiohttp.ClientSession:
        # Made on first use: a session belongs to the running loop.
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def _url(self, path: str, query: Mapping[str, str] | None = None) -> yarl.URL:
        # Already quoted by ``calls``: yarl must not quote again (nor unquote a %2F).
        return yarl.URL(self._endpoint.origin + self._endpoint.target(path, query), encoded=True)

    def _error(self, response: aiohttp.ClientResponse, raw: bytes) -> errors.ApiError:
        return errors.from_response(
            response.status,
            response.reason or "",
            raw,
            response.headers.get("Retry-After"),
            self._endpoint.redact,
        )

    def _transport_error(self, error: BaseException) -> errors.TransportError:
        text = self._endpoint.redact(str(error) or type(error).__name__)
        return errors.TransportError(f"{self._endpoint.url}: {text}")


def _cause(error: BaseException) -> BaseException | None:
    """What to chain: not an aiohttp response error, whose repr shows the request's headers
    (the token among them)."""
    return None if isinstance(error, aiohttp.ClientResponseError) else error
