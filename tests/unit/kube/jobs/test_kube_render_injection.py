"""Rendering is injection-proof: hostile values never change the Job's structure.

Every user field gets strings built from YAML syntax, Helm and Kubernetes expansion syntax, our
own placeholder syntax, newlines, quotes and lone surrogates. The rendered tree must have exactly
the reference's paths and types, and each value must land only where a placeholder put it.
"""

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher import errors, user_env
from dispatcher.backends.kube.jobs import templates
from tests.unit.kube import kube_samples

FRAGMENTS = [
    "'",
    '"',
    "\n",
    "\r\n",
    "\t",
    ": ",
    "- ",
    "# ",
    "---\n",
    "...",
    "key: value\n",
    "&anchor ",
    "*anchor",
    "<<: *anchor",
    "!!python/object/apply:os.system ['id']",
    "!!binary aGk=",
    "!Ref x",
    "{{ .Values.x }}",
    '{{- include "x" . }}',
    "${crucible.eval_id}",
    "${crucible.command}",
    "${crucible.",
    "$(HOME)",
    "$$(HOME)",
    "$",
    "${HOME}",
    "[1, 2]",
    "{a: b}",
    "null",
    "~",
    "true",
    "0x1F",
    "1e3",
    "\ud800",
    "\udfff",
    "é",
    "🦀",
    "\\",
    "%TAG",
]
HOSTILE = st.one_of(
    st.text(st.characters(exclude_categories=(), exclude_characters="\x00"), max_size=40),
    st.lists(st.sampled_from(FRAGMENTS), max_size=8).map("".join),
)
ENV_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True).filter(
    lambda n: user_env.problem(n) is None
)
TIMEOUT_SENTINEL = 987654
TEMPLATE = templates.parse(kube_samples.EVERYWHERE)
SCALARS = ("job_name", "eval_id", "eval_label", "image", "cpu", "memory", "created_at")


def leaves(node: Any, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], Any]:
    if isinstance(node, dict):
        found: dict[tuple[Any, ...], Any] = {path: dict}
        for k, v in node.items():
            found.update(leaves(v, (*path, k)))
        return found
    if isinstance(node, list):
        found = {path: list}
        for i, v in enumerate(node):
            found.update(leaves(v, (*path, i)))
        return found
    return {path: node}


def expanded_by_kubelet(path: tuple[Any, ...]) -> bool:
    if "containers" not in path:
        return False
    rest = path[path.index("containers") + 2 :]
    return rest[:1] in (("command",), ("args",)) or (rest[:1] == ("env",) and rest[-1] == "value")


def sentinel_values(n_command: int, env_names: list[str]) -> templates.Values:
    return templates.Values(
        **{name: f"SENTINEL{i}X" for i, name in enumerate(SCALARS)},
        command=[f"SENTINELC{i}X" for i in range(n_command)],
        env={name: f"SENTINELE{i}X" for i, name in enumerate(env_names)},
        timeout_seconds=TIMEOUT_SENTINEL,
    )


@settings(max_examples=150, deadline=None)
@given(
    scalars=st.fixed_dictionaries({name: HOSTILE for name in SCALARS}),
    command=st.lists(HOSTILE, min_size=1, max_size=5),
    env=st.dictionaries(ENV_NAMES, HOSTILE, max_size=4),
    timeout=st.integers(min_value=1, max_value=10**6),
)
def test_hostile_values_never_change_the_structure(
    scalars: dict[str, str], command: list[str], env: dict[str, str], timeout: int
) -> None:
    hostile = templates.Values(**scalars, command=command, env=env, timeout_seconds=timeout)
    reference = TEMPLATE.render(sentinel_values(len(command), list(env)))
    rendered = TEMPLATE.render(hostile)

    by_sentinel = {f"SENTINEL{i}X": scalars[name] for i, name in enumerate(SCALARS)}
    by_sentinel |= {f"SENTINELC{i}X": arg for i, arg in enumerate(command)}
    by_sentinel |= {f"SENTINELE{i}X": value for i, value in enumerate(env.values())}
    by_sentinel[str(TIMEOUT_SENTINEL)] = str(timeout)
    pattern = re.compile("|".join(re.escape(s) for s in by_sentinel))

    want, got = leaves(reference), leaves(rendered)
    assert got.keys() == want.keys()
    for path, ref in want.items():
        value = got[path]
        assert type(value) is type(ref), path
        if ref == TIMEOUT_SENTINEL:
            assert value == timeout
        elif isinstance(ref, str):
            escape = expanded_by_kubelet(path)

            def place(m: re.Match[str], escape: bool = escape) -> str:
                text = by_sentinel[m.group(0)]
                return text.replace("$", "$$") if escape else text

            assert value == pattern.sub(place, ref), path
        else:
            assert value == ref, path
    # It still serialises as the API client will send it.
    assert json.loads(json.dumps(rendered)).keys() == rendered.keys()


def test_an_int_stays_an_int_and_is_text_inside_command_args() -> None:
    rendered = TEMPLATE.render(kube_samples.values(timeout_seconds=45))
    assert rendered["spec"]["activeDeadlineSeconds"] == 45
    assert rendered["spec"]["template"]["spec"]["containers"][0]["args"][1] == "45"


def test_list_placeholders_splice_and_user_dollars_stay_literal() -> None:
    rendered = TEMPLATE.render(
        kube_samples.values(command=["sh", "-c", "echo $(SECRET)"], env={"X": "$(Y)", "Z": "z"})
    )
    main = rendered["spec"]["template"]["spec"]["containers"][0]
    assert main["command"] == ["sh", "-c", "echo $$(SECRET)"]
    # The template's own $(HOME) is left for the kubelet to expand.
    assert main["args"][2] == "$(HOME)"
    assert main["env"] == [
        {"name": "FIXED", "value": "$(HOME)"},
        {"name": "X", "value": "$$(Y)"},
        {"name": "Z", "value": "z"},
        {"name": "ID", "value": "e"},
    ]


def test_a_megabyte_value_is_placed_verbatim() -> None:
    big = "x: y\n- {{ }} ${crucible.eval_id} " * 40_000
    assert len(big) > 1_000_000
    rendered = TEMPLATE.render(kube_samples.values(eval_id=big, command=[big]))
    assert rendered["metadata"]["annotations"]["raw"] == big
    command = rendered["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command == [big.replace("$", "$$")]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"env": {"BAD-NAME": "1"}}, "env.BAD-NAME"),
        ({"env": {"": "1"}}, "env."),
        ({"env": {"a\nb: c": "1"}}, "env.a\nb: c"),
        ({"env": {"CRUCIBLE_SIDECAR_REDIS_URL": "redis://evil"}}, "env.CRUCIBLE_SIDECAR_REDIS_URL"),
        ({"env": {"LD_PRELOAD": "/tmp/x.so"}}, "env.LD_PRELOAD"),
        ({"env": {"A\n": "1"}}, "env.A\n"),
        ({"command": []}, "command"),
        ({"command": ["a\x00b"]}, "command"),
    ],
)
def test_invalid_values_are_refused_before_rendering(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(errors.InvalidRequestError) as caught:
        TEMPLATE.render(kube_samples.values(**overrides))
    assert field in caught.value.details
