"""The OpenAPI document states what validation enforces: a submission is valid by the schema
exactly when the dispatcher accepts it, and query and header formats are stated as checked."""

import re
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher import errors, user_env
from dispatcher.api.http import queries
from dispatcher.api.schema import openapi, patterns, requests
from dispatcher.settings import DispatcherSettings

SETTINGS = DispatcherSettings(images={"python": "python:3.11-slim", "ml": "ghcr.io/x/ml:1"})
DOCUMENT = openapi.document(SETTINGS)
SCHEMAS = DOCUMENT["components"]["schemas"]


def validator(name: str) -> Any:
    # The fuzzer's own validator (ECMA regex semantics: `$` is the end, not before a newline).
    root = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": SCHEMAS}}
    return jsonschema_rs.validator_for(root)


EVALUATION = validator("EvaluationRequest")
EXECUTE = validator("ExecuteRequest")


def accepted(parse: Any, body: object) -> bool:
    try:
        parse(body, SETTINGS)
    except errors.InvalidRequestError:
        return False
    return True


TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
INTEGERS = st.integers(-(10**6), 10**6)
QUANTITY = st.one_of(
    st.from_regex(r"[0-9]{1,5}(\.[0-9]{0,4})?(m|Mi|Gi|G|k|Ki|Ei)?", fullmatch=True),
    st.integers(-2, 10**10),
    st.sampled_from([0.5, 0.25, 4.0, 4.5, 0.0015, True, None, "lots", [], {}]),
)
ENV_NAME = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
    st.sampled_from(["LD_PRELOAD", "PYTHONPATH", "path", "CRUCIBLE_X", "A-B", "1A", "A\n", ""]),
)
EVAL_ID = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,5}", fullmatch=True)
LABEL = st.one_of(st.from_regex(r"[a-z0-9][-a-z0-9_.]{0,4}", fullmatch=True), TEXT)
FIELDS = {
    "eval_id": st.one_of(st.none(), EVAL_ID, TEXT),
    "code": st.one_of(st.none(), TEXT, st.integers()),
    "command": st.one_of(st.none(), st.lists(TEXT, max_size=3), TEXT),
    "image": st.one_of(st.none(), st.sampled_from(["python", "ghcr.io/x/ml:1", "evil", ""])),
    "timeout_seconds": st.one_of(
        st.none(), st.floats(0, 4000), st.integers(-1, 4000), st.sampled_from([True, "60"])
    ),
    "resources": st.one_of(
        st.none(), st.fixed_dictionaries({}, optional={"cpu": QUANTITY, "memory": QUANTITY})
    ),
    "env": st.one_of(st.none(), st.dictionaries(ENV_NAME, st.one_of(TEXT, INTEGERS), max_size=3)),
    "labels": st.one_of(st.none(), st.dictionaries(LABEL, st.one_of(LABEL, INTEGERS), max_size=3)),
    "unknown": st.integers(),
}
# Bodies near the valid ones, so that both answers are common.
NEAR_VALID = st.fixed_dictionaries(
    {},
    optional={
        "eval_id": EVAL_ID,
        "image": st.sampled_from(["python", "ml", "ghcr.io/x/ml:1"]),
        "timeout_seconds": st.one_of(st.floats(0.9, 3601), st.integers(1, 3600)),
        "resources": st.fixed_dictionaries(
            {},
            optional={
                "cpu": st.one_of(st.sampled_from(["500m", "0.5", "4", "4.001"]), QUANTITY),
                "memory": st.one_of(st.sampled_from(["512Mi", "1G", "8Gi", "9Gi"]), QUANTITY),
            },
        ),
        "env": st.dictionaries(ENV_NAME, TEXT, max_size=3),
        "labels": st.dictionaries(LABEL, LABEL, max_size=2),
    },
).flatmap(
    lambda rest: st.one_of(
        st.fixed_dictionaries({"code": TEXT}).map(lambda d: {**rest, **d}),
        st.fixed_dictionaries({"command": st.lists(TEXT, min_size=1, max_size=3)}).map(
            lambda d: {**rest, **d}
        ),
    )
)
BODIES = st.one_of(st.fixed_dictionaries({}, optional=FIELDS), NEAR_VALID)


@settings(max_examples=1500, deadline=None)
@given(BODIES)
def test_a_submission_is_valid_by_the_schema_exactly_when_it_is_accepted(
    body: dict[str, Any],
) -> None:
    assert EVALUATION.is_valid(body) == accepted(requests.parse_evaluation, body), body


EXECUTE_FIELDS = {
    "eval_id": FIELDS["eval_id"],
    "code": FIELDS["code"],
    "timeout": FIELDS["timeout_seconds"],
    "memory_limit": QUANTITY,
    "cpu_limit": QUANTITY,
    "command": st.lists(TEXT, max_size=1),
}


@settings(max_examples=800, deadline=None)
@given(st.fixed_dictionaries({}, optional=EXECUTE_FIELDS))
def test_an_execute_body_is_valid_by_the_schema_exactly_when_it_is_accepted(
    body: dict[str, Any],
) -> None:
    assert EXECUTE.is_valid(body) == accepted(requests.parse_execute, body), body


def test_exactly_one_of_code_and_command() -> None:
    assert EVALUATION.is_valid({"code": "1"})
    assert EVALUATION.is_valid({"command": ["ls"], "code": None})
    assert not EVALUATION.is_valid({"code": "1", "command": ["ls"]})
    assert not EVALUATION.is_valid({})


def test_limits_are_stated_with_the_settings_values() -> None:
    request = SCHEMAS["EvaluationRequest"]["properties"]
    timeout = request["timeout_seconds"]["anyOf"][0]
    assert (timeout["minimum"], timeout["maximum"]) == (1.0, SETTINGS.limits.timeout_seconds_max)
    cpu = SCHEMAS["ResourcesRequest"]["properties"]["cpu"]["anyOf"][0]["anyOf"]
    assert cpu[1]["exclusiveMinimum"] == 0
    assert not re.search(cpu[0]["pattern"], "0")
    assert not re.search(cpu[0]["pattern"], "0m")
    env = request["env"]["anyOf"][0]
    assert env["maxProperties"] == SETTINGS.limits.env_max_entries
    assert env["propertyNames"]["not"]["pattern"] == user_env.DENIED_PATTERN
    assert "LD_" in request["env"]["description"]


def test_query_and_header_formats_are_stated_as_checked() -> None:
    parameters = DOCUMENT["paths"]["/v1/evaluations"]["get"]["parameters"]
    listing = {p["name"]: p["schema"] for p in parameters}
    assert listing["cursor"]["pattern"] == queries.CURSOR_PATTERN
    assert (listing["limit"]["minimum"], listing["limit"]["maximum"]) == (1, queries.LIST_LIMIT_MAX)
    events = DOCUMENT["paths"]["/v1/evaluations/{eval_id}/events"]["get"]["parameters"]
    assert {p["name"]: p["schema"]["pattern"] for p in events} == {
        "Last-Event-ID": queries.STREAM_ID_PATTERN,
        "last_event_id": queries.STREAM_ID_PATTERN,
    }


def test_cancel_answers_202_and_the_designs_delete_is_a_deprecated_cancel() -> None:
    paths = DOCUMENT["paths"]
    cancel = paths["/v1/evaluations/{eval_id}/cancel"]["post"]
    assert set(cancel["responses"]) == {"202", "401", "404", "503"}
    assert "keeps the record" in cancel["description"]
    delete = paths["/v1/evaluations/{eval_id}"]["delete"]
    assert delete["deprecated"] is True
    assert set(delete["responses"]) == set(cancel["responses"])
    assert "keeps the record" in delete["description"]


@pytest.mark.parametrize(
    "name", ["LD_PRELOAD", "ld_audit", "PYTHONHOME", "Crucible_X", "PATH", "EVAL_ID"]
)
def test_the_env_denylist_pattern_is_the_denylist(name: str) -> None:
    assert re.fullmatch(patterns.compile_full(user_env.DENIED_PATTERN), name)
    assert user_env.problem(name) is not None
