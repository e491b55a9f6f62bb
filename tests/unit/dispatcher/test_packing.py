"""The one-pass packer sends exactly the bytes redis-py's own packer sends, and long values and
memoryviews as pieces of their own, uncopied."""

import pytest
import redis.asyncio
import redis.exceptions
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.store import packing

STOCK = redis.asyncio.Connection()
ONE_PASS = packing.one_pass(redis.asyncio.Connection)()

arguments = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=40),
    st.integers(),
    st.floats(allow_nan=False),
    st.binary(min_size=6001, max_size=7000),  # above the buffer cutoff: a piece of its own
    st.binary(max_size=20).map(memoryview),
)
names = st.sampled_from(["EVALSHA", "CONFIG GET", b"XADD", b"CLIENT SETNAME", "hset"])


def _bytes(packed: list[bytes | memoryview]) -> bytes:
    return b"".join(bytes(piece) for piece in packed)


@given(names, st.lists(arguments, max_size=200))
def test_a_command_packs_to_the_same_bytes(name, args):
    assert _bytes(ONE_PASS.pack_command(name, *args)) == _bytes(STOCK.pack_command(name, *args))


def test_long_values_and_memoryviews_go_as_pieces_of_their_own():
    long, view = b"x" * 7000, memoryview(b"abc")
    packed = ONE_PASS.pack_command("SET", long, view, "tail")
    assert any(piece is long for piece in packed)
    assert any(piece is view for piece in packed)


@given(st.lists(st.tuples(names, st.lists(arguments, max_size=8)), max_size=5))
def test_a_pipeline_packs_to_the_same_bytes(commands):
    commands = [(name, *args) for name, args in commands]
    assert _bytes(ONE_PASS.pack_commands(commands)) == _bytes(STOCK.pack_commands(commands))


@pytest.mark.parametrize("bad", [True, None, object()])
def test_what_redis_py_refuses_is_refused(bad):
    with pytest.raises(redis.exceptions.DataError):
        ONE_PASS.pack_command("SET", "key", bad)


def test_the_class_is_made_once_per_base_and_not_wrapped_twice():
    made = packing.one_pass(redis.asyncio.Connection)
    assert packing.one_pass(redis.asyncio.Connection) is made
    assert packing.one_pass(made) is made
    assert issubclass(packing.one_pass(redis.asyncio.SSLConnection), redis.asyncio.SSLConnection)
