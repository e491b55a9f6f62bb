"""What this sidecar has published, kept beside the wrapper's files so a restart resumes exactly.

``state/sidecar.progress`` is rewritten (temp file + rename) just BEFORE each output chunk is
published, naming that chunk as in flight. A restarted sidecar (a native sidecar restarted by
the kubelet keeps the pod's volume) first republishes the in-flight chunk with the same
boundaries, hence the same dedup token (a no-op if it had landed), then continues after it. So
neither a crash nor a lost reply can make it publish the same bytes twice or skip any.
No fsync: the record must survive the process, not the node (the pod dies with the node).
"""

import contextlib
import dataclasses
import json
import os
import tempfile
from typing import Any

from sidecar import builders

PROGRESS_FILE = "sidecar.progress"


@dataclasses.dataclass(frozen=True)
class Chunk:
    """A run of bytes of one output file, cut at character boundaries (or at the end)."""

    stream: builders.Stream
    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclasses.dataclass(frozen=True)
class Progress:
    # Per stream: every byte before this offset is published (or was skipped and counted).
    published: dict[builders.Stream, int]
    inflight: Chunk | None = None

    def to_json(self) -> dict[str, Any]:
        chunk = self.inflight
        return {
            "published": dict(self.published),
            "inflight": None if chunk is None else dataclasses.asdict(chunk),
        }


def save(directory: str, progress: Progress) -> None:
    fd, tmp = tempfile.mkstemp(prefix="." + PROGRESS_FILE + ".", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(progress.to_json(), f, separators=(",", ":"))
        os.replace(tmp, os.path.join(directory, PROGRESS_FILE))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load(directory: str) -> Progress | None:
    """The last saved progress, or None if there is none or it does not parse."""
    try:
        with open(os.path.join(directory, PROGRESS_FILE), encoding="utf-8") as f:
            raw = json.load(f)
        published = {s: _offset(raw["published"].get(s, 0)) for s in builders.STREAMS}
        inflight = raw.get("inflight")
        chunk = None
        if inflight is not None:
            stream = inflight["stream"]
            if stream not in builders.STREAMS:
                return None
            chunk = Chunk(stream, _offset(inflight["offset"]), _offset(inflight["length"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return Progress(published=published, inflight=chunk)


def _offset(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"not a byte offset: {value!r}")
    return value
