"""Regular expressions the API validates with and the OpenAPI document states, built once so
the two cannot differ.

They use only what ECMA 262 (JSON Schema), Rust (pydantic) and Python agree on: classes,
counted repeats, ``(?:…)`` and ``|``, anchored with ``^…$``. Python code matches them with
``fullmatch`` (its ``$`` would also accept a trailing newline).

Bounded numbers (a CPU limit of at most ``4``, a stream id below 2**64) are spelled as digit
ranges, the way a schema can state a maximum for a string: ``integer_range(1, 4000)``.
"""

import re

# An evaluation's id: the path parameter, the request field, the record key part.
EVAL_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
# Text that can reach a process (argv, environment): NUL cannot; lone surrogates are refused
# too (they cannot be encoded), but only a pattern over code points could say so.
TEXT = r"^[^\x00]*$"
# Label keys and values as Kubernetes checks them (a key gets crucible's own prefix).
LABEL_KEY = r"^[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
LABEL_VALUE = r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"

_U64_MAX = 2**64 - 1
_MILLI = 1000
# Memory suffixes a limit may carry, decimal and binary (Kubernetes quantities).
MEMORY_UNITS: dict[str, int] = {
    "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip
_SURROGATE = re.compile("[\ud800-\udfff]")


def compile_full(pattern: str) -> re.Pattern[str]:
    """``pattern`` for ``fullmatch``: the anchors go, Python's ``$`` would allow a newline."""
    return re.compile(pattern.removeprefix("^").removesuffix("$"))


def has_surrogates(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def integer_range(low: int, high: int) -> str:
    """A group matching the decimal integers from ``low`` to ``high``, no leading zeros."""
    assert 0 <= low <= high, (low, high)
    parts = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        first = max(low, 10 ** (digits - 1) if digits > 1 else 0)
        last = min(high, 10**digits - 1)
        parts.append(_digits_between(str(first), str(last)))
    return _group(parts)


def padded_range(low: int, high: int, width: int) -> str:
    """A group matching ``low``..``high`` written with exactly ``width`` digits (leading
    zeros included): the fraction digits of a decimal."""
    assert 0 <= low <= high < 10**width, (low, high, width)
    return _group([_digits_between(str(low).zfill(width), str(high).zfill(width))])


def _digits_between(low: str, high: str) -> str:
    """Digit strings of one length from ``low`` to ``high``, as an alternation."""
    if low == high:
        return low
    if set(low) == {"0"} and set(high) == {"9"}:
        return f"[0-9]{{{len(low)}}}" if len(low) > 1 else "[0-9]"
    if len(low) == 1:
        return f"[{low}-{high}]"
    head_low, head_high, rest = int(low[0]), int(high[0]), len(low) - 1
    if head_low == head_high:
        return low[0] + _group([_digits_between(low[1:], high[1:])])
    parts = []
    # The first leading digit with its own tail range, the full middle, the last one's range.
    middle_from = head_low if set(low[1:]) == {"0"} else head_low + 1
    middle_to = head_high if set(high[1:]) == {"9"} else head_high - 1
    if middle_from > head_low:
        parts.append(low[0] + _group([_digits_between(low[1:], "9" * rest)]))
    if middle_from <= middle_to:
        lead = str(middle_from) if middle_from == middle_to else f"[{middle_from}-{middle_to}]"
        parts.append(lead + (f"[0-9]{{{rest}}}" if rest > 1 else "[0-9]"))
    if middle_to < head_high:
        parts.append(high[0] + _group([_digits_between("0" * rest, high[1:])]))
    return "|".join(parts)


def _group(parts: list[str]) -> str:
    return f"(?:{'|'.join(parts)})" if len(parts) > 1 or "|" in parts[0] else parts[0]


def stream_id() -> str:
    """A Redis stream entry id, ``MS`` or ``MS-SEQ``, each part below 2**64."""
    part = integer_range(0, _U64_MAX)
    return f"^{part}(?:-{part})?$"


def stream_position(partitions: int) -> str:
    """Where a reader of the global stream is: its entry id, or on a Redis Cluster one per
    partition, comma-separated (``api.streams.event_hub``). Those ids have at most 19 digits
    a part (below 2**64, and above any real one: milliseconds since 1970 have 13), which
    keeps the pattern short enough for clients to check."""
    if partitions == 1:
        return stream_id()
    one = "[0-9]{1,19}(?:-[0-9]{1,19})?"
    # Spelled out, not ``{N}``: some clients' generators ignore a counted group.
    return "^" + ",".join([one] * partitions) + "$"


def cpu(max_millis: int) -> str:
    """CPU limits from ``1m`` to ``max_millis``: millicores (``250m``), whole cores (``2``) or
    cores with up to three decimals (``0.5``, ``1.25``)."""
    whole, rest = divmod(max_millis, _MILLI)
    forms = [integer_range(1, max_millis) + "m"]
    if whole >= 1:
        forms.append(integer_range(1, whole))
    # 0.x: any fraction but zero, up to the maximum when that is below one core.
    forms.append(r"0\." + _fractions(1, rest if whole == 0 else _MILLI - 1))
    if whole >= 2:
        forms.append(integer_range(1, whole - 1) + r"\.[0-9]{1,3}")
    if whole >= 1:
        forms.append(f"{whole}\\." + _fractions(0, rest))
    return f"^(?:{'|'.join(forms)})$"


def _fractions(low_millis: int, high_millis: int) -> str:
    """One to three fraction digits worth ``low_millis``..``high_millis`` thousandths."""
    parts = []
    for width in (1, 2, 3):
        scale = 10 ** (3 - width)
        low, high = -(-low_millis // scale), high_millis // scale
        if low <= high:
            parts.append(padded_range(low, high, width))
    return _group(parts)


def memory(max_bytes: int) -> str:
    """Memory limits from one byte to ``max_bytes``: a whole number with an optional suffix
    (``536870912``, ``512Mi``, ``1G``)."""
    forms = [
        integer_range(1, max_bytes // unit) + suffix
        for suffix, unit in MEMORY_UNITS.items()
        if max_bytes // unit >= 1
    ]
    return f"^(?:{'|'.join(forms)})$"
