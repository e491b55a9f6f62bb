"""The sidecar's progress record: round trip, and garbage read as no progress."""

import pathlib

import pytest

from sidecar import progress


def test_progress_round_trips(tmp_path: pathlib.Path) -> None:
    saved = progress.Progress({"stdout": 10, "stderr": 3}, progress.Chunk("stdout", 10, 7))
    progress.save(str(tmp_path), saved)
    assert progress.load(str(tmp_path)) == saved
    assert [p.name for p in tmp_path.iterdir()] == [progress.PROGRESS_FILE]  # no temp left


def test_no_file_is_no_progress(tmp_path: pathlib.Path) -> None:
    assert progress.load(str(tmp_path)) is None


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"published": {"stdout": -1}}',
        '{"published": {"stdout": true}}',
        '{"published": {}, "inflight": {"stream": "stdin", "offset": 0, "length": 1}}',
        '{"published": {}, "inflight": {"stream": "stdout", "offset": 0}}',
    ],
)
def test_garbage_is_no_progress(tmp_path: pathlib.Path, text: str) -> None:
    (tmp_path / progress.PROGRESS_FILE).write_text(text)
    assert progress.load(str(tmp_path)) is None


def test_chunk_end() -> None:
    assert progress.Chunk("stderr", 100, 28).end == 128
