"""Kubernetes quantities: exact parsing, canonical forms, junk rejected."""

import decimal

import pytest

from dispatcher import quantities


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("512Mi", 512 * 2**20),
        ("1G", 10**9),
        ("500m", decimal.Decimal("0.5")),
        ("0.5", decimal.Decimal("0.5")),
        ("2", 2),
        (".5", decimal.Decimal("0.5")),
        ("1.", 1),
        ("1e3", 1000),
        ("1E3", 1000),
        ("2E", 2 * 10**18),
        ("1Ei", 2**60),  # exbi, not an exponent
        ("1Ki", 1024),
        ("100u", decimal.Decimal("0.0001")),
        ("+3k", 3000),
        (2, 2),
        (0.25, decimal.Decimal("0.25")),
    ],
)
def test_parses_quantities_exactly(text: object, value: object):
    assert quantities.parse(text) == value


@pytest.mark.parametrize(
    "junk",
    [
        "",
        " 1",
        "1 ",
        "1Mb",
        "Mi",
        "1.2.3",
        "1e",
        "1e1000",
        "0x10",
        "1_000",
        "∞",
        "1" * 65,
        None,
        True,
        [],
        {},
        float("inf"),
        float("nan"),
        "1KiB",
        "5i",
    ],
)
def test_rejects_what_is_not_a_quantity(junk: object):
    with pytest.raises(quantities.QuantityError):
        quantities.parse(junk)


@pytest.mark.parametrize(
    ("text", "millis", "canonical"),
    [
        ("500m", 500, "500m"),
        ("0.5", 500, "500m"),
        ("2", 2000, "2"),
        (1.5, 1500, "1500m"),
        ("1e-3", 1, "1m"),
    ],
)
def test_cpu_in_millicores(text: object, millis: int, canonical: str):
    assert quantities.cpu_millis(text) == millis
    assert quantities.format_cpu(millis) == canonical


@pytest.mark.parametrize("bad", ["0", "-1", "0.0001", "100u"])
def test_cpu_must_be_positive_whole_millicores(bad: str):
    with pytest.raises(quantities.QuantityError):
        quantities.cpu_millis(bad)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("512Mi", "512Mi"),
        ("1024Mi", "1Gi"),
        ("1G", "1G"),
        ("1.5Gi", "1536Mi"),
        ("1000", "1k"),
        ("1023", "1023"),
        (2**20, "1Mi"),
        ("1024000", "1024k"),
    ],
)
def test_memory_canonical_form_is_exact_and_short(text: object, canonical: str):
    amount = quantities.memory_bytes(text)
    assert quantities.format_memory(amount) == canonical
    assert quantities.memory_bytes(canonical) == amount


@pytest.mark.parametrize("bad", ["0", "-1Mi", "500m", "0.5"])
def test_memory_must_be_positive_whole_bytes(bad: str):
    with pytest.raises(quantities.QuantityError):
        quantities.memory_bytes(bad)
