"""Which environment variables a submission may set: the one place that says so.

Refused, compared without regard to case:
- names that change how the dynamic loader, the C library or the Python interpreter behave
  before user code runs, or how crucible does (``LD_*``, ``GLIBC_TUNABLES``, ``GCONV_PATH``,
  ``PYTHON*``, ``CRUCIBLE_*``);
- the names the platform sets in the evaluation's environment itself: the local backend's
  (``backends.local.run``) and those of the chart's Job template (``EVAL_ID``, ``HOME``). A
  duplicate would replace the platform's value (Kubernetes and the local backend keep the last).
Tests hold both backends to this list.
"""

import re

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
NAME_MAX_CHARS = 256  # what the Kubernetes backend can place
DENIED_PREFIXES = ("LD_", "PYTHON", "CRUCIBLE_")
DENIED_NAMES = ("EVAL_ID", "GCONV_PATH", "GLIBC_TUNABLES", "HOME", "LANG", "PATH", "TMPDIR")
DESCRIPTION = (
    f"Names match {NAME_PATTERN}, at most {NAME_MAX_CHARS} characters. Refused, in any case: "
    f"names starting with {', '.join(DENIED_PREFIXES)} (they change how the loader, the "
    f"interpreter or crucible behave) and the names the platform sets itself: "
    f"{', '.join(DENIED_NAMES)}."
)

_NAME = re.compile(NAME_PATTERN.removeprefix("^").removesuffix("$"))


def _any_case(text: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in text)


# The refused names as one pattern (for the schema's propertyNames), without a case flag:
# ECMA 262 patterns have none inline.
DENIED_PATTERN = (
    "^(?:"
    + "|".join(
        [_any_case(p) + "[A-Za-z0-9_]*" for p in DENIED_PREFIXES]
        + [_any_case(n) for n in DENIED_NAMES]
    )
    + ")$"
)


def problem(name: str) -> str | None:
    """Why ``name`` may not be set, or None."""
    if not _NAME.fullmatch(name) or len(name) > NAME_MAX_CHARS:
        return (
            f"is not a valid variable name (letters, digits, underscore; no leading digit; "
            f"at most {NAME_MAX_CHARS} characters)"
        )
    upper = name.upper()
    prefix = next((p for p in DENIED_PREFIXES if upper.startswith(p)), None)
    if prefix is not None:
        return (
            f"names starting with {prefix} are reserved: they change how the loader, the "
            "interpreter or crucible behave"
        )
    if upper in DENIED_NAMES:
        return "is set by the platform itself"
    return None
