"""Limits the parts agree on: stream sizes, lifetimes, and what one evaluation may publish."""

import dataclasses

from wire import channel

DEFAULT_EVAL_STREAM_MAXLEN = 20_000
DEFAULT_GLOBAL_STREAM_MAXLEN = 100_000
DEFAULT_TTL_SECONDS = 7 * 24 * 3600

OUTPUT_CAP_BYTES = channel.DEFAULT_OUTPUT_CAP_BYTES
# Output and error tails carried by terminal events and legacy payloads.
TAIL_LIMIT_CHARS = 64 * 1024
# A reason (kubelet message, wrapper error) is cut to this many characters.
REASON_LIMIT_CHARS = 1024
# What one evaluation's sidecar may put into Redis in total (event JSON bytes), whatever it
# sends: both output streams at the cap, decoded (a bad byte becomes a 3-byte replacement
# character), plus room for the other events. Enforced by publish.lua, where the bytes land.
EVAL_BUDGET_BYTES = 2 * 3 * OUTPUT_CAP_BYTES + 4 * 1024 * 1024
# One ingest request (a batch of the sidecar's events).
INGEST_BODY_MAX_BYTES = 4 * 1024 * 1024
INGEST_BATCH_MAX_EVENTS = 64
# The largest program a sidecar fetches (``code`` is at most the dispatcher's code_max_bytes,
# which may not exceed this).
PROGRAM_MAX_BYTES = 16 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class StreamLimits:
    eval_stream_maxlen: int = DEFAULT_EVAL_STREAM_MAXLEN
    global_stream_maxlen: int = DEFAULT_GLOBAL_STREAM_MAXLEN
    ttl_seconds: int = DEFAULT_TTL_SECONDS
    eval_budget_bytes: int = EVAL_BUDGET_BYTES
