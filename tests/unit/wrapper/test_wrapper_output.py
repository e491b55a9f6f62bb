"""The child's output: passed through whole, sent capped on the channel, byte for byte."""

import hashlib
import pathlib
import subprocess
import sys
from typing import Any

import pytest

from wire import channel

PY = [sys.executable, "-I", "-S", "-c"]
MIB = 1024 * 1024

# Writes `count` MiB of a pattern holding every byte value to stdout, in 64 KiB writes.
WRITE_PATTERN = """
import sys
chunk = bytes(range(256)) * 256
for _ in range({count} * 16):
    sys.stdout.buffer.write(chunk)
"""


def pattern(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def test_huge_output_is_capped_with_one_marker_and_passed_through_whole(run_wrapper: Any) -> None:
    size = 50 * MIB

    run = run_wrapper([*PY, WRITE_PATTERN.format(count=50)])

    assert run.returncode == 0
    assert len(run.stdout) == size
    assert hashlib.sha256(run.stdout).digest() == hashlib.sha256(pattern(size)).digest()
    captured = run.output("stdout")
    cap = channel.DEFAULT_OUTPUT_CAP_BYTES
    assert captured == pattern(cap) + channel.TRUNCATION_MARKER
    assert captured.count(channel.TRUNCATION_MARKER) == 1
    assert run.exit["stdout_truncated"] is True
    assert run.exit["stderr_truncated"] is False
    sizes = [len(data) for kind, data in run.peer.frames if kind == channel.STDOUT]
    assert max(sizes) <= channel.MAX_CHUNK
    assert sizes[-1] == len(channel.TRUNCATION_MARKER)  # the marker is a frame of its own
    assert run.peer.kinds()[-1] == channel.EXIT


def test_output_past_the_cap_reaches_a_file_as_the_wrappers_stdout(
    wrapper_argv: list[str], make_peer: Any, tmp_path: pathlib.Path
) -> None:
    # Past the cap the output only passes through (spliced where the kernel and Python allow).
    peer = make_peer()
    own_stdout = tmp_path / "own-stdout"
    argv = [*wrapper_argv, "--channel", str(peer.path), "--output-cap", str(MIB)]
    with own_stdout.open("wb") as sink:
        done = subprocess.run(
            [*argv, "--", *PY, WRITE_PATTERN.format(count=20)], stdout=sink, timeout=60
        )

    assert done.returncode == 0
    assert own_stdout.read_bytes() == pattern(20 * MIB)
    peer.join()
    assert peer.output("stdout") == pattern(MIB) + channel.TRUNCATION_MARKER


@pytest.mark.parametrize(
    ("size", "truncated"),
    [(0, False), (999, False), (1000, False), (1001, True), (70_000, True), (600_000, True)],
)
def test_cap_applies_to_each_stream_from_the_first_byte_over_it(
    run_wrapper: Any, size: int, truncated: bool
) -> None:
    code = (
        "import sys\n"
        f"data = (bytes(range(256)) * {size // 256 + 1})[:{size}]\n"
        "sys.stdout.buffer.write(data)\n"
        "sys.stdout.flush()\n"
        "sys.stderr.buffer.write(data)\n"
    )

    run = run_wrapper([*PY, code], "--output-cap", "1000")

    expected = pattern(min(size, 1000)) + (channel.TRUNCATION_MARKER if truncated else b"")
    assert run.output("stdout") == expected
    assert run.output("stderr") == expected
    assert run.stdout == pattern(size)
    assert run.stderr == pattern(size)
    assert run.exit["stdout_truncated"] is truncated
    assert run.exit["stderr_truncated"] is truncated


def test_every_byte_value_round_trips_on_both_streams(run_wrapper: Any) -> None:
    code = (
        "import sys\n"
        "sys.stdout.buffer.write(bytes(range(256)))\n"
        "sys.stderr.buffer.write(bytes(reversed(range(256))))\n"
    )

    run = run_wrapper([*PY, code])

    assert run.stdout == bytes(range(256))
    assert run.stderr == bytes(reversed(range(256)))
    assert run.output("stdout") == bytes(range(256))
    assert run.output("stderr") == bytes(reversed(range(256)))


def test_interleaved_stdout_and_stderr_are_captured_separately(run_wrapper: Any) -> None:
    code = (
        "import sys\n"
        "for i in range(200):\n"
        "    print('out', i, flush=True)\n"
        "    print('err', i, file=sys.stderr, flush=True)\n"
    )

    run = run_wrapper([*PY, code])

    expected_out = "".join(f"out {i}\n" for i in range(200)).encode()
    expected_err = "".join(f"err {i}\n" for i in range(200)).encode()
    assert run.stdout == expected_out
    assert run.stderr == expected_err
    assert run.output("stdout") == expected_out
    assert run.output("stderr") == expected_err


def test_capture_goes_on_when_the_wrappers_own_stdout_is_closed(
    wrapper_argv: list[str], make_peer: Any
) -> None:
    peer = make_peer()
    argv = [*wrapper_argv, "--channel", str(peer.path), "--", *PY, WRITE_PATTERN.format(count=2)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE) as wrapper:
        assert wrapper.stdout is not None
        wrapper.stdout.close()  # nobody reads the wrapper's stdout: its writes fail with EPIPE
        returncode = wrapper.wait(timeout=60)

    assert returncode == 0
    peer.join()
    assert peer.output("stdout") == pattern(2 * MIB)
