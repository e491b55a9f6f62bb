"""``crucible-wrapper [--timeout S] [--grace S] [--state-dir DIR] [--output-cap BYTES] -- CMD...``

Configuration is argv first, then the environment (``CRUCIBLE_STATE_DIR``); bad usage exits 2
with argparse's message, before anything is written.
"""

import argparse
import math
import sys
from typing import List, Optional

from wrapper import runner, state

PROG = "crucible-wrapper"
USAGE = PROG + " [--timeout S] [--grace S] [--state-dir DIR] [--output-cap BYTES] -- CMD [ARG...]"


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # Everything after the first "--" is the command, untouched, even if it looks like options.
    if "--" in args:
        split = args.index("--")
        own, command = args[:split], args[split + 1 :]
    else:
        own, command = args, []
    parser = _parser()
    options = parser.parse_args(own)
    if not command:
        parser.error("no command given: put it after '--'")
    return runner.run(
        runner.Options(
            command=command,
            state_dir=options.state_dir,
            timeout_seconds=options.timeout,
            grace_seconds=options.grace,
            output_cap_bytes=options.output_cap,
        )
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage=USAGE,
        description="Run CMD in its own process group, tee its output into the state directory, "
        "enforce a wall-clock timeout and record how it ended. Exits with CMD's exit code "
        "(128+N if it died of signal N, 127 if not found, 126 if not executable, "
        "125 if the wrapper itself failed).",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=None,
        metavar="S",
        help="wall-clock limit in seconds: then SIGTERM, and SIGKILL after the grace "
        "(default: none)",
    )
    parser.add_argument(
        "--grace",
        type=_seconds,
        default=5.0,
        metavar="S",
        help="seconds between SIGTERM and SIGKILL, on timeout or when the wrapper gets SIGTERM "
        "(default: 5)",
    )
    parser.add_argument(
        "--state-dir",
        default=state.state_dir_from_env(),
        metavar="DIR",
        help="where started.json, stdout, stderr and exit.json go "
        f"(default: ${state.STATE_DIR_ENV} or {state.DEFAULT_STATE_DIR})",
    )
    parser.add_argument(
        "--output-cap",
        type=_byte_count,
        default=state.DEFAULT_OUTPUT_CAP_BYTES,
        metavar="BYTES",
        help="largest size kept of each of stdout and stderr in the state directory; the rest is "
        f"still passed through (default: {state.DEFAULT_OUTPUT_CAP_BYTES})",
    )
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _byte_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of bytes: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text!r}")
    return value
