"""The patterns the OpenAPI document states match exactly what they describe: bounded integers,
stream ids, CPU and memory limits (checked against plain arithmetic on the same text)."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.api.schema import fields, patterns

U64 = 2**64 - 1
MEMORY_SUFFIXES = [s for s in patterns.MEMORY_UNITS if s]
# Text shaped like quantities, right and wrong: leading zeros, fractions, suffixes, signs.
QUANTITY_TEXT = st.from_regex(
    r"[+-]?[0-9]{1,12}(\.[0-9]{0,4})?(m|k|M|G|Ki|Mi|Gi|Ti|E|Ei|e3|u)?", fullmatch=True
)
ANY_TEXT = st.one_of(QUANTITY_TEXT, st.text(max_size=12))


def full(pattern: str) -> re.Pattern[str]:
    return patterns.compile_full(pattern)


@given(st.integers(0, 10**20), st.integers(0, 10**20), st.integers(0, 10**21))
def test_integer_range_matches_exactly_the_integers_in_range(a: int, b: int, n: int) -> None:
    low, high = sorted((a, b))
    pattern = re.compile(patterns.integer_range(low, high))
    assert bool(pattern.fullmatch(str(n))) == (low <= n <= high)
    assert not pattern.fullmatch("0" + str(n))  # no leading zeros


@pytest.mark.parametrize(("low", "high"), [(0, 0), (0, 9), (1, 10), (7, 7), (99, 100), (5, 1234)])
def test_integer_range_on_every_value_near_the_bounds(low: int, high: int) -> None:
    pattern = re.compile(patterns.integer_range(low, high))
    for n in range(0, high + 20):
        assert bool(pattern.fullmatch(str(n))) == (low <= n <= high), n


def _stream_id(text: str) -> bool:
    parts = text.split("-")
    return 1 <= len(parts) <= 2 and all(
        re.fullmatch("0|[1-9][0-9]*", p) and int(p) <= U64 for p in parts
    )


@given(
    st.one_of(
        st.integers(0, 2**66).map(str),
        st.tuples(st.integers(0, 2**66), st.integers(0, 2**66)).map(lambda t: f"{t[0]}-{t[1]}"),
        st.text(alphabet="0123456789-", max_size=44),
    )
)
def test_stream_id_pattern_is_below_two_to_the_64(text: str) -> None:
    assert bool(full(patterns.stream_id()).fullmatch(text)) == _stream_id(text)


def test_stream_id_pattern_bounds() -> None:
    pattern = full(patterns.stream_id())
    assert pattern.fullmatch(f"{U64}-{U64}")
    assert not pattern.fullmatch(f"{U64 + 1}-0")
    assert not pattern.fullmatch("99999999999999999999999")
    assert not pattern.fullmatch("1-0\n")


def _cpu_millis(text: str) -> int | None:
    """What the schema means by a CPU text: millicores, cores, cores with <= 3 decimals."""
    if m := re.fullmatch(r"(0|[1-9][0-9]*)m", text):
        return int(m[1])
    if m := re.fullmatch(r"(0|[1-9][0-9]*)(?:\.([0-9]{1,3}))?", text):
        return int(m[1]) * 1000 + int((m[2] or "0").ljust(3, "0"))
    return None


@pytest.mark.parametrize("max_millis", [1, 5, 500, 999, 1000, 2500, 4000, 64_000])
@given(text=ANY_TEXT)
def test_cpu_pattern_is_the_cpu_rule(max_millis: int, text: str) -> None:
    millis = _cpu_millis(text)
    expected = millis is not None and 1 <= millis <= max_millis
    assert bool(full(patterns.cpu(max_millis)).fullmatch(text)) == expected
    maximum = f"{max_millis}m"
    assert (fields.cpu_problem(text, maximum) is None) == expected


def _memory_bytes(text: str) -> int | None:
    suffixes = "|".join(MEMORY_SUFFIXES)
    if m := re.fullmatch(rf"(0|[1-9][0-9]*)({suffixes})?", text):
        return int(m[1]) * patterns.MEMORY_UNITS[m[2] or ""]
    return None


@pytest.mark.parametrize("max_bytes", [1, 1000, 2**20, 8 * 2**30, 10**12 + 7])
@given(text=ANY_TEXT)
def test_memory_pattern_is_the_memory_rule(max_bytes: int, text: str) -> None:
    amount = _memory_bytes(text)
    expected = amount is not None and 1 <= amount <= max_bytes
    assert bool(full(patterns.memory(max_bytes)).fullmatch(text)) == expected
    assert (fields.memory_problem(text, str(max_bytes)) is None) == expected


@pytest.mark.parametrize(
    ("value", "accepted"),
    [(0.5, True), (4, True), (4.0, True), (0.001, True), (0.0015, False), (0, False),
     (-1, False), (4.001, False), (1e-05, False), (float("inf"), False), (True, False)],
)  # fmt: skip
def test_cpu_as_a_number_is_a_whole_number_of_millicores_up_to_the_maximum(
    value: object, accepted: bool
) -> None:
    assert (fields.cpu_problem(value, "4") is None) == accepted


@pytest.mark.parametrize(
    ("value", "accepted"),
    [(1, True), (512.0, True), (8 * 2**30, True), (8 * 2**30 + 1, False), (0, False),
     (0.5, False), (True, False)],
)  # fmt: skip
def test_memory_as_a_number_is_whole_bytes_up_to_the_maximum(value: object, accepted: bool) -> None:
    assert (fields.memory_problem(value, "8Gi") is None) == accepted
