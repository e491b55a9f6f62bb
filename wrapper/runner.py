"""Run the command under supervision and leave its records in the state directory.

Order of the files, which the sidecar relies on: ``stdout``/``stderr`` are created (empty)
before the command starts, ``started.json`` right after it started, and ``exit.json`` last,
once both output files are complete and closed.
"""

import contextlib
import os
import selectors
import sys
import time
from typing import Any, Dict, List, NamedTuple, Optional

from wrapper import child, output, state, termination

# After the command exits and its group is killed, the pipes normally reach end of file at once;
# a process that escaped the group (setsid) may hold them open, so stop waiting after this.
DRAIN_SECONDS = 2.0
# SIGCHLD wakes the loop; this is only a safety net, never the way exits are noticed.
REAP_POLL_SECONDS = 1.0


class Options(NamedTuple):
    command: List[str]
    state_dir: str
    timeout_seconds: Optional[float] = None
    grace_seconds: float = 5.0
    output_cap_bytes: int = state.DEFAULT_OUTPUT_CAP_BYTES


def run(options: Options) -> int:
    """Run the command; return the exit code for the wrapper (the command's, as a shell does)."""
    record = state.exit_record(
        state.EXIT_WRAPPER_FAILED, wrapper_error="wrapper failed before recording a result"
    )
    try:
        record = _supervise(options)
    except Exception as error:
        import traceback  # only on this path: start-up time counts for every evaluation

        traceback.print_exc()
        record = state.exit_record(
            state.EXIT_WRAPPER_FAILED, wrapper_error=f"wrapper failed: {_describe(error)}"
        )
    finally:
        _write_exit(options.state_dir, record)
    return int(record["exit_code"])


def _supervise(options: Options) -> Dict[str, Any]:
    # Signals first: a SIGTERM during start-up is then held for the command, not fatal to us.
    wakeup_read, wakeup_write = os.pipe()
    for fd in (wakeup_read, wakeup_write):
        os.set_blocking(fd, False)
    terminator = termination.Terminator(options.grace_seconds)
    terminator.install(wakeup_write)
    directory = options.state_dir
    tees: List[output.CappedTee] = []
    write_ends: List[int] = []
    command: Optional[child.Child] = None
    try:
        os.makedirs(directory, exist_ok=True)
        for stale in (state.EXIT_FILE, state.STARTED_FILE):
            _remove(os.path.join(directory, stale))
        _open_tees(directory, options.output_cap_bytes, tees, write_ends)
        try:
            command = child.spawn(options.command, write_ends[0], write_ends[1])
        except child.SpawnError as error:
            _say(error.reason)
            return state.exit_record(error.exit_code, wrapper_error=error.reason)
        finally:
            _close_all(write_ends)  # the command holds them now; EOF must come from it alone
        started_clock = time.monotonic()
        started = state.started_record(command.pid, options.command, time.time())
        state.write_json_atomic(directory, state.STARTED_FILE, started)
        terminator.attach(command, options.timeout_seconds)
        status = _pump(command, tees, wakeup_read, terminator)
        return state.exit_record(
            status.exit_code,
            signal=status.signal,
            timed_out=terminator.timed_out,
            duration_seconds=round(time.monotonic() - started_clock, 6),
            stdout_truncated=tees[0].truncated,
            stderr_truncated=tees[1].truncated,
        )
    finally:
        terminator.disarm()
        if command is not None:
            command.kill_and_wait()
        for tee in tees:
            tee.close()  # before exit.json, which says the output files are complete
        # The wakeup write end stays open: it remains the wakeup fd until the wrapper exits.
        _close_all([*write_ends, wakeup_read])


def _open_tees(
    directory: str, cap_bytes: int, tees: List[output.CappedTee], write_ends: List[int]
) -> None:
    """Create the output files and the command's stdout/stderr pipes (into the given lists)."""
    for name, own_fd in ((state.STDOUT_FILE, 1), (state.STDERR_FILE, 2)):
        read_end, write_end = output.make_pipe()
        write_ends.append(write_end)
        try:
            path = os.path.join(directory, name)
            tees.append(output.CappedTee(read_end, own_fd, path, cap_bytes))
        except BaseException:
            os.close(read_end)
            raise


def _pump(
    command: child.Child,
    tees: List[output.CappedTee],
    wakeup_fd: int,
    terminator: termination.Terminator,
) -> child.ExitStatus:
    """Copy output until the command is reaped and its pipes are closed (or the drain ends)."""
    with selectors.DefaultSelector() as selector:
        for tee in tees:
            selector.register(tee.source_fd, selectors.EVENT_READ, tee)
        selector.register(wakeup_fd, selectors.EVENT_READ, None)
        drain_deadline = 0.0
        while True:
            if command.status is None:
                timeout = REAP_POLL_SECONDS
            else:
                timeout = drain_deadline - time.monotonic()
                if timeout <= 0 or not any(tee.source_open for tee in tees):
                    return command.status
            events = selector.select(timeout)
            woken = not events
            for key, _ in events:
                if key.data is None:
                    _drain_wakeups(wakeup_fd)
                    woken = True
                elif not key.data.pump():
                    selector.unregister(key.fd)
            if not woken:
                continue
            # Reaping also collects orphans re-parented to the wrapper when it is PID 1.
            was_running = command.status is None
            if command.reap() and was_running:
                terminator.disarm()
                drain_deadline = time.monotonic() + DRAIN_SECONDS


def _drain_wakeups(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _write_exit(directory: str, record: Dict[str, Any]) -> None:
    try:
        state.write_json_atomic(directory, state.EXIT_FILE, record)
    except OSError as error:
        _say(f"cannot write {os.path.join(directory, state.EXIT_FILE)}: {error}")


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _close_all(fds: List[int]) -> None:
    while fds:
        os.close(fds.pop())


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _say(message: str) -> None:
    sys.stderr.write(f"crucible-wrapper: {message}\n")
    sys.stderr.flush()
