"""values.yaml, its schema, its documentation and the scenario files agree with each other."""

import copy
import json
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from tests.chart import render, values_table

SCHEMA = json.loads((render.CHART / "values.schema.json").read_text())
VALUES_TEXT = (render.CHART / "values.yaml").read_text()
VALUES = yaml.safe_load(VALUES_TEXT)


def merged(overrides: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing: maps merge key by key, anything else replaces."""

    def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(base)
        for key, value in top.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
        return out

    return merge(VALUES, overrides)


def schema_paths(node: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of every property the schema declares, groups included."""
    paths = []
    for key, sub in node.get("properties", {}).items():
        paths.append(prefix + key)
        paths += schema_paths(sub, f"{prefix}{key}.")
    return paths


@pytest.mark.parametrize("name", list(render.scenarios()))
def test_every_scenario_validates_against_the_schema(name: str) -> None:
    path = render.scenarios()[name]
    overrides = yaml.safe_load(path.read_text()) if path else {}
    jsonschema.Draft7Validator(SCHEMA).validate(merged(overrides))


def test_every_object_in_the_schema_rejects_unknown_keys() -> None:
    def walk(node: dict[str, Any], where: str) -> list[str]:
        loose = []
        if "properties" in node and node.get("additionalProperties") is not False:
            loose.append(where or "(root)")
        for key, sub in node.get("properties", {}).items():
            loose += walk(sub, f"{where}.{key}".lstrip("."))
        return loose

    assert walk(SCHEMA, "") == []
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"


def test_values_yaml_documents_every_key_and_the_schema_knows_each() -> None:
    assert values_table.undocumented(VALUES_TEXT) == []
    documented = {v.path for v in values_table.documented(VALUES_TEXT)}
    declared = set(schema_paths(SCHEMA))
    assert documented - declared == set(), "documented but missing from values.schema.json"
    # A schema property is either documented itself or a group of documented keys.
    groups = {p.rsplit(".", 1)[0] for p in documented if "." in p}
    groups |= {g.rsplit(".", 1)[0] for g in groups if "." in g}
    inside_documented = {p for p in declared if any(p.startswith(d + ".") for d in documented)}
    undeclared = declared - documented - groups - inside_documented
    assert undeclared == set(), "in the schema but not in values.yaml"


def test_readme_lists_every_value_and_is_current() -> None:
    readme = (render.CHART / "README.md").read_text()
    assert readme == values_table.readme_with_table(readme, VALUES_TEXT)
    for value in values_table.documented(VALUES_TEXT):
        assert f"| `{value.path}` |" in readme


BAD_VALUES = {
    "typo at the top": ["dispatchr.replicaCount=2"],
    "typo in a group": ["dispatcher.replicaCont=2"],
    "typo deep down": ["redis.persistance.enabled=false"],
    "unknown sidecar mode": ["sidecar.mode=sometimes"],
    "unknown pull policy": ["image.pullPolicy=Sometimes"],
    "zero replicas": ["dispatcher.replicaCount=0"],
    "port out of range": ["dispatcher.port=70000"],
    "external redis without a host": ["redis.enabled=false", "externalRedis.existingSecret=s"],
    "external redis without a secret": ["redis.enabled=false", "externalRedis.host=r"],
    "CRUCIBLE_ setting through extraEnv": [
        "dispatcher.extraEnv[0].name=CRUCIBLE_BACKEND",
        "dispatcher.extraEnv[0].value=local",
    ],
    "bad digest": ["image.digest=latest"],
    "removed sidecar Redis user": ["externalRedis.sidecarUsername=sidecar"],
    "removed sidecar password key": ["externalRedis.sidecarPasswordKey=sidecar-password"],
    "maxmemory in words": ["redis.maxmemory=lots"],
    "maxmemory zero (unlimited)": ["redis.maxmemory=0"],
    "memory limit in a unit Kubernetes lacks": ["redis.resources.limits.memory=512ki"],
    "ingest key secret not a name": ["dispatcher.ingestKey.existingSecret=Not_A_Name"],
    "ingest key secret key empty": [
        "dispatcher.ingestKey.existingSecret=k",
        "dispatcher.ingestKey.existingSecretKey=",
    ],
}


@pytest.mark.parametrize("sets", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
def test_lint_rejects_bad_values(helm: str, sets: list[str]) -> None:
    assert render.lint(sets=sets).returncode != 0


def test_template_rejects_a_default_image_outside_the_allow_list(helm: str) -> None:
    with pytest.raises(render.HelmError, match="defaultImage"):
        render.template(sets=["evaluation.defaultImage=ruby"])


@pytest.mark.parametrize("name", list(render.scenarios()))
def test_lint_passes_for_every_scenario(helm: str, name: str) -> None:
    path = render.scenarios()[name]
    done = render.lint(values=[path] if path else [])
    assert done.returncode == 0, done.stdout + done.stderr


def test_ci_scenarios_match_ct_naming() -> None:
    # ct only picks up ci/*-values.yaml; anything else there would be silently ignored.
    stray = [p.name for p in (render.CHART / "ci").iterdir() if not p.name.endswith("-values.yaml")]
    assert stray == []
