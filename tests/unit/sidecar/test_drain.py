"""The drain: the outbox in order, in batches within the ingest limits, the end last."""

import json
import pathlib
from collections.abc import Sequence
from typing import Any

import pytest

from sidecar import builders, drain, outbox, publisher, spool
from wire import limits


class RecordingSink:
    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    async def publish(self, items: Sequence[publisher.Encoded]) -> None:
        self.batches.append([json.loads(item.json) for item in items])


@pytest.fixture
def spooled(tmp_path: pathlib.Path) -> spool.Spool:
    return spool.Spool(str(tmp_path), cap=10 * 1024 * 1024)


def make(
    spooled: spool.Spool, batch_bytes: int = 100
) -> tuple[outbox.Outbox, RecordingSink, drain.OutboxDrain]:
    box = outbox.Outbox(batch_bytes=batch_bytes, batch_interval=3600)
    sink = RecordingSink()
    return box, sink, drain.OutboxDrain(box, spooled, sink, eval_id="ev")


def write(box: outbox.Outbox, spooled: spool.Spool, stream: builders.Stream, data: bytes) -> None:
    spooled.streams[stream].append(data)
    box.observe(stream, spooled.streams[stream].size)


def finish(box: outbox.Outbox) -> None:
    end = builders.terminal_event("ev", {"exit_code": 0}, output="", error="")
    box.add_terminal(outbox.EventItem(end, builders.TERMINAL_TOKEN))
    box.close()


async def test_everything_due_goes_in_one_batch_in_order(spooled: spool.Spool) -> None:
    box, sink, publishing = make(spooled)
    box.add_running(outbox.EventItem(builders.running_event("ev", {}), builders.RUNNING_TOKEN))
    write(box, spooled, "stdout", b"a" * 250)
    write(box, spooled, "stderr", b"e")
    finish(box)
    await publishing.run()
    tokens = [item["token"] for batch in sink.batches for item in batch]
    # Streams interleave by how long their bytes have waited; each stream stays in order.
    assert tokens == [
        "running",
        "output:stdout:0:100",
        "output:stderr:0:1",
        "output:stdout:100:100",
        "output:stdout:200:50",
        "terminal",
    ]
    assert len(sink.batches) == 1
    assert publishing.terminal_published


async def test_a_batch_holds_at_most_the_contract_s_count(spooled: spool.Spool) -> None:
    box, sink, publishing = make(spooled, batch_bytes=64)
    write(box, spooled, "stdout", b"x" * 64 * 200)
    finish(box)
    await publishing.run()
    assert [len(b) for b in sink.batches] == [64, 64, 64, 9]
    assert sink.batches[-1][-1]["token"] == "terminal"


async def test_a_batch_stays_under_the_body_target(spooled: spool.Spool) -> None:
    box, sink, publishing = make(spooled, batch_bytes=512 * 1024)
    write(box, spooled, "stdout", b"\x01" * 512 * 1024)  # each byte is 6 bytes of JSON
    write(box, spooled, "stderr", b"y" * 1000)
    finish(box)
    await publishing.run()
    sizes = [len(json.dumps({"events": b}, separators=(",", ":"))) for b in sink.batches]
    assert all(size <= limits.INGEST_BODY_MAX_BYTES for size in sizes)
    assert len(sink.batches) == 2  # the big chunk alone, then the rest
    assert [item["token"] for item in sink.batches[1]] == ["output:stderr:0:1000", "terminal"]


async def test_a_character_is_never_split_between_events(spooled: spool.Spool) -> None:
    box, sink, publishing = make(spooled, batch_bytes=64)
    text = "€" * 100
    write(box, spooled, "stdout", text.encode())
    finish(box)
    await publishing.run()
    data = [item["event"]["data"] for b in sink.batches for item in b if "data" in item["event"]]
    assert "".join(data) == text
    assert all(isinstance(d, str) and "\ufffd" not in d for d in data)


async def test_an_incomplete_character_at_the_end_of_the_stream_is_replaced(
    spooled: spool.Spool,
) -> None:
    box, sink, publishing = make(spooled)
    write(box, spooled, "stdout", b"ok" + "€".encode()[:2])
    finish(box)
    await publishing.run()
    assert sink.batches[0][0]["event"]["data"] == "ok\ufffd"
    assert sink.batches[0][0]["token"] == "output:stdout:0:4"
