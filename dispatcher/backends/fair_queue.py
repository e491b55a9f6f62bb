"""A waiting line that is fair across tenants: one FIFO per tenant, served round robin.

One tenant's burst of a thousand submissions then delays another tenant's single evaluation
by one turn, not by a thousand: the next slot goes to the tenant after the one served last.
The tenant is the qualified id's prefix (``wire.tenancy``).
"""

import collections
from collections.abc import Iterator
from typing import Generic, TypeVar

from wire import tenancy

T = TypeVar("T")


class FairQueue(Generic[T]):
    def __init__(self) -> None:
        self._lines: collections.OrderedDict[str, collections.OrderedDict[str, T]] = (
            collections.OrderedDict()
        )
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __contains__(self, eval_id: object) -> bool:
        if not isinstance(eval_id, str):
            return False
        line = self._lines.get(tenancy.split(eval_id)[0])
        return line is not None and eval_id in line

    def __iter__(self) -> Iterator[str]:
        """Every waiting id (a snapshot's order is not the serving order)."""
        return iter([eval_id for line in self._lines.values() for eval_id in line])

    def put(self, eval_id: str, item: T) -> None:
        tenant = tenancy.split(eval_id)[0]
        line = self._lines.setdefault(tenant, collections.OrderedDict())
        if eval_id not in line:
            self._size += 1
        line[eval_id] = item

    def pop(self, eval_id: str) -> T | None:
        """Take ``eval_id`` out of the line (a cancel); None if it is not waiting."""
        tenant = tenancy.split(eval_id)[0]
        line = self._lines.get(tenant)
        if line is None or eval_id not in line:
            return None
        item = line.pop(eval_id)
        self._size -= 1
        if not line:
            del self._lines[tenant]
        return item

    def pop_next(self) -> tuple[str, T]:
        """The oldest submission of the next tenant in turn; that tenant goes to the back."""
        tenant, line = next(iter(self._lines.items()))
        eval_id, item = line.popitem(last=False)
        self._size -= 1
        del self._lines[tenant]
        if line:
            self._lines[tenant] = line  # to the back of the round
        return eval_id, item
