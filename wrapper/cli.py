"""``crucible-wrapper [--timeout S] [--grace S] [--channel PATH] [--connect-timeout S]
[--output-cap BYTES] -- CMD...``

Configuration is argv first, then the environment (``CRUCIBLE_CHANNEL``); bad usage exits 2
with argparse's message, before anything is done.
"""

import argparse
import contextlib
import math
import os
import sys
from typing import List, NoReturn, Optional

from wire import channel
from wrapper import runner

PROG = "crucible-wrapper"
USAGE = (
    PROG + " [--timeout S] [--grace S] [--channel PATH] [--connect-timeout S] "
    "[--output-cap BYTES] -- CMD [ARG...]"
)


def exit_now(code: int) -> NoReturn:
    """End the process at once with ``code``. EXIT is sent and the command reaped, so nothing is
    left to finalize; the interpreter's own teardown would only delay the container's end (and
    the local backend's wait status) by several milliseconds."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed or broken: nothing more to say
            stream.flush()
    os._exit(code)


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
            channel_path=options.channel,
            connect_timeout_seconds=options.connect_timeout,
            timeout_seconds=options.timeout,
            grace_seconds=options.grace,
            output_cap_bytes=options.output_cap,
        )
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage=USAGE,
        description="Connect to the sidecar's channel, then run CMD in its own process group, "
        "pass its output through and send it (capped) on the channel, enforce a wall-clock "
        "timeout and report how it ended. Exits with CMD's exit code (128+N if it died of "
        "signal N, 127 if not found, 126 if not executable, 125 if the wrapper itself failed, "
        "without running CMD if there is no channel).",
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
        "--channel",
        default=os.environ.get(channel.CHANNEL_ENV) or channel.DEFAULT_SOCKET,
        metavar="PATH",
        help="the sidecar's Unix socket "
        f"(default: ${channel.CHANNEL_ENV} or {channel.DEFAULT_SOCKET})",
    )
    parser.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=channel.DEFAULT_CONNECT_TIMEOUT_SECONDS,
        metavar="S",
        help="how long to wait for the sidecar's socket and its ACK before giving up, with exit "
        f"code 125 and without running CMD (default: {channel.DEFAULT_CONNECT_TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--output-cap",
        type=_byte_count,
        default=channel.DEFAULT_OUTPUT_CAP_BYTES,
        metavar="BYTES",
        help="most bytes of each of stdout and stderr sent on the channel; the rest is still "
        f"passed through (default: {channel.DEFAULT_OUTPUT_CAP_BYTES})",
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
