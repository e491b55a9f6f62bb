"""The CLI's HTTP client: submit, read, cancel, and follow an evaluation's event stream."""

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any, TextIO

import aiohttp

# Exit codes of `crucible submit --watch` for ends without a process exit code (GNU timeout's
# 124; 128 + SIGINT for a cancel, as a shell reports an interrupted command).
EXIT_TIMEOUT = 124
EXIT_CANCELLED = 130
EXIT_ERROR = 1
_RECONNECTS = 5


class ApiError(Exception):
    """The API answered with an error; ``lines`` is what to print, one problem per line."""

    def __init__(self, status: int, body: Any) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        code, message = error.get("code", "error"), error.get("message", str(body))
        self.lines = [f"{status} {code}: {message}"]
        details = error.get("details")
        if isinstance(details, list):
            self.lines += [f"  {d.get('field')}: {d.get('message')}" for d in details]
        super().__init__("\n".join(self.lines))
        self.status = status


class Client:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str | None) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        async with self._session.request(
            method, self._base + path, json=body, headers=self._headers
        ) as response:
            try:
                payload = await response.json(content_type=None)
            except (json.JSONDecodeError, aiohttp.ContentTypeError):
                payload = {"error": {"message": (await response.text())[:500]}}
            if response.status >= 400:
                raise ApiError(response.status, payload)
            return payload

    async def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = await self._call("POST", "/v1/evaluations", body)
        return record

    async def status(self, eval_id: str) -> dict[str, Any]:
        record: dict[str, Any] = await self._call("GET", f"/v1/evaluations/{eval_id}")
        return record

    async def cancel(self, eval_id: str) -> dict[str, Any]:
        record: dict[str, Any] = await self._call("DELETE", f"/v1/evaluations/{eval_id}")
        return record

    async def events(self, eval_id: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(type, event) until the server ends the stream (after the verified terminal event,
        which may follow a fast unverified one); reconnects with Last-Event-ID if the
        connection drops before an end was seen."""
        last_id: str | None = None
        failures = 0
        ended = False
        while True:
            headers = {**self._headers, "Accept": "text/event-stream"}
            if last_id:
                headers["Last-Event-ID"] = last_id
            url = f"{self._base}/v1/evaluations/{eval_id}/events"
            try:
                async with self._session.get(url, headers=headers, timeout=_NO_TIMEOUT) as response:
                    if response.status >= 400:
                        raise ApiError(response.status, await response.json(content_type=None))
                    async for entry_id, kind, data in _parse_sse(response.content):
                        last_id, failures = entry_id or last_id, 0
                        ended = ended or kind in TERMINAL
                        yield kind, json.loads(data)
                    if ended:
                        return
            except (TimeoutError, aiohttp.ClientConnectionError):
                pass
            failures += 1
            if failures > _RECONNECTS:
                raise ApiError(0, {"error": {"message": "the event stream keeps failing"}})
            await asyncio.sleep(min(0.2 * 2**failures, 5.0))


TERMINAL = frozenset({"completed", "failed", "timeout", "cancelled", "error"})
_NO_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=None)


async def _parse_sse(
    stream: aiohttp.StreamReader,
) -> AsyncIterator[tuple[str | None, str, str]]:
    entry_id: str | None = None
    kind = "message"
    data: list[str] = []
    async for raw in stream:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data:
                yield entry_id, kind, "\n".join(data)
            kind, data = "message", []
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            entry_id = value
        elif name == "event":
            kind = value
        elif name == "data":
            data.append(value)


def exit_code(event: dict[str, Any]) -> int:
    """The shell exit code for a terminal event."""
    kind = event.get("type")
    code = event.get("exit_code")
    if kind == "timeout":
        return EXIT_TIMEOUT
    if kind == "cancelled":
        return EXIT_CANCELLED
    if kind == "completed":
        return code & 0xFF if isinstance(code, int) else 0
    if kind == "failed" and isinstance(code, int) and code & 0xFF:
        return code & 0xFF
    return EXIT_ERROR


def status_line(kind: str, event: dict[str, Any]) -> str:
    parts = [f"crucible: {event.get('eval_id')} {kind}"]
    for name in ("job_name", "exit_code", "signal", "reason"):
        if event.get(name) is not None:
            parts.append(f"{name}={event[name]}")
    if event.get("duration_seconds") is not None:
        parts.append(f"in {event['duration_seconds']:.2f}s")
    return " ".join(parts)


async def watch(
    client: Client, eval_id: str, *, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr
) -> int:
    """Print live output to stdout/stderr and status lines to stderr; the exit code, from the
    verified verdict when one came (it corrects a fast one that disagreed)."""
    final: dict[str, Any] | None = None
    async for kind, event in client.events(eval_id):
        if kind == "output":
            target = stdout if event.get("stream") == "stdout" else stderr
            target.write(event.get("data", ""))
            target.flush()
            continue
        if kind in TERMINAL and final is not None:
            if (kind, exit_code(event)) != (final.get("type"), exit_code(final)):
                line = status_line(kind, event) + " (corrected by the verified verdict)"
                print(line, file=stderr, flush=True)
            final = event
            continue
        print(status_line(kind, event), file=stderr, flush=True)
        if kind in TERMINAL:
            final = event
    return EXIT_ERROR if final is None else exit_code(final)
