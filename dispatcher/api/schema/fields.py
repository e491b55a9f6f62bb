"""The rules of request fields, each a function returning the one message for a bad value
(None when it is good), and ``body_problems``: the rules across a body's keys that a model
cannot express. Where the OpenAPI document states a rule as a pattern, the rule matches that
very pattern (``api.schema.patterns``).
"""

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

from dispatcher import quantities, user_env
from dispatcher.api.schema import patterns

_LABEL_RULE = "alphanumerics, '-', '_', '.', beginning and ending with an alphanumeric"
_LABEL_KEY = patterns.compile_full(patterns.LABEL_KEY)
_LABEL_VALUE = patterns.compile_full(patterns.LABEL_VALUE)
_CPU_FORMS = "millicores ('250m'), cores ('2') or cores with up to three decimals ('0.5')"
_MEMORY_FORMS = "a whole number with an optional suffix ('512Mi', '1G', '1048576')"


def text_problem(text: str) -> str | None:
    """Text that goes to a process (argv, environment) must be encodable, without NUL."""
    if "\x00" in text:
        return "must not contain NUL characters"
    if patterns.has_surrogates(text):
        return "must be valid Unicode text (no lone surrogates)"
    return None


def label_problem(key: str, value: object) -> str | None:
    if not _LABEL_KEY.fullmatch(key):
        return f"key must be 1-63 characters: {_LABEL_RULE}"
    if isinstance(value, str) and not _LABEL_VALUE.fullmatch(value):
        return f"value must be at most 63 characters: {_LABEL_RULE}"
    return None


# The configured maxima, parsed once per value rather than on every request.
_max_millis = functools.cache(quantities.cpu_millis)
_max_bytes = functools.cache(quantities.memory_bytes)


@functools.cache
def _cpu_pattern(max_millis: int) -> re.Pattern[str]:
    return patterns.compile_full(patterns.cpu(max_millis))


@functools.cache
def _memory_pattern(max_bytes: int) -> re.Pattern[str]:
    return patterns.compile_full(patterns.memory(max_bytes))


def cpu_problem(value: object, maximum: str) -> str | None:
    """A CPU limit: a string in one of the forms the schema states, or a JSON number of cores
    that is a whole number of millicores; above zero, at most ``maximum``."""
    max_millis = _max_millis(maximum)
    if isinstance(value, str):
        if _cpu_pattern(max_millis).fullmatch(value):
            return None
        return _why(value, quantities.cpu_millis, max_millis, maximum, _CPU_FORMS)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _why(value, quantities.cpu_millis, max_millis, maximum, _CPU_FORMS)
    return "must be a quantity string such as '500m' or a number of cores"


def memory_problem(value: object, maximum: str) -> str | None:
    """A memory limit: a string in the forms the schema states, or a JSON integer of bytes;
    above zero, at most ``maximum``."""
    max_bytes = _max_bytes(maximum)
    if isinstance(value, str):
        if _memory_pattern(max_bytes).fullmatch(value):
            return None
        return _why(value, quantities.memory_bytes, max_bytes, maximum, _MEMORY_FORMS)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and not value.is_integer():
            return "must be a whole number of bytes"
        return _why(value, quantities.memory_bytes, max_bytes, maximum, _MEMORY_FORMS)
    return "must be a quantity string such as '512Mi' or a number of bytes"


def _why(
    value: object, parse: Callable[[object], int], highest: int, maximum: str, forms: str
) -> str | None:
    """The message for a value, from the most telling rule it breaks; None for a number in
    range (strings were judged by their pattern already)."""
    try:
        amount = parse(value)
    except quantities.QuantityError as e:
        return str(e)
    if amount > highest:
        return f"must be at most {maximum}"
    return None if not isinstance(value, str) else f"must be written as {forms}"


def body_problems(body: Mapping[str, Any]) -> list[dict[str, str]]:
    """Checks the models cannot express per field: the code/command choice, and per-entry rules
    for env and labels (reported as ``env.NAME`` / ``labels.KEY``)."""
    found: list[dict[str, str]] = []
    choice = _code_xor_command(body)
    if choice is not None:
        found.append(choice)
    for name, value in _dict_items(body.get("env")):
        message = user_env.problem(name) or _env_value_problem(value)
        if message:
            found.append({"field": f"env.{name}", "message": message})
    for key, value in _dict_items(body.get("labels")):
        message = label_problem(key, value)
        if message:
            found.append({"field": f"labels.{key}", "message": message})
    return found


def _code_xor_command(body: Mapping[str, Any]) -> dict[str, str] | None:
    has_code, has_command = body.get("code") is not None, body.get("command") is not None
    if has_code and has_command:
        return {"field": "command", "message": "give either code or command, not both"}
    if not has_code and not has_command:
        return {"field": "code", "message": "code or command is required"}
    return None


def _dict_items(value: object) -> list[tuple[str, object]]:
    return list(value.items()) if isinstance(value, dict) else []


def _env_value_problem(value: object) -> str | None:
    return text_problem(value) if isinstance(value, str) else None
