"""Run the command under supervision and report it on the channel to the sidecar.

Start-up, in this order, and the command runs only if all of it worked: the wrapper becomes
non-dumpable, blocks the signals it acts on, and opens the channel (HELLO, then the sidecar's
ACK). Then: STARTED once the command is spawned, its output as it comes, and EXIT last. The
wrapper writes no files: anything in the shared volumes is user code's to rewrite.
"""

import json
import os
import selectors
import time
from typing import Any, Dict, List, NamedTuple, Optional

from wire import channel, hardening
from wrapper import child, link, output, termination

# After the command exits and its group is killed, the pipes normally reach end of file at once;
# a process that escaped the group (setsid) may hold them open, so stop waiting after this.
DRAIN_SECONDS = 2.0
# Where the command's exit cannot wake the loop by itself (no pidfd: Python 3.8, not Linux),
# SIGCHLD wakes it through the signal thread; this is only a safety net there.
REAP_POLL_SECONDS = 1.0
# STARTED must fit in one frame; a command line beyond this is cut (it is the dispatcher's).
COMMAND_BUDGET_BYTES = channel.MAX_FRAME // 2
COMMAND_CUT = "[crucible: command truncated]"
# wrapper_error quotes paths and exceptions; JSON may escape a char as 6, and EXIT must fit too.
ERROR_CHARS = 4096


class Options(NamedTuple):
    command: List[str]
    channel_path: str
    connect_timeout_seconds: float = channel.DEFAULT_CONNECT_TIMEOUT_SECONDS
    timeout_seconds: Optional[float] = None
    grace_seconds: float = 5.0
    output_cap_bytes: int = channel.DEFAULT_OUTPUT_CAP_BYTES


def run(options: Options) -> int:
    """Run the command; return the exit code for the wrapper (the command's, as a shell does)."""
    parent_pid = os.getppid()  # before anything can re-parent us: the one sender to trust
    try:
        hardening.make_undumpable()
        termination.block()
        sink = link.connect(options.channel_path, options.connect_timeout_seconds)
    except (hardening.HardeningError, link.ConnectError) as error:
        output.say(f"{error}; the command was not run")
        return channel.EXIT_WRAPPER_FAILED
    record = _failure(options, "wrapper failed before recording a result")
    try:
        record = _supervise(options, sink, parent_pid)
    except Exception as error:
        import traceback  # only on this path: start-up time counts for every evaluation

        traceback.print_exc()
        record = _failure(options, f"wrapper failed: {type(error).__name__}: {error}")
    finally:
        sink.send_record(channel.EXIT, record)
        sink.close()
    return int(record["exit_code"])


def _supervise(options: Options, sink: link.Link, parent_pid: int) -> Dict[str, Any]:
    wakeup_read, wakeup_write = os.pipe()
    for fd in (wakeup_read, wakeup_write):
        os.set_blocking(fd, False)
    terminator = termination.Terminator(options.grace_seconds, wakeup_write, parent_pid)
    tees: List[output.CappedTee] = []
    write_ends: List[int] = []
    command: Optional[child.Child] = None
    try:
        for own_fd, kind in ((1, channel.STDOUT), (2, channel.STDERR)):
            read_end, write_end = output.make_pipe()
            write_ends.append(write_end)
            tees.append(output.CappedTee(read_end, own_fd, sink, kind, options.output_cap_bytes))
        try:
            # Before the signal thread starts: the fork must see no other thread.
            command = child.spawn(options.command, write_ends[0], write_ends[1])
        except child.SpawnError as error:
            output.say(error.reason)
            return _failure(options, error.reason, error.exit_code)
        finally:
            _close_all(write_ends)  # the command holds them now; EOF must come from it alone
        started_clock = time.monotonic()
        # The timeout runs from the spawn, not from when a slow sidecar took STARTED.
        terminator.start(command, options.timeout_seconds)
        started = channel.started_record(command.pid, _fitting(options.command), time.time())
        sink.send_record(channel.STARTED, started)
        status = _pump(command, tees, wakeup_read, terminator)
        return channel.exit_record(
            status.exit_code,
            signal=status.signal,
            timed_out=terminator.timed_out,
            duration_seconds=round(time.monotonic() - started_clock, 6),
            stdout_truncated=tees[0].truncated,
            stderr_truncated=tees[1].truncated,
            timeout_seconds=options.timeout_seconds,
        )
    finally:
        terminator.disarm()
        if command is not None:
            command.kill_and_wait()
        for tee in tees:
            tee.close_source()
        # The wakeup write end stays open: the signal thread may still write to it.
        _close_all([*write_ends, wakeup_read])


def _pump(
    command: child.Child,
    tees: List[output.CappedTee],
    wakeup_fd: int,
    terminator: termination.Terminator,
) -> child.ExitStatus:
    """Copy output until the command is reaped and its pipes are closed (or the drain ends)."""
    # Readable at the command's exit: the main loop reaps at once, with no hop through the
    # signal thread (SIGCHLD still wakes it for orphans, when the wrapper is PID 1).
    exit_fd = child.exit_fd(command.pid)
    try:
        with selectors.DefaultSelector() as selector:
            for tee in tees:
                selector.register(tee.source_fd, selectors.EVENT_READ, tee)
            selector.register(wakeup_fd, selectors.EVENT_READ, None)
            if exit_fd is not None:
                selector.register(exit_fd, selectors.EVENT_READ, None)
            return _loop(command, tees, selector, wakeup_fd, exit_fd, terminator)
    finally:
        if exit_fd is not None:
            os.close(exit_fd)


def _loop(
    command: child.Child,
    tees: List[output.CappedTee],
    selector: selectors.BaseSelector,
    wakeup_fd: int,
    exit_fd: Optional[int],
    terminator: termination.Terminator,
) -> child.ExitStatus:
    drain_deadline = 0.0
    while True:
        if command.status is None:
            # With a pidfd the exit itself wakes the loop: nothing to poll for.
            timeout: Optional[float] = None if exit_fd is not None else REAP_POLL_SECONDS
        else:
            timeout = drain_deadline - time.monotonic()
            if timeout <= 0 or not any(tee.source_open for tee in tees):
                return command.status
        events = selector.select(timeout)
        woken = not events
        for key, _ in events:
            if key.fd == wakeup_fd:
                _drain_wakeups(wakeup_fd)
                woken = True
            elif key.fd == exit_fd:
                woken = True
            elif not key.data.pump():
                selector.unregister(key.fd)
        if woken and _on_wakeup(command, terminator):
            drain_deadline = time.monotonic() + DRAIN_SECONDS
            if exit_fd is not None:
                selector.unregister(exit_fd)  # readable for good now: it would spin the drain


def _on_wakeup(command: child.Child, terminator: termination.Terminator) -> bool:
    """Say what the signal thread noted and reap; True when the command was reaped just now."""
    for note in terminator.take_notes():
        output.say(note)
    # Reaping also collects orphans re-parented to the wrapper when it is PID 1.
    was_running = command.status is None
    if command.reap() and was_running:
        terminator.disarm()
        return True
    return False


def _fitting(command: List[str]) -> List[str]:
    """``command`` as it fits into the STARTED frame: arguments past the budget are cut."""
    budget = COMMAND_BUDGET_BYTES
    kept: List[str] = []
    for argument in command:
        budget -= len(json.dumps(argument)) + 1
        if budget < 0:
            return [*kept, COMMAND_CUT]
        kept.append(argument)
    return kept


def _failure(
    options: Options, reason: str, code: int = channel.EXIT_WRAPPER_FAILED
) -> Dict[str, Any]:
    return channel.exit_record(
        code, wrapper_error=reason[:ERROR_CHARS], timeout_seconds=options.timeout_seconds
    )


def _drain_wakeups(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _close_all(fds: List[int]) -> None:
    while fds:
        os.close(fds.pop())
