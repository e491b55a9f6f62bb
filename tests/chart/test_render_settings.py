"""The dispatcher Deployment's env is the one mapping of chart values to settings: every
CRUCIBLE_* name must be a real field of dispatcher.settings.DispatcherSettings, and the settings
built from exactly that env must point at the objects the chart renders."""

from collections.abc import Callable
from typing import Any

import pydantic
import pytest

from dispatcher.settings import DispatcherSettings
from tests.chart import render

PREFIX = "CRUCIBLE_"


def field_exists(model: type[pydantic.BaseModel], env_name: str) -> bool:
    """Whether PREFIX + "A__B" names the nested field a.b (the settings' env convention)."""
    parts = env_name.removeprefix(PREFIX).lower().split("__")
    current: Any = model
    for part in parts:
        if not (isinstance(current, type) and issubclass(current, pydantic.BaseModel)):
            return False
        field = current.model_fields.get(part)
        if field is None:
            return False
        current = field.annotation
    return True


def deployment_env(manifests: list[render.Manifest]) -> list[render.Manifest]:
    spec = render.one(manifests, "Deployment", "-dispatcher")["spec"]["template"]["spec"]
    return list(spec["containers"][0]["env"])


def test_field_lookup_tells_real_names_from_made_up_ones() -> None:
    assert field_exists(DispatcherSettings, "CRUCIBLE_KUBERNETES__SIDECAR_MODE")
    assert field_exists(DispatcherSettings, "CRUCIBLE_LIMITS__CPU_MAX")
    assert not field_exists(DispatcherSettings, "CRUCIBLE_KUBERNETES__SIDECAR_MOOD")
    assert not field_exists(DispatcherSettings, "CRUCIBLE_PORT__NUMBER")


@pytest.mark.parametrize("name", list(render.scenarios()))
def test_every_crucible_env_name_is_a_settings_field_mapped_once(helm: str, name: str) -> None:
    path = render.scenarios()[name]
    env = deployment_env(render.template(values=[path] if path else []))
    names = [e["name"] for e in env if e["name"].startswith(PREFIX)]
    assert len(names) == len(set(names)), "a setting is mapped twice"
    assert [n for n in names if not field_exists(DispatcherSettings, n)] == []


def test_settings_built_from_the_deployment_env_match_the_chart(
    helm: str,
    defaults: list[render.Manifest],
    chart_settings: Callable[[list[render.Manifest]], DispatcherSettings],
) -> None:
    settings = chart_settings(defaults)
    env = render.resolved_env(defaults)
    spec = render.one(defaults, "Deployment", "-dispatcher")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    token = render.secret_value(defaults, f"{render.FULLNAME}-api-tokens", "tokens")
    password = render.secret_value(defaults, f"{render.FULLNAME}-redis", "dispatcher-password")
    assert env["CRUCIBLE_API_TOKENS_FILE"] == mounts["api-tokens"] + "/tokens"
    assert settings.backend == "kubernetes"
    assert settings.tokens() == (token,)
    assert settings.redis_url == (
        f"redis://dispatcher:{password}@{render.FULLNAME}-redis.{render.NAMESPACE}.svc:6379/0"
    )
    assert settings.port == spec["containers"][0]["ports"][0]["containerPort"]
    assert settings.shutdown_timeout_seconds < spec["terminationGracePeriodSeconds"]
    kube = settings.kubernetes
    assert kube.job_template_path == mounts["job-template"]
    assert kube.namespace == render.NAMESPACE
    assert kube.instance == render.RELEASE
    assert kube.platform_image == spec["containers"][0]["image"]
    evaluation_account = render.one(defaults, "ServiceAccount", "-evaluation")
    assert kube.service_account_name == evaluation_account["metadata"]["name"]
    assert kube.sidecar_redis_url.startswith("redis://sidecar@")
    assert kube.redis_password_secret == f"{render.FULLNAME}-sidecar-redis"
    assert render.secret_value(defaults, kube.redis_password_secret, kube.redis_password_secret_key)
    assert settings.images == {"python": "python:3.11-slim"}


def test_external_redis_users_and_secret_reach_the_settings(helm: str) -> None:
    manifests = render.template(
        values=[render.REPO / "tests/chart/scenarios/external-redis-values.yaml"]
    )
    env = {e["name"]: e for e in deployment_env(manifests)}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "shared-redis-users",
        "key": "crucible-dispatcher",
    }
    assert env["CRUCIBLE_REDIS_URL"]["value"] == (
        "redis://dispatcher:$(REDIS_PASSWORD)@redis.shared.svc.cluster.local:6380/0"
    )
    assert env["CRUCIBLE_KUBERNETES__SIDECAR_REDIS_URL"]["value"] == (
        "redis://sidecar@redis.shared.svc.cluster.local:6380/0"
    )
    assert env["CRUCIBLE_KUBERNETES__REDIS_PASSWORD_SECRET"]["value"] == "shared-redis-users"
    assert env["CRUCIBLE_KUBERNETES__REDIS_PASSWORD_SECRET_KEY"]["value"] == "crucible-sidecar"
    assert render.find(manifests, "StatefulSet") == []
    assert render.find(manifests, "Secret", "-redis") == []
