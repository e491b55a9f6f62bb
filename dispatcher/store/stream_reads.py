"""Event stream entries as redis-py returns them from XREAD and XREADGROUP."""

from typing import Any

Entry = tuple[bytes, dict[bytes, bytes]]


def entries(reply: Any) -> list[Entry]:
    """The entries of an XREAD or XREADGROUP reply for one stream (RESP2 list or RESP3
    mapping)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return list(next(iter(reply.values()))[0])
    return list(reply[0][1])
