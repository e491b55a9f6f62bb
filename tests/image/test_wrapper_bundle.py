"""The wrapper bundle as the platform image builds it (wrapper/bundle.py, wrapper/launch.c), run
here from a directory with nothing else: its interpreter finds only its own modules, the
variables that steer the dynamic loader never reach the loader, and the command still gets them.
Built with the host's Debian python, the one the test cluster's platform image carries."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from wire import channel

REPO = Path(__file__).resolve().parents[2]
PYTHON = "/usr/bin/python3"  # Debian's, as in the image (tests/cluster/prereqs.sh)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("bundle")
    launcher = work / "crucible-launch"
    subprocess.run(
        ["gcc", "-Os", "-static", "-Wall", "-Wextra", "-Werror", "-o", str(launcher),
         str(REPO / "wrapper" / "launch.c")],
        check=True,
    )  # fmt: skip
    out = work / "bin"
    subprocess.run(
        [PYTHON, "-m", "wrapper.bundle", "--launcher", str(launcher), str(out)],
        check=True, cwd=REPO, capture_output=True,
    )  # fmt: skip
    return out


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[str]:
    """A stand-in for the sidecar: ACKs each wrapper's HELLO and reads whatever follows."""
    path = str(tmp_path / "channel.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed
            with conn:
                header = conn.recv(channel.HEADER.size, socket.MSG_WAITALL)
                _, length = channel.parse_header(header)
                conn.recv(length, socket.MSG_WAITALL)
                conn.sendall(channel.json_frame(channel.ACK, {"v": channel.VERSION}))
                while conn.recv(65536):
                    pass

    threading.Thread(target=serve, daemon=True).start()
    yield path
    listener.close()


def test_the_interpreter_sees_only_the_bundle(bundle: Path) -> None:
    probe = "import sys, os; print(sys.prefix); print(*sys.path, sep='\\n'); print(os.__file__)"
    done = subprocess.run(
        [str(bundle / "ld.so"), "--inhibit-cache", "--library-path", str(bundle / "lib"),
         str(bundle / "python"), "-I", "-S", "-c", probe],
        capture_output=True, text=True, check=True, env={"PYTHONPATH": "/elsewhere"},
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert lines[0] == str(bundle)
    assert all(line.startswith(str(bundle)) for line in lines[1:]), lines


def test_loader_variables_skip_the_wrapper_and_reach_the_command(
    bundle: Path, sidecar: str, tmp_path: Path
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "LD_PRELOAD": "/nonexistent/preload.so",
        "GLIBC_TUNABLES": "glibc.malloc.check=3",
        "KEEP": "me",
    }
    # The control: the bundle's loader, run directly, acts on LD_PRELOAD (and says so).
    direct = subprocess.run(
        [str(bundle / "ld.so"), "--library-path", str(bundle / "lib"), str(bundle / "python"),
         "-I", "-S", "-c", "pass"],
        capture_output=True, env=env, check=False,
    )  # fmt: skip
    assert b"/nonexistent/preload.so" in direct.stderr
    # Through the launcher it never sees them; the command (static busybox, which no loader
    # runs) gets every one back.
    seen = tmp_path / "env"
    done = subprocess.run(
        [str(bundle / "crucible-launch"), "--channel", sidecar, "--",
         "/bin/busybox", "sh", "-c", f'env > "{seen}"'],
        capture_output=True, env=env, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert b"preload" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    child = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    for name, value in env.items():
        assert child[name] == value, name
