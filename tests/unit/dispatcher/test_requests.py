"""Validation of submissions: every bad field gets exactly one message; valid ones normalise."""

from typing import Any

import pytest

from dispatcher import errors
from dispatcher.api.schema import requests
from dispatcher.settings import DispatcherSettings

SETTINGS = DispatcherSettings(images={"python": "python:3.11-slim", "ml": "ghcr.io/x/ml:1"})


def problems(body: Any, parse: Any = requests.parse_evaluation) -> list[dict[str, str]]:
    with pytest.raises(errors.InvalidRequestError) as caught:
        parse(body, SETTINGS)
    details: list[dict[str, str]] = caught.value.details
    return details


BAD_FIELDS: list[tuple[str, dict[str, Any]]] = [
    ("code", {"code": 5}),
    ("code", {"code": "x\x00y"}),
    ("code", {"code": "é" * (2**19 + 1)}),
    ("code", {}),
    ("command", {"command": "ls"}),
    ("command", {"command": []}),
    ("command", {"command": ["", "x"]}),
    ("command", {"command": ["ls", 3]}),
    ("command", {"code": "x", "command": ["ls"]}),
    ("eval_id", {"eval_id": "-leading-dash"}),
    ("eval_id", {"eval_id": "a" * 129}),
    ("eval_id", {"eval_id": "has space"}),
    ("eval_id", {"eval_id": 12}),
    ("image", {"image": "docker.io/evil"}),
    ("image", {"image": ["python"]}),
    ("timeout_seconds", {"timeout_seconds": 0}),
    ("timeout_seconds", {"timeout_seconds": -1}),
    ("timeout_seconds", {"timeout_seconds": 3601}),
    ("timeout_seconds", {"timeout_seconds": "60"}),
    ("timeout_seconds", {"timeout_seconds": True}),
    ("resources", {"resources": "big"}),
    ("resources.cpu", {"resources": {"cpu": "5"}}),
    ("resources.cpu", {"resources": {"cpu": "lots"}}),
    ("resources.cpu", {"resources": {"cpu": "0.0001"}}),
    ("resources.cpu", {"resources": {"cpu": False}}),
    ("resources.memory", {"resources": {"memory": "9Gi"}}),
    ("resources.memory", {"resources": {"memory": "512MB"}}),
    ("resources.memory", {"resources": {"memory": "0"}}),
    ("resources.gpu", {"resources": {"gpu": 1}}),
    ("env", {"env": ["A=1"]}),
    ("env", {"env": {f"V{i}": "x" for i in range(65)}}),
    ("env", {"env": {"BIG": "x" * 70_000}}),
    ("env.CRUCIBLE_REDIS_URL", {"env": {"CRUCIBLE_REDIS_URL": "redis://evil"}}),
    ("env.crucible_x", {"env": {"crucible_x": "1"}}),
    ("env.1ABC", {"env": {"1ABC": "1"}}),
    ("env.A-B", {"env": {"A-B": "1"}}),
    ("env.OK", {"env": {"OK": 1}}),
    ("labels", {"labels": {f"k{i}": "v" for i in range(33)}}),
    ("labels.team/a", {"labels": {"team/a": "x"}}),
    ("labels.k", {"labels": {"k": "v" * 64}}),
    ("labels.k", {"labels": {"k": "-v"}}),
    ("labels.k", {"labels": {"k": 1}}),
    ("unknown", {"unknown": 1}),
]


@pytest.mark.parametrize(("field", "extra"), BAD_FIELDS)
def test_each_bad_field_gets_exactly_one_message(field: str, extra: dict[str, Any]):
    body = {"code": "print(1)", **extra}
    if field == "code" and extra == {}:
        body = {}
    if field == "command" and "code" not in extra:
        body.pop("code")
    details = problems(body)
    assert [d["field"] for d in details] == [field], details
    assert details[0]["message"]


def test_all_bad_fields_are_reported_together():
    body: dict[str, Any] = {"command": ["ls"]}
    expected = set()
    for field, extra in BAD_FIELDS:
        if field.split(".")[0] in ("code", "command") or field.split(".")[0] in {
            f.split(".")[0] for f in expected
        }:
            continue
        body.update(extra)
        expected.add(field)
    fields = [d["field"] for d in problems(body)]
    assert sorted(fields) == sorted(expected)
    assert len(fields) == len(set(fields))


def test_body_that_is_not_an_object_is_one_message():
    for body in ([], "code", 3, None):
        assert problems(body) == [{"field": "body", "message": "must be a JSON object"}]


def test_valid_request_is_normalised():
    spec = requests.parse_evaluation(
        {
            "command": ["python", "-c", "1"],
            "image": "ml",
            "timeout_seconds": 1.5,
            "resources": {"cpu": 0.25, "memory": "1073741824"},
            "env": {"B": "2", "A": "1"},
            "labels": {"team": "ml-eval"},
        },
        SETTINGS,
    )
    assert spec.image == "ghcr.io/x/ml:1"
    assert (spec.resources.cpu, spec.resources.memory) == ("250m", "1Gi")
    assert list(spec.env) == ["A", "B"]
    assert spec.timeout_seconds == 1.5


def test_image_may_be_named_by_its_reference_too():
    spec = requests.parse_evaluation({"code": "1", "image": "ghcr.io/x/ml:1"}, SETTINGS)
    assert spec.image == "ghcr.io/x/ml:1"


def test_digest_ignores_spelling_but_not_meaning():
    def digest(body: dict[str, Any]) -> str:
        return requests.parse_evaluation(body, SETTINGS).digest()

    base = digest({"code": "x", "eval_id": "a"})
    assert base == digest({"command": ["python", "-u", "-c", "x"], "eval_id": "b"})
    assert base == digest(
        {"code": "x", "resources": {"cpu": "0.5", "memory": "512Mi"}, "timeout_seconds": 60}
    )
    assert base == digest({"code": "x", "image": "python", "env": {}})
    assert base != digest({"code": "x", "env": {"A": "1"}})
    assert base != digest({"code": "x", "timeout_seconds": 61})
    assert base != digest({"code": "y"})


def test_execute_request_maps_to_the_same_spec():
    spec = requests.parse_execute(
        {"eval_id": "e", "code": "x", "timeout": 60, "memory_limit": "512Mi", "cpu_limit": "500m"},
        SETTINGS,
    )
    assert spec.digest() == requests.parse_evaluation({"code": "x"}, SETTINGS).digest()


@pytest.mark.parametrize(
    ("field", "extra"),
    [
        ("timeout", {"timeout": 0}),
        ("memory_limit", {"memory_limit": "1Pi"}),
        ("cpu_limit", {"cpu_limit": "x"}),
        ("eval_id", {"eval_id": "a b"}),
        ("code", {"code": None}),
        ("command", {"command": ["ls"]}),
    ],
)
def test_execute_reports_its_own_field_names(field: str, extra: dict[str, Any]):
    details = problems({"code": "x", **extra}, requests.parse_execute)
    assert [d["field"] for d in details] == [field]


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        (requests.parse_evaluation, {"code": "x"}),
        (requests.parse_evaluation, {"code": "x", "timeout_seconds": 60, "eval_id": "e"}),
        (
            requests.parse_evaluation,
            {
                "command": ["python", "-c", "1"],
                "image": "ml",
                "resources": {"cpu": 1, "memory": 1073741824},
                "env": {"B": "2", "A": "1"},
                "labels": {"team": "ml-eval"},
            },
        ),
        (requests.parse_execute, {"code": "x", "timeout": 60, "cpu_limit": 2}),
    ],
)
def test_a_spec_built_unvalidated_is_the_validated_one_to_the_type(parse: Any, body: Any):
    spec = parse(body, SETTINGS)
    validated = requests.Spec.model_validate(spec.model_dump())
    assert spec == validated
    assert spec.model_dump_json() == validated.model_dump_json()  # 60.0, not 60
    assert spec.digest() == validated.digest()
