"""The outbox's order and batching, driven by a fake clock."""

import asyncio

from sidecar import builders, outbox
from wire import event_dicts, events


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock, **overrides: float) -> outbox.Outbox:
    options = {"batch_bytes": 100, "batch_interval": 0.02}
    options.update(overrides)
    return outbox.Outbox(
        batch_bytes=int(options["batch_bytes"]),
        batch_interval=options["batch_interval"],
        clock=clock,
    )


def running() -> outbox.EventItem:
    event = builders.running_event("ev", {"started_at": 1.0})
    return outbox.EventItem(event, builders.RUNNING_TOKEN)


def completed() -> outbox.EventItem:
    event = builders.terminal_event("ev", {"exit_code": 0}, output="", error="")
    return outbox.EventItem(event, builders.TERMINAL_TOKEN)


async def take(box: outbox.Outbox) -> outbox.Item | None:
    """The next item if one is ready now (the fake clock never moves on its own)."""
    try:
        async with asyncio.timeout(0.1):
            return await box.next()
    except TimeoutError:
        return None


async def start(box: outbox.Outbox) -> None:
    """Queue and publish ``running``, which opens the gate for output."""
    box.add_running(running())
    item = await take(box)
    assert isinstance(item, outbox.EventItem)
    box.done_event(item)


async def test_output_waits_for_running_and_the_end_comes_last() -> None:
    clock = Clock()
    box = make(clock)
    box.observe("stdout", 500)
    assert await take(box) is None  # not started: output waits
    box.add_running(running())
    box.add_terminal(completed())
    first = await take(box)
    assert isinstance(first, outbox.EventItem)
    assert first.event["type"] == events.EventType.RUNNING
    box.done_event(first)
    published = 0
    while isinstance(item := await take(box), outbox.OutputItem):
        assert item.offset == published
        box.done_output(item, item.limit)
        published += item.limit
    assert published == 500
    assert isinstance(item, outbox.EventItem)
    assert event_dicts.is_terminal(item.event)
    box.done_event(item)
    assert not box.holds_events()


async def test_a_full_batch_goes_at_once_and_a_partial_one_after_the_interval() -> None:
    clock = Clock()
    box = make(clock)
    await start(box)
    box.observe("stdout", 250)
    item = await take(box)
    assert isinstance(item, outbox.OutputItem)
    assert (item.offset, item.limit, item.final) == (0, 100, False)
    box.done_output(item, 100)
    item = await take(box)
    assert isinstance(item, outbox.OutputItem)
    box.done_output(item, 100)
    assert await take(box) is None  # 50 bytes: not a batch, interval not over
    clock.now += 0.02
    item = await take(box)
    assert isinstance(item, outbox.OutputItem)
    assert (item.offset, item.limit) == (200, 50)


async def test_the_stream_seen_first_goes_first() -> None:
    clock = Clock()
    box = make(clock, batch_interval=0)
    await start(box)
    box.observe("stderr", 10)
    clock.now += 1
    box.observe("stdout", 10)
    item = await take(box)
    assert isinstance(item, outbox.OutputItem)
    assert item.stream == "stderr"


async def test_a_lone_half_character_waits_for_more_bytes_or_the_end() -> None:
    clock = Clock()
    box = make(clock, batch_interval=0)
    await start(box)
    box.observe("stdout", 2)
    item = await take(box)
    assert isinstance(item, outbox.OutputItem)
    box.done_output(item, 0)  # the publisher found only an incomplete character
    assert await take(box) is None
    box.observe("stdout", 3)
    item = await take(box)
    assert isinstance(item, outbox.OutputItem)
    assert (item.offset, item.limit, item.final) == (0, 3, False)
    box.done_output(item, 0)
    box.close()
    item = await take(box)
    assert isinstance(item, outbox.OutputItem)
    assert item.final  # draining: decode what there is


async def test_closing_flushes_without_waiting_and_then_ends() -> None:
    clock = Clock()
    box = make(clock, batch_interval=3600)
    await start(box)
    box.observe("stdout", 10)
    assert await take(box) is None
    box.close()
    item = await take(box)
    assert isinstance(item, outbox.OutputItem)
    assert item.final
    box.done_output(item, 10)
    assert await box.next() is None


async def test_stopping_makes_output_due_at_once_but_keeps_taking_input() -> None:
    clock = Clock()
    box = make(clock, batch_interval=3600)
    await start(box)
    box.observe("stdout", 10)
    assert await take(box) is None
    box.hurry()
    item = await take(box)
    assert isinstance(item, outbox.OutputItem)
    assert (item.limit, item.final) == (10, False)  # not the end: a split character waits
    box.done_output(item, 10)
    box.observe("stdout", 15)
    assert await take(box) == outbox.OutputItem("stdout", 10, 5)


def test_ready_never_waits_and_unpublished_bytes_count_what_is_not_taken() -> None:
    box = make(Clock(), batch_interval=3600)
    assert box.ready() is None
    box.add_running(running())
    item = box.ready()
    assert isinstance(item, outbox.EventItem)
    box.done_event(item)
    box.observe("stderr", 30)
    assert box.ready() is None  # not due yet
    assert box.unpublished_bytes() == 30


async def test_running_and_the_end_are_queued_once() -> None:
    box = make(Clock())
    box.add_running(running())
    box.add_running(running())
    box.add_terminal(completed())
    box.add_terminal(completed())
    seen = []
    while (item := await take(box)) is not None:
        assert isinstance(item, outbox.EventItem)
        seen.append(item.event["type"])
        box.done_event(item)
    assert seen == [events.EventType.RUNNING, events.EventType.COMPLETED]


async def test_next_wakes_when_output_arrives() -> None:
    box = make(Clock(), batch_bytes=10)
    await start(box)
    waiting = asyncio.create_task(box.next())
    await asyncio.sleep(0)
    assert not waiting.done()
    box.observe("stdout", 10)
    item = await asyncio.wait_for(waiting, 5)
    assert isinstance(item, outbox.OutputItem)
