"""The wrapper -> sidecar channel: length-prefixed frames on a Unix socket.

Why a socket and not files: the state volume is writable by user code, so any file the wrapper
leaves there is a claim user code can rewrite. The wrapper connects *before* it starts user code,
the sidecar accepts that first connection only and then closes its listener, and the wrapper is
PID 1 of its container and non-dumpable, so user code can neither reach the connection nor open
another one that counts. A verdict read from this channel is the wrapper's, and nobody else's.

Frame: ``kind`` (1 byte) + payload length (4 bytes, big endian) + payload.

wrapper -> sidecar, in this order::

    HELLO    JSON {"v": 1, "pid": ...}              first frame, before user code starts
    STARTED  JSON {"pid", "command", "started_at"}  once the command is spawned
    STDOUT   raw bytes of the command's stdout      any number, in order, each <= MAX_CHUNK
    STDERR   raw bytes of the command's stderr
    EXIT     JSON exit record (``exit_record``)     last frame; then the wrapper closes

sidecar -> wrapper::

    ACK      JSON {"v": 1}                           after HELLO: the channel is the wrapper's

A connection that closes without EXIT is a lost channel: the sidecar publishes no verdict of
its own, and the dispatcher's reconciler (the kubelet's record) is the only one.

Standard library only, valid Python 3.8: this module is packed into the wrapper's zipapp.
"""

import json
import struct
import time
from typing import Any, Dict, List, Optional, Tuple

VERSION = 1

HELLO = b"H"
STARTED = b"S"
STDOUT = b"O"
STDERR = b"E"
EXIT = b"X"
ACK = b"A"
KINDS = frozenset({HELLO, STARTED, STDOUT, STDERR, EXIT, ACK})
OUTPUT_KINDS = {STDOUT: "stdout", STDERR: "stderr"}

HEADER = struct.Struct(">cI")
# The largest output payload of one frame; JSON frames are far smaller.
MAX_CHUNK = 256 * 1024
MAX_FRAME = MAX_CHUNK

# Where the sidecar listens in a pod (a volume the main container mounts read-only: it can
# connect, but cannot replace the socket) and the environment variable that overrides it.
CHANNEL_ENV = "CRUCIBLE_CHANNEL"
DEFAULT_RUN_DIR = "/crucible/run"
SOCKET_NAME = "channel.sock"
DEFAULT_SOCKET = DEFAULT_RUN_DIR + "/" + SOCKET_NAME
# In the sidecar's private spool once it accepted the channel: a restarted sidecar finds it
# and trusts no connection (user code may be the one connecting now).
ACCEPTED_MARKER = "channel.accepted"

# How long the wrapper waits for the sidecar's socket and ACK before it gives up (and runs
# nothing: user code never runs without the channel held).
DEFAULT_CONNECT_TIMEOUT_SECONDS = 60.0

# Each of stdout and stderr: bytes forwarded and published at most; the marker ends a capped one.
DEFAULT_OUTPUT_CAP_BYTES = 8 * 1024 * 1024
TRUNCATION_MARKER = b"\n[crucible: output truncated at the cap]\n"

# Exit codes the wrapper uses for its own failures (the shell's conventions).
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126
EXIT_SIGNAL_BASE = 128
# The wrapper itself failed (no channel, internal error): GNU timeout's and env's code.
EXIT_WRAPPER_FAILED = 125


class ProtocolError(ValueError):
    """A frame that breaks the contract: the connection is not to be trusted any further."""


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    if kind not in KINDS:
        raise ProtocolError(f"unknown frame kind {kind!r}")
    if len(payload) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(payload)} bytes is over {MAX_FRAME}")
    return HEADER.pack(kind, len(payload)) + payload


def json_frame(kind: bytes, record: Dict[str, Any]) -> bytes:
    return frame(kind, json.dumps(record, separators=(",", ":")).encode("utf-8"))


def parse_header(header: bytes) -> Tuple[bytes, int]:
    """(kind, payload length) of a frame header, checked."""
    kind, length = HEADER.unpack(header)
    if kind not in KINDS:
        raise ProtocolError(f"unknown frame kind {kind!r}")
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes is over {MAX_FRAME}")
    return kind, length


def parse_json(payload: bytes) -> Dict[str, Any]:
    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ProtocolError(f"frame is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise ProtocolError("frame is not a JSON object")
    return value


def hello_record(pid: int) -> Dict[str, Any]:
    return {"v": VERSION, "pid": pid}


def started_record(pid: int, command: List[str], started_at: float) -> Dict[str, Any]:
    return {"pid": pid, "command": list(command), "started_at": started_at}


def exit_record(
    exit_code: int,
    signal: Optional[int] = None,
    timed_out: bool = False,
    duration_seconds: float = 0.0,
    stdout_truncated: bool = False,
    stderr_truncated: bool = False,
    wrapper_error: Optional[str] = None,
    finished_at: Optional[float] = None,
    timeout_seconds: Optional[float] = None,
) -> Dict[str, Any]:
    return {
        "exit_code": exit_code,
        "signal": signal,
        "timed_out": timed_out,
        "duration_seconds": duration_seconds,
        "finished_at": time.time() if finished_at is None else finished_at,
        "stdout_truncated": stdout_truncated,
        "stderr_truncated": stderr_truncated,
        "wrapper_error": wrapper_error,
        "timeout_seconds": timeout_seconds,
    }
