"""The ingest publisher against a fake client: what is retried, what is final, what is sent."""

import json
from collections.abc import Mapping

import pytest

from sidecar import builders, errors, publisher, transport
from wire import events, ingest

TOKEN = "abc"


class FakeClient:
    """Answers each post with the next scripted response or error."""

    def __init__(self, *answers: transport.Response | Exception) -> None:
        self.answers = list(answers)
        self.posts: list[tuple[str, bytes, Mapping[str, str]]] = []

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> transport.Response:
        self.posts.append((path, body, headers))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def reply(status: int, body: object = None, **headers: str) -> transport.Response:
    raw = json.dumps(body).encode() if body is not None else b""
    return transport.Response(
        status, {k.replace("_", "-").lower(): v for k, v in headers.items()}, raw
    )


def ok(*duplicates: bool) -> transport.Response:
    results = [{"seq": i, "id": f"{i}-0", "duplicate": d} for i, d in enumerate(duplicates)]
    return reply(200, {"results": results})


def items() -> list[publisher.Encoded]:
    running = builders.running_event("ev/1", {"started_at": 1.0})
    output = builders.output_event("ev/1", "stdout", 0, 'quote " and ✓')
    return [
        publisher.encode(running, builders.RUNNING_TOKEN),
        publisher.encode(output, builders.output_token("stdout", 0, 15), output_bytes=15),
    ]


def make(client: FakeClient) -> tuple[publisher.IngestPublisher, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    return publisher.IngestPublisher(client, eval_id="ev/1", token=TOKEN, sleep=sleep), slept


async def test_a_batch_is_posted_to_the_evaluation_s_path_with_its_credential() -> None:
    client = FakeClient(ok(False, True))
    sink, slept = make(client)
    await sink.publish(items())
    path, body, headers = client.posts[0]
    assert path == ingest.path("ev/1") == "/ingest/v1/evaluations/ev%2F1/events"
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    batch = ingest.Batch.model_validate_json(body)  # the contract's own model reads it
    assert [item.token for item in batch.events] == ["running", "output:stdout:0:15"]
    assert batch.events[1].event.data == 'quote " and ✓'
    assert (sink.counts.events, sink.counts.duplicates, sink.counts.output_bytes) == (2, 1, 15)
    assert slept == []


async def test_unavailable_and_503_are_retried_with_the_same_body() -> None:
    client = FakeClient(
        errors.IngestUnavailableError("refused"),
        reply(503, Retry_After="1"),
        reply(502),
        ok(False, False),
    )
    sink, slept = make(client)
    await sink.publish(items())
    assert len({body for _, body, _ in client.posts}) == 1
    assert len(slept) == 3
    assert slept[1] == 1.0  # Retry-After honoured
    assert 0 < slept[0] <= publisher.BACKOFF_CAP_SECONDS
    assert sink.counts.retries == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422, 500])
async def test_a_refusal_is_final(status: int) -> None:
    sink, _ = make(FakeClient(reply(status, {"error": "no" * 1000})))
    with pytest.raises(errors.PublishRejectedError, match=str(status)) as caught:
        await sink.publish(items())
    assert len(str(caught.value)) <= errors.UPSTREAM_TEXT_LIMIT + 3


async def test_an_unreadable_200_still_counts_as_published() -> None:
    sink, _ = make(FakeClient(transport.Response(200, {}, b"not json")))
    await sink.publish(items())
    assert sink.counts.events == 2


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    assert publisher.backoff(1) <= publisher.BACKOFF_BASE_SECONDS
    assert publisher.backoff(1) >= publisher.BACKOFF_BASE_SECONDS / 2
    assert (
        publisher.BACKOFF_CAP_SECONDS / 2
        <= publisher.backoff(1000)
        <= publisher.BACKOFF_CAP_SECONDS
    )


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1", 1.0),
        ("0.5", 0.5),
        ("3600", publisher.RETRY_AFTER_CAP_SECONDS),
        ("-1", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        (None, None),
    ],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert publisher.retry_after(value) == seconds


def test_body_size_is_exact() -> None:
    batch = items()
    assert publisher.body_size(batch) == len(publisher.batch_body(batch))
    assert publisher.body_size(batch[:1]) == len(publisher.batch_body(batch[:1]))


def test_encode_marks_the_terminal_event() -> None:
    end = builders.terminal_event("ev", {"exit_code": 0}, output="", error="")
    assert publisher.encode(end, builders.TERMINAL_TOKEN).terminal
    assert not items()[0].terminal
    assert json.loads(items()[0].json)["event"]["type"] == events.EventType.RUNNING
