"""The state-directory watcher: inotify wakes on the wrapper's files, poll is the fallback."""

import asyncio
import pathlib
import struct

import pytest

from sidecar import watcher
from wrapper import state


async def woken(changes: watcher.Watcher, longest: float = 5.0) -> bool:
    """Whether ``wait_for_change`` returned because of a change rather than ``longest``."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    await changes.wait_for_change(longest)
    return loop.time() - began < longest


async def test_inotify_wakes_on_output_and_records(tmp_path: pathlib.Path) -> None:
    changes = watcher.open_watcher(str(tmp_path), mode="inotify", poll_interval=0.05)
    try:
        assert changes.kind == "inotify"
        waiting = asyncio.create_task(woken(changes))
        await asyncio.sleep(0)
        (tmp_path / "stdout").write_bytes(b"x")
        assert await waiting
        state.write_json_atomic(str(tmp_path), state.EXIT_FILE, state.exit_record(0))
        assert await woken(changes)
    finally:
        changes.close()


async def test_inotify_ignores_files_that_are_not_the_wrappers(tmp_path: pathlib.Path) -> None:
    changes = watcher.open_watcher(str(tmp_path), mode="auto", poll_interval=0.05)
    try:
        (tmp_path / "sidecar.progress").write_text("{}")
        (tmp_path / "unrelated").write_text("x")
        assert not await woken(changes, longest=0.2)
    finally:
        changes.close()


async def test_inotify_on_a_missing_directory_is_reported(tmp_path: pathlib.Path) -> None:
    with pytest.raises(watcher.InotifyUnavailableError):
        watcher.open_watcher(str(tmp_path / "gone"), mode="inotify", poll_interval=0.05)
    # auto falls back to polling instead
    changes = watcher.open_watcher(str(tmp_path / "gone"), mode="auto", poll_interval=0.05)
    assert changes.kind == "poll"


async def test_poll_watcher_returns_after_its_interval() -> None:
    changes = watcher.open_watcher("/nonexistent", mode="poll", poll_interval=0.01)
    assert changes.kind == "poll"
    assert await woken(changes, longest=5.0)


def test_relevant_names_parses_packed_events() -> None:
    def event(mask: int, name: bytes) -> bytes:
        padded = name + b"\0" * (16 - len(name))
        return struct.pack("iIII", 1, mask, 0, len(padded)) + padded

    buffer = event(0x2, b"stdout") + event(0x100, b".exit.json.abc") + event(0x80, b"exit.json")
    assert list(watcher.relevant_names(buffer)) == ["stdout", "exit.json"]
    assert list(watcher.relevant_names(event(0x4000, b""))) == [""]  # overflow: look anyway
