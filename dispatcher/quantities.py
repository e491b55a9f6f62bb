"""Kubernetes resource quantities (``512Mi``, ``1G``, ``500m``, ``0.5``, ``2``, ``1e3``).

Parsed exactly with ``Decimal`` as the API server does (apimachinery ``resource.Quantity``), then
reduced to integers: CPU in millicores, memory in bytes. Canonical forms make ``0.5`` and
``500m`` the same request for idempotency.
"""

import decimal
import re

_SUFFIXES: dict[str, decimal.Decimal] = {
    "": decimal.Decimal(1),
    "n": decimal.Decimal("1e-9"),
    "u": decimal.Decimal("1e-6"),
    "m": decimal.Decimal("1e-3"),
    "k": decimal.Decimal("1e3"),
    "M": decimal.Decimal("1e6"),
    "G": decimal.Decimal("1e9"),
    "T": decimal.Decimal("1e12"),
    "P": decimal.Decimal("1e15"),
    "E": decimal.Decimal("1e18"),
    "Ki": decimal.Decimal(2**10),
    "Mi": decimal.Decimal(2**20),
    "Gi": decimal.Decimal(2**30),
    "Ti": decimal.Decimal(2**40),
    "Pi": decimal.Decimal(2**50),
    "Ei": decimal.Decimal(2**60),
}
# The exponent form comes before the bare "E" (exa) suffix, as in apimachinery's grammar.
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>[eE][+-]?[0-9]{1,3}|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$"
)
_MAX_TEXT = 64
# Exact arithmetic for any quantity the grammar admits (exponents are at most three digits).
_CONTEXT = decimal.Context(prec=80, Emax=10_000, Emin=-10_000)

_MEMORY_UNITS = [
    ("Ei", 2**60), ("E", 10**18), ("Pi", 2**50), ("P", 10**15), ("Ti", 2**40),
    ("T", 10**12), ("Gi", 2**30), ("G", 10**9), ("Mi", 2**20), ("M", 10**6),
    ("Ki", 2**10), ("k", 10**3),
]  # fmt: skip


class QuantityError(ValueError):
    """The text is not a quantity, or not one allowed here; the message is user-facing."""


def parse(value: object) -> decimal.Decimal:
    """A quantity as an exact number. Accepts strings and JSON numbers (not booleans)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError("must be a quantity string such as '512Mi' or '500m'")
    text = value if isinstance(value, str) else repr(value)
    match = _QUANTITY.match(text) if len(text) <= _MAX_TEXT else None
    if match is None:
        raise QuantityError(f"{str(value)[:_MAX_TEXT]!r} is not a Kubernetes quantity")
    number = _CONTEXT.create_decimal(match["number"])
    suffix = match["suffix"] or ""
    if suffix not in _SUFFIXES:  # an exponent ("e3"), not "E" (exa) or "Ei" (exbi)
        return _CONTEXT.multiply(number, _CONTEXT.power(10, int(suffix[1:])))
    return _CONTEXT.multiply(number, _SUFFIXES[suffix])


def cpu_millis(value: object) -> int:
    """CPU in millicores; must be positive and a whole number of millicores."""
    millis = _CONTEXT.multiply(parse(value), decimal.Decimal(1000))
    if millis <= 0:
        raise QuantityError("must be greater than zero")
    if millis != millis.to_integral_value():
        raise QuantityError("must be a whole number of millicores (at least 1m)")
    return int(millis)


def memory_bytes(value: object) -> int:
    """Memory in bytes; must be positive and a whole number of bytes."""
    amount = parse(value)
    if amount <= 0:
        raise QuantityError("must be greater than zero")
    if amount != amount.to_integral_value():
        raise QuantityError("must be a whole number of bytes")
    return int(amount)


def format_cpu(millis: int) -> str:
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def format_memory(amount: int) -> str:
    """The shortest exact form, binary suffixes first on ties: 1073741824 -> ``1Gi``."""
    best = str(amount)
    for suffix, unit in _MEMORY_UNITS:
        if amount % unit == 0:
            candidate = f"{amount // unit}{suffix}"
            if len(candidate) < len(best):
                best = candidate
    return best
