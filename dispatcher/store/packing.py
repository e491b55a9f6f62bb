"""Commands packed into the Redis protocol in one pass.

redis-py's ``pack_command`` joins its growing buffer again at every argument, so packing is
quadratic in a command's size; a submission's two scripts carry about 40 arguments, one of them
the whole record, and packing them took 7 % of the dispatcher's CPU per submission (py-spy,
``bench/dispatcher_throughput.py``). Here each argument is appended once and the buffer joined
once: the same bytes (``tests/unit/store/test_packing.py`` compares them), in a third less
time. Values longer than the connection's buffer cutoff, and memoryviews, still go out as
pieces of their own, not copied, as redis-py sends them.
"""

import itertools
from typing import Any

import redis.asyncio
from redis.asyncio.connection import AbstractConnection


class OnePassPacking:
    """Ahead of a redis-py connection class in the bases: its ``pack_command``, in one pass."""

    _buffer_cutoff: int
    encoder: Any

    def pack_command(self, *args: Any) -> list[Any]:  # bytes, and memoryviews as given
        first = args[0]
        # A command name with literal arguments in it ("CONFIG GET") goes as separate ones.
        if isinstance(first, str):
            head = first.encode().split()
        elif b" " in first:
            head = first.split()
        else:
            head = [first]
        rest = args[1:]
        cutoff = self._buffer_cutoff
        encode = self.encoder.encode
        pieces: list[bytes] = [b"*%d\r\n" % (len(head) + len(rest))]
        output: list[Any] = []
        for arg in itertools.chain(head, rest):
            data = encode(arg)
            size = len(data)
            pieces.append(b"$%d\r\n" % size)
            if size > cutoff or isinstance(data, memoryview):
                output.append(b"".join(pieces))
                output.append(data)
                pieces = [b"\r\n"]
            else:
                pieces.append(data)
                pieces.append(b"\r\n")
        output.append(b"".join(pieces))
        return output


_CLASSES: dict[type, type] = {}


def one_pass(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    """``connection_class`` packing in one pass (a class made once per base)."""
    if issubclass(connection_class, OnePassPacking):
        return connection_class
    made = _CLASSES.get(connection_class)
    if made is None:
        name = f"OnePass{connection_class.__name__}"
        made = _CLASSES[connection_class] = type(name, (OnePassPacking, connection_class), {})
    return made


def use_one_pass(pool: redis.asyncio.ConnectionPool) -> None:
    """The connections ``pool`` makes from now on pack in one pass."""
    pool.connection_class = one_pass(pool.connection_class)
