"""Where a local evaluation's files live (owner of the local backend's directory layout)::

    <work root>/
        crucible-wrapper, bin/python    built once per backend
        runs/<eval_id>-<random>/        the work dir: user code's cwd and HOME
            tmp/                        its TMPDIR
        run/<random>/                   the run's private dir (0700), never named to user code
            channel.sock                the sidecar's socket; gone once the wrapper connected
            spool/stdout, spool/stderr  the sidecar's copy of the output
            sidecar.log

User code runs as the dispatcher's own user, so 0700 keeps other users out, not user code. What
keeps it from forging a verdict is elsewhere: the sidecar takes the first connection only (the
wrapper's, made before user code starts), the verdict's exit code is the wrapper's real wait
status, and nothing user code can write anywhere is read as a claim about the run.

A Unix socket path is at most 107 bytes: where ``<work root>/run`` is too deep for one, the
private dirs go to a directory of the backend's own in the system's temporary directory.
"""

import dataclasses
import os
import pathlib
import shutil
import tempfile

from wire import channel

RUNS_DIR = "runs"
PRIVATE_DIR = "run"
SPOOL_DIR = "spool"
SIDECAR_LOG = "sidecar.log"
PRIVATE_MODE = 0o700
# sockaddr_un.sun_path holds 108 bytes, the terminating NUL included.
_SOCKET_PATH_MAX = 107
# The random name tempfile gives a private dir with an empty prefix.
_RANDOM_NAME_LENGTH = 8


@dataclasses.dataclass(frozen=True)
class RunDirs:
    """One evaluation's directories."""

    work: pathlib.Path
    private: pathlib.Path

    @property
    def tmp(self) -> pathlib.Path:
        return self.work / "tmp"

    @property
    def socket(self) -> pathlib.Path:
        return self.private / channel.SOCKET_NAME

    @property
    def spool(self) -> pathlib.Path:
        return self.private / SPOOL_DIR

    @property
    def sidecar_log(self) -> pathlib.Path:
        return self.private / SIDECAR_LOG

    def remove(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.rmtree(self.private, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class Layout:
    """The directories every run of one backend shares."""

    runs: pathlib.Path
    private_root: pathlib.Path
    owns_private_root: bool
    """The private root is outside the work root (a deep work root): remove it on close."""

    @classmethod
    def prepare(cls, root: pathlib.Path) -> "Layout":
        runs = root / RUNS_DIR
        runs.mkdir(exist_ok=True)
        private_root = root / PRIVATE_DIR
        if _socket_path_length(private_root) <= _SOCKET_PATH_MAX:
            private_root.mkdir(mode=PRIVATE_MODE, exist_ok=True)
            os.chmod(private_root, PRIVATE_MODE)  # also when kept from an earlier backend
            return cls(runs=runs, private_root=private_root, owns_private_root=False)
        short = pathlib.Path(tempfile.mkdtemp(prefix="crucible-run-"))
        return cls(runs=runs, private_root=short, owns_private_root=True)

    def make_run(self, eval_id: str) -> RunDirs:
        """Fresh directories for one run (each name unique, so a retried id never collides)."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in eval_id)[:64]
        work = pathlib.Path(tempfile.mkdtemp(prefix=f"{safe}-", dir=self.runs))
        (work / "tmp").mkdir()
        private = pathlib.Path(tempfile.mkdtemp(prefix="", dir=self.private_root))  # 0700
        (private / SPOOL_DIR).mkdir(mode=PRIVATE_MODE)
        return RunDirs(work=work, private=private)

    def close(self) -> None:
        if self.owns_private_root:
            shutil.rmtree(self.private_root, ignore_errors=True)


def _socket_path_length(private_root: pathlib.Path) -> int:
    return len(os.fsencode(private_root)) + 2 + _RANDOM_NAME_LENGTH + len(channel.SOCKET_NAME)
