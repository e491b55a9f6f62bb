"""The one interface both backends implement, and what they are given."""

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from dispatcher.store import records

# How a ``code`` request runs, as records show it: this, then the program text. Backends do not
# pass the text in argv (Linux takes 128 KiB per argument; code may be 1 MiB): the local backend
# feeds it on the interpreter's stdin, the Kubernetes one has the sidecar fetch it into a file.
CODE_COMMAND = ("python", "-u", "-c")

# The reason a ``cancelled`` event gives when a user asked for it (API or local backend alike).
CANCEL_REASON = "cancelled by request"


def code_of(command: Sequence[str]) -> str | None:
    """The program text of a ``code`` submission's command; None for any other command."""
    if len(command) == len(CODE_COMMAND) + 1 and tuple(command[:-1]) == CODE_COMMAND:
        return command[-1]
    return None


@dataclasses.dataclass(frozen=True)
class Submission:
    """A validated evaluation, ready to run. ``command`` is the user's command, unwrapped."""

    eval_id: str
    command: list[str]
    image: str
    timeout_seconds: float
    resources: records.Resources
    env: dict[str, str]
    labels: dict[str, str]


@dataclasses.dataclass(frozen=True)
class Scheduled:
    """What a backend reports once it has taken a submission."""

    job_name: str


class Backend(Protocol):
    """Backends publish their own events (``scheduled``, ``pending``, verdicts, ``cancelled``)
    through ``dispatcher.store.publish.Publisher`` with ``source="dispatcher"``; the status
    store hears of them through the global stream like of any other event."""

    name: str

    async def start(self) -> None:
        """Open clients, start background work (reconciler, workers). Called once."""

    async def close(self) -> None:
        """Stop background work and release what ``start`` opened."""

    async def submit(self, submission: Submission) -> Scheduled:
        """Take the submission or raise ``errors.QueueFullError`` /
        ``errors.BackendUnavailableError``. Must not leave anything half-created on failure."""
        ...

    async def cancel(self, eval_id: str) -> bool:
        """Stop the evaluation (kill the process group / delete the Job). True if something was
        stopped; the caller publishes ``cancelled``."""
        ...

    async def ready(self) -> bool:
        """Readiness: can the backend take work right now."""
        ...

    def evaluation_ended(self, eval_id: str) -> None:
        """The status store applied an end: a backend that admits work may start more."""

    async def queue_position(self, eval_id: str) -> int | None:
        """Where a ``queued`` evaluation stands now (1 = next); None if it is not queued."""
        ...
