"""The spool: the cap and its marker, and files that are created, never followed."""

import os
import pathlib

import pytest

from sidecar import errors, spool
from wire import channel, events


def make(tmp_path: pathlib.Path, cap: int = 10) -> spool.StreamSpool:
    return spool.StreamSpool.create(str(tmp_path), "stdout", cap)


def test_appends_are_read_back_by_offset(tmp_path: pathlib.Path) -> None:
    spooled = make(tmp_path, cap=100)
    spooled.append(b"hello ")
    spooled.append(b"world")
    assert spooled.size == 11
    assert spooled.read(0, 100) == b"hello world"
    assert spooled.read(6, 3) == b"wor"
    assert spooled.read(11, 5) == b""
    assert (tmp_path / "stdout").stat().st_mode & 0o777 == 0o600


def test_the_cap_keeps_the_first_bytes_then_the_marker_once(tmp_path: pathlib.Path) -> None:
    spooled = make(tmp_path, cap=10)
    spooled.append(b"12345678")
    assert (spooled.truncated, spooled.dropped) == (False, 0)
    spooled.append(b"abcdef")
    spooled.append(b"more and more")
    assert spooled.read(0, 1000) == b"12345678ab" + channel.TRUNCATION_MARKER
    assert spooled.truncated
    assert spooled.dropped == 4 + 13
    assert spooled.kept == 10


def test_exactly_the_cap_is_not_truncated(tmp_path: pathlib.Path) -> None:
    spooled = make(tmp_path, cap=4)
    spooled.append(b"1234")
    assert (spooled.truncated, spooled.dropped) == (False, 0)
    spooled.append(b"5")
    assert spooled.read(0, 100) == b"1234" + channel.TRUNCATION_MARKER


def test_the_tail_is_the_end_of_the_stream_as_text(tmp_path: pathlib.Path) -> None:
    spooled = make(tmp_path, cap=10 * events.TAIL_LIMIT_CHARS)
    assert spooled.tail() == ""
    spooled.append("añ€\n".encode())
    assert spooled.tail() == "añ€\n"
    spooled.append("€".encode() * events.TAIL_LIMIT_CHARS + b"end")
    assert len(spooled.tail()) == events.TAIL_LIMIT_CHARS
    assert spooled.tail().endswith("€€end")


@pytest.mark.parametrize("planted", ["file", "symlink", "dangling symlink", "directory"])
def test_anything_already_at_the_path_is_refused_not_followed(
    tmp_path: pathlib.Path, planted: str
) -> None:
    target = tmp_path / "secret"
    target.write_text("password")
    path = tmp_path / "stdout"
    if planted == "file":
        path.write_text("forged")
    elif planted == "symlink":
        os.symlink(target, path)
    elif planted == "dangling symlink":
        os.symlink(tmp_path / "nowhere", path)
    else:
        path.mkdir()
    with pytest.raises(errors.SpoolError):
        make(tmp_path)
    assert target.read_text() == "password"
    assert not (tmp_path / "nowhere").exists()


def test_both_streams_are_created_together_or_not_at_all(tmp_path: pathlib.Path) -> None:
    os.symlink(tmp_path / "x", tmp_path / "stderr")
    with pytest.raises(errors.SpoolError):
        spool.Spool(str(tmp_path), 10)
    both = tmp_path / "ok"
    both.mkdir()
    spooled = spool.Spool(str(both), 10)
    spooled.streams["stderr"].append(b"x" * 11)
    assert (spooled.truncated, spooled.dropped) == (True, 1)
    spooled.close()


def test_the_marker_tells_a_restart_and_is_claimed_once(tmp_path: pathlib.Path) -> None:
    directory = str(tmp_path)
    assert not spool.restarted(directory)
    spool.claim(directory)
    assert spool.restarted(directory)
    with pytest.raises(errors.SpoolError):
        spool.claim(directory)


def test_a_symlink_at_the_marker_counts_as_a_restart(tmp_path: pathlib.Path) -> None:
    os.symlink(tmp_path / "nowhere", tmp_path / spool.MARKER_NAME)
    assert spool.restarted(str(tmp_path))
    with pytest.raises(errors.SpoolError):
        spool.claim(str(tmp_path))
    assert not (tmp_path / "nowhere").exists()
