"""The child's output: passed through whole, captured into capped state files, byte for byte."""

import hashlib
import pathlib
import subprocess
import sys
from typing import Any

import pytest

from wrapper import state

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
    captured = run.output(state.STDOUT_FILE)
    cap = state.DEFAULT_OUTPUT_CAP_BYTES
    assert captured == pattern(cap) + state.TRUNCATION_MARKER
    assert captured.count(state.TRUNCATION_MARKER) == 1
    assert run.exit["stdout_truncated"] is True
    assert run.exit["stderr_truncated"] is False


def test_output_past_the_cap_reaches_a_file_as_the_wrappers_stdout(
    wrapper_argv: list[str], state_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    # Past the cap the output only passes through (spliced where the kernel and Python allow).
    own_stdout = tmp_path / "own-stdout"
    argv = [*wrapper_argv, "--state-dir", str(state_dir), "--output-cap", str(MIB)]
    with own_stdout.open("wb") as sink:
        done = subprocess.run(
            [*argv, "--", *PY, WRITE_PATTERN.format(count=20)], stdout=sink, timeout=60
        )

    assert done.returncode == 0
    assert own_stdout.read_bytes() == pattern(20 * MIB)
    assert (state_dir / state.STDOUT_FILE).read_bytes() == pattern(MIB) + state.TRUNCATION_MARKER


@pytest.mark.parametrize(
    ("size", "truncated"),
    [(0, False), (999, False), (1000, False), (1001, True), (70_000, True)],
)
def test_cap_applies_to_each_stream_from_the_first_byte_over_it(
    run_wrapper: Any, size: int, truncated: bool
) -> None:
    code = (
        "import sys\n"
        f"data = (bytes(range(256)) * 300)[:{size}]\n"
        "sys.stdout.buffer.write(data)\n"
        "sys.stdout.flush()\n"
        "sys.stderr.buffer.write(data)\n"
    )

    run = run_wrapper([*PY, code], "--output-cap", "1000")

    expected = pattern(min(size, 1000)) + (state.TRUNCATION_MARKER if truncated else b"")
    assert run.output(state.STDOUT_FILE) == expected
    assert run.output(state.STDERR_FILE) == expected
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
    assert run.output(state.STDOUT_FILE) == bytes(range(256))
    assert run.output(state.STDERR_FILE) == bytes(reversed(range(256)))


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
    assert run.output(state.STDOUT_FILE) == expected_out
    assert run.output(state.STDERR_FILE) == expected_err


def test_capture_goes_on_when_the_wrappers_own_stdout_is_closed(
    wrapper_argv: list[str], state_dir: pathlib.Path
) -> None:
    argv = [*wrapper_argv, "--state-dir", str(state_dir), "--", *PY, WRITE_PATTERN.format(count=2)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE) as wrapper:
        assert wrapper.stdout is not None
        wrapper.stdout.close()  # nobody reads the wrapper's stdout: its writes fail with EPIPE
        returncode = wrapper.wait(timeout=60)

    assert returncode == 0
    assert (state_dir / state.STDOUT_FILE).read_bytes() == pattern(2 * MIB)
