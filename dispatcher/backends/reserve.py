"""Backends that take a submission in the record's own round trip (the local backend).

A backend whose queue lives in this process, noting in Redis only which submissions it holds,
need not make a round trip of its own: ``reserve`` holds a queue slot at once, without I/O;
``create_record.lua`` writes the backend's ``entry`` in the step that creates the record (so
only then); the submitter then calls ``commit`` (created: the submission is the backend's) or
``release`` (not created: an existing id, a tenant over its limit, a failed round trip).
``reserve`` returning None (queue full, backend closing) sends the submission the way of every
backend: record first, then ``Backend.submit``, which answers with the error.
"""

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from dispatcher.backends.base import Submission
from dispatcher.store.layout import QueueEntry


@dataclasses.dataclass(frozen=True)
class Reservation:
    job_name: str
    entry: QueueEntry
    commit: Callable[[], Awaitable[None]]
    release: Callable[[], None]


@runtime_checkable
class Reserving(Protocol):
    def reserve(self, submission: Submission) -> Reservation | None:
        """A slot for ``submission``, or None: submit it through ``Backend.submit``."""
        ...
