"""What one look at the state directory feeds into the outbox."""

import pathlib

import pytest

from sidecar import events, outbox, tail
from wrapper import state


def make_box() -> outbox.Outbox:
    return outbox.Outbox(batch_bytes=1024, batch_interval=0, backlog_max_bytes=10_000)


async def drain(box: outbox.Outbox) -> list[outbox.Item]:
    box.close()
    items = []
    while (item := await box.next()) is not None:
        items.append(item)
        if isinstance(item, outbox.EventItem):
            box.done_event(item)
        else:
            box.done_output(item, item.limit)
    return items


async def test_nothing_yet_means_nothing_queued(tmp_path: pathlib.Path) -> None:
    box = make_box()
    assert await tail.StateTail("ev", str(tmp_path), box).look() is False
    assert await drain(box) == []


async def test_a_look_after_the_end_queues_everything_in_order(tmp_path: pathlib.Path) -> None:
    state.write_json_atomic(str(tmp_path), state.STARTED_FILE, state.started_record(1, ["x"], 5.0))
    (tmp_path / "stdout").write_bytes(b"abc")
    (tmp_path / "stderr").write_bytes(b"")
    state.write_json_atomic(str(tmp_path), state.EXIT_FILE, state.exit_record(0))
    box = make_box()
    follower = tail.StateTail("ev", str(tmp_path), box)
    assert await follower.look() is True
    assert follower.ended
    items = await drain(box)
    assert [type(i).__name__ for i in items] == ["EventItem", "OutputItem", "EventItem"]
    last = items[-1]
    assert isinstance(last, outbox.EventItem)
    assert (last.event.type, last.event.output) == (events.EventType.COMPLETED, "abc")


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b""])
async def test_an_exit_record_that_does_not_parse_is_an_error(
    tmp_path: pathlib.Path, content: bytes
) -> None:
    (tmp_path / state.EXIT_FILE).write_bytes(content)
    box = make_box()
    assert await tail.StateTail("ev", str(tmp_path), box).look() is True
    items = await drain(box)
    assert len(items) == 1
    assert isinstance(items[0], outbox.EventItem)
    assert items[0].event.type == events.EventType.ERROR
