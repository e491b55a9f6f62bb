"""A small client of the dispatcher's HTTP API, as the end-to-end tests drive it.

Synchronous (requests), because each test is a straight line of submit, wait, assert; waits are
conditions with deadlines, never fixed sleeps.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests

TERMINAL = frozenset({"completed", "failed", "timeout", "cancelled", "error"})


@dataclass(frozen=True)
class SseEvent:
    id: str
    type: str
    data: dict[str, Any]


class Dispatcher:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def submit(self, **body: Any) -> requests.Response:
        return self.session.post(self.url("/v1/evaluations"), json=body, timeout=30)

    def submit_ok(self, **body: Any) -> dict[str, Any]:
        response = self.submit(**body)
        assert response.status_code == 201, response.text
        record: dict[str, Any] = response.json()
        return record

    def get(self, eval_id: str) -> dict[str, Any]:
        response = self.session.get(self.url(f"/v1/evaluations/{eval_id}"), timeout=30)
        response.raise_for_status()
        record: dict[str, Any] = response.json()
        return record

    def cancel(self, eval_id: str) -> requests.Response:
        return self.session.post(self.url(f"/v1/evaluations/{eval_id}/cancel"), timeout=30)

    def output(self, eval_id: str) -> dict[str, Any]:
        response = self.session.get(self.url(f"/v1/evaluations/{eval_id}/output"), timeout=30)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def wait(
        self,
        eval_id: str,
        until: Callable[[dict[str, Any]], bool],
        timeout: float,
        what: str,
    ) -> dict[str, Any]:
        """Poll the record until `until` holds; fail with the last record on timeout. A 503
        (the status store unreachable for a moment, as while Redis restarts) is retried, as
        its Retry-After asks; any other error fails at once."""
        deadline = time.monotonic() + timeout
        record: dict[str, Any] = {}
        while True:
            response = self.session.get(self.url(f"/v1/evaluations/{eval_id}"), timeout=30)
            if response.status_code != 503:
                response.raise_for_status()
                record = response.json()
                if until(record):
                    return record
            if time.monotonic() > deadline:
                raise AssertionError(f"{eval_id}: not {what} after {timeout}s: {record}")
            time.sleep(0.2)

    def wait_terminal(self, eval_id: str, timeout: float = 120) -> dict[str, Any]:
        return self.wait(eval_id, lambda r: r["status"] in TERMINAL, timeout, "terminal")

    def wait_verified(self, eval_id: str, timeout: float = 120) -> dict[str, Any]:
        return self.wait(
            eval_id, lambda r: r["status"] in TERMINAL and r["verified"], timeout, "verified"
        )

    def events(self, eval_id: str, timeout: float = 120) -> Iterator[SseEvent]:
        """The evaluation's Server-Sent Events, replay then live, until the stream ends."""
        with self.session.get(
            self.url(f"/v1/evaluations/{eval_id}/events"),
            headers={"Accept": "text/event-stream"},
            stream=True,
            timeout=timeout,
        ) as response:
            response.raise_for_status()
            assert response.headers["Content-Type"].startswith("text/event-stream")
            fields: dict[str, str] = {}
            for raw in response.iter_lines():
                line = raw.decode()
                if line.startswith(":"):
                    continue  # heartbeat comment
                if line:
                    name, _, value = line.partition(":")
                    fields[name] = fields.get(name, "") + value.removeprefix(" ")
                    continue
                if "data" in fields:
                    yield SseEvent(
                        id=fields.get("id", ""),
                        type=fields.get("event", "message"),
                        data=json.loads(fields["data"]),
                    )
                fields = {}
