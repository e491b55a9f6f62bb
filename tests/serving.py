"""``crucible serve`` as a process of its own, as a user runs it, for the tests that need one."""

import contextlib
import pathlib
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping

# The CLI's entry point without relying on the installed script's path.
CRUCIBLE = [sys.executable, "-c", "import sys; from dispatcher.cli import main; sys.exit(main())"]


@contextlib.contextmanager
def serving(env: Mapping[str, str], log_path: pathlib.Path, *args: str) -> Iterator[str]:
    """Run ``crucible serve ARGS`` with ``env`` (its port in ``CRUCIBLE_PORT`` or ``args``),
    logging to ``log_path``; yield its URL once ``/readyz`` answers 200, stop it after."""
    with serving_process(env, log_path, *args) as (url, _):
        yield url


@contextlib.contextmanager
def serving_process(
    env: Mapping[str, str], log_path: pathlib.Path, *args: str
) -> Iterator[tuple[str, "subprocess.Popen[bytes]"]]:
    """``serving``, and the server's process (for those who watch it, e.g. its memory)."""
    port = env.get("CRUCIBLE_PORT") or args[args.index("--port") + 1]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*CRUCIBLE, "serve", *args], env=dict(env), stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log_path)
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_ready(url: str, process: "subprocess.Popen[bytes]", log: pathlib.Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("crucible serve did not become ready:\n" + log.read_text())
