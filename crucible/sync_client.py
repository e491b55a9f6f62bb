"""``crucible.Client``: the API from synchronous code, with the standard library only.

Each call opens its own connection (``http.client``): no idle keep-alive connection the
dispatcher has closed can fail a submission half-way, and a watch in progress never shares a
socket with other calls. Not thread-safe to share a generator; the client itself holds no
connection, so threads may share it.
"""

import contextlib
import http.client
import json
import socket
import ssl
import time
from collections.abc import Generator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from crucible import calls, endpoint, errors, models, sse

_READ_SIZE = 64 * 1024


class Client:
    """A client of one dispatcher. ``url`` defaults to ``CRUCIBLE_URL`` (else
    ``http://127.0.0.1:8080``), ``token`` to ``CRUCIBLE_TOKEN``. ``timeout`` bounds each
    socket operation of a call; ``stream_timeout`` how long an event stream may stay silent
    (the dispatcher sends a heartbeat every 15 s by default). None: no limit."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float | None = 30.0,
        stream_timeout: float | None = 120.0,
    ) -> None:
        self._endpoint = endpoint.Endpoint.resolve(url, token)
        self._timeout = timeout
        self._stream_timeout = stream_timeout

    def __repr__(self) -> str:
        return self._endpoint.describe(type(self).__name__)

    @property
    def url(self) -> str:
        return self._endpoint.url

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release (no connection outlives a call); here for symmetry."""

    def submit(
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
        return models.Evaluation.from_json(self._call("POST", calls.EVALUATIONS, body=body))

    def get(self, eval_id: str) -> models.Evaluation:
        return models.Evaluation.from_json(self._call("GET", calls.evaluation_path(eval_id)))

    def cancel(self, eval_id: str) -> models.Evaluation:
        """Ask for a cancel; the record as it is now. The verified end follows on the stream
        (``wait``); an evaluation that had ended is left as it was."""
        answer = self._call("POST", calls.evaluation_path(eval_id, "/cancel"))
        return models.Evaluation.from_json(answer)

    def output(self, eval_id: str) -> models.Output:
        answer = self._call("GET", calls.evaluation_path(eval_id, "/output"))
        return models.Output.from_json(answer)

    def list(
        self, status: str | None = None, limit: int | None = None
    ) -> Generator[models.Evaluation, None, None]:
        """Every evaluation the token may see, newest first, ``limit`` per request (the
        dispatcher's page size by default), following the pages as the iteration goes."""
        cursor: str | None = None
        while True:
            query = calls.list_query(status, limit, cursor)
            items, cursor = calls.page(self._call("GET", calls.EVALUATIONS, query=query), cursor)
            yield from items
            if cursor is None:
                return

    def watch(
        self, eval_id: str, last_event_id: str | None = None
    ) -> Generator[models.Event, None, None]:
        """The evaluation's events, replayed from the start (or after ``last_event_id``), then
        live, until the dispatcher ends the stream (after the verified end). The request is
        made when iteration starts; close the iterator to stop early."""
        return self._events(eval_id, last_event_id, None)

    def wait(self, eval_id: str, timeout: float | None = None) -> models.Evaluation:
        """Watch until the verified end (or the stream ends), then the final record.
        ``WaitTimeoutError`` after ``timeout`` seconds; the evaluation goes on."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with contextlib.closing(self._events(eval_id, None, deadline)) as events:
            for event in events:
                if event.final:
                    break
        return self._settled(eval_id, deadline)

    def _settled(self, eval_id: str, deadline: float | None) -> models.Evaluation:
        until = time.monotonic() + calls.SETTLE_SECONDS
        until = until if deadline is None else min(until, deadline)
        while True:
            record = self.get(eval_id)
            if record.finished or time.monotonic() >= until:
                return record
            time.sleep(calls.POLL_SECONDS)

    def _events(
        self, eval_id: str, last_event_id: str | None, deadline: float | None
    ) -> Generator[models.Event, None, None]:
        path = calls.evaluation_path(eval_id, "/events")
        headers = calls.stream_headers(last_event_id)
        connection, response, sock = self._open(
            "GET", path, headers=headers, timeout=self._stream_timeout
        )
        try:
            if response.status >= 400:
                raise self._error(response, response.read())
            calls.check_stream(response.getheader("Content-Type"))
            decoder = sse.Decoder()
            while True:
                self._bound_read(sock, deadline)
                chunk = response.read1(_READ_SIZE)
                if not chunk:
                    return
                for message in decoder.feed(chunk):
                    yield calls.event(message)
        except (OSError, http.client.HTTPException) as e:
            if deadline is not None and time.monotonic() >= deadline:
                raise errors.WaitTimeoutError(f"{eval_id} has not ended in time") from None
            raise self._transport_error(e) from e
        finally:
            response.close()
            connection.close()

    def _bound_read(self, sock: socket.socket | None, deadline: float | None) -> None:
        """The next read waits for the stream's silence limit, or the deadline if sooner."""
        if sock is None or deadline is None:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left if self._stream_timeout is None else min(left, self._stream_timeout))

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        query: Mapping[str, str] | None = None,
    ) -> Any:
        connection, response, _ = self._open(method, path, body=body, query=query)
        try:
            raw = response.read()
        except (OSError, http.client.HTTPException) as e:
            raise self._transport_error(e) from e
        finally:
            connection.close()
        if response.status >= 400:
            raise self._error(response, raw)
        return calls.decode(raw, response.status)

    def _open(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, socket.socket | None]:
        """The connection, its answer, and its socket (kept: http.client lets go of it when
        the answer says the connection closes, and a stream's reads are bounded on it)."""
        connection = self._connection(self._timeout if timeout is None else timeout)
        sent = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        try:
            connection.connect()
            sock = connection.sock
            connection.request(
                method,
                self._endpoint.target(path, query),
                body=data,
                headers=self._endpoint.headers(sent),
            )
            return connection, connection.getresponse(), sock
        except (OSError, http.client.HTTPException) as e:
            connection.close()
            raise self._transport_error(e) from e

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        where = self._endpoint
        if where.scheme == "https":
            context = ssl.create_default_context()
            return http.client.HTTPSConnection(
                where.host, where.port, timeout=timeout, context=context
            )
        return http.client.HTTPConnection(where.host, where.port, timeout=timeout)

    def _error(self, response: http.client.HTTPResponse, raw: bytes) -> errors.ApiError:
        return errors.from_response(
            response.status,
            response.reason,
            raw,
            response.getheader("Retry-After"),
            self._endpoint.redact,
        )

    def _transport_error(self, error: BaseException) -> errors.TransportError:
        text = self._endpoint.redact(str(error) or type(error).__name__)
        return errors.TransportError(f"{self._endpoint.url}: {text}")
