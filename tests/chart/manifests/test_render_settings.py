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
    ingest_key = render.secret_value(defaults, f"{render.FULLNAME}-ingest-key", "ingest-key")
    assert env["CRUCIBLE_API_TOKENS_FILE"] == mounts["api-tokens"] + "/tokens"
    assert env["CRUCIBLE_INGEST_KEY_FILE"] == mounts["ingest-key"] + "/key"
    assert settings.ingest_key is None
    assert settings.ingest_key_bytes() == ingest_key.encode()
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
    assert kube.sidecar_ingest_url == (
        f"http://{render.FULLNAME}-dispatcher.{render.NAMESPACE}.svc:8080"
    )
    assert settings.sidecar_url() == kube.sidecar_ingest_url
    assert settings.images == {"python": "python:3.11-slim"}
    # Nothing in the env speaks of a Redis credential for pods.
    assert not [n for n in env if "SIDECAR" in n and ("REDIS" in n or "PASSWORD" in n)]


def test_ingest_url_is_the_dispatcher_service_as_pods_reach_it(helm: str) -> None:
    manifests = render.template(
        sets=["fullnameOverride=ev", "dispatcher.port=8181", "dispatcher.service.port=9090"]
    )
    env = {e["name"]: e.get("value") for e in deployment_env(manifests)}
    url = env["CRUCIBLE_KUBERNETES__SIDECAR_INGEST_URL"]
    assert url == f"http://ev-dispatcher.{render.NAMESPACE}.svc:9090"
    service = render.one(manifests, "Service", "-dispatcher")
    assert service["metadata"]["name"] == "ev-dispatcher"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 9090, "targetPort": "http", "protocol": "TCP"}
    ]
    container = render.one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0] == {"name": "http", "containerPort": 8181, "protocol": "TCP"}
    # Policies see the pod port behind the Service: that is the one evaluation pods may reach.
    egress = render.one(manifests, "NetworkPolicy", "-evaluation")["spec"]["egress"]
    dispatcher_rule = next(r for r in egress if "podSelector" in r["to"][0])
    assert dispatcher_rule["ports"] == [{"port": 8181, "protocol": "TCP"}]


def test_external_redis_user_and_secret_reach_the_settings(helm: str) -> None:
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
    assert env["CRUCIBLE_KUBERNETES__SIDECAR_INGEST_URL"]["value"] == (
        f"http://{render.FULLNAME}-dispatcher.{render.NAMESPACE}.svc:8080"
    )
    assert [e for e in env.values() if "shared-redis-users" in str(e)] == [env["REDIS_PASSWORD"]]
    assert render.find(manifests, "StatefulSet") == []
    assert render.find(manifests, "Secret", "-redis") == []
    assert render.find(manifests, "NetworkPolicy", "-redis") == []


def test_external_redis_default_user(helm: str) -> None:
    manifests = render.template(
        sets=[
            "redis.enabled=false",
            "externalRedis.host=r",
            "externalRedis.existingSecret=s",
            "externalRedis.dispatcherUsername=",
        ]
    )
    env = {e["name"]: e.get("value") for e in deployment_env(manifests)}
    assert env["CRUCIBLE_REDIS_URL"] == "redis://:$(REDIS_PASSWORD)@r:6379/0"


def test_the_sidecars_cpu_request_reaches_the_settings(
    helm: str, chart_settings: Callable[[list[render.Manifest]], DispatcherSettings]
) -> None:
    # Its share of a busy node's CPU when it publishes the verdict (values.yaml says why).
    assert chart_settings(render.template()).kubernetes.sidecar_resources.cpu_request == "10m"
    raised = chart_settings(render.template(sets=["sidecar.cpuRequest=250m"]))
    assert raised.kubernetes.sidecar_resources.cpu_request == "250m"
    assert raised.kubernetes.sidecar_resources.as_dict()["requests"]["cpu"] == "250m"


def test_an_external_redis_cluster_reaches_the_dispatcher(helm: str) -> None:
    external = ["redis.enabled=false", "externalRedis.host=r", "externalRedis.existingSecret=s"]

    def flag(*sets: str) -> str | None:
        env = {e["name"]: e.get("value") for e in deployment_env(render.template(sets=[*sets]))}
        return env.get("CRUCIBLE_REDIS_CLUSTER")

    assert flag(*external) is None
    assert flag(*external, "externalRedis.cluster=true") == "true"
    # The built-in Redis is one server, whatever externalRedis says.
    assert flag("externalRedis.cluster=true") is None


def test_an_external_redis_sentinel_reaches_the_dispatcher(helm: str) -> None:
    sentinel = [
        "redis.enabled=false",
        "externalRedis.existingSecret=s",
        "externalRedis.sentinelMasterName=mymaster",
        "externalRedis.sentinels={s1:26379,s2:26379}",
    ]
    env = {e["name"]: e.get("value") for e in deployment_env(render.template(sets=sentinel))}
    assert env["CRUCIBLE_REDIS_SENTINEL_MASTER"] == "mymaster"
    assert env["CRUCIBLE_REDIS_URL"] == "redis://dispatcher:$(REDIS_PASSWORD)@s1:26379,s2:26379/0"
    # The built-in Redis is one server, whatever externalRedis says.
    builtin = {e["name"] for e in deployment_env(render.template(sets=sentinel[2:]))}
    assert "CRUCIBLE_REDIS_SENTINEL_MASTER" not in builtin


def test_a_redis_cluster_behind_sentinel_is_refused(helm: str) -> None:
    both = [
        "redis.enabled=false",
        "externalRedis.existingSecret=s",
        "externalRedis.cluster=true",
        "externalRedis.sentinelMasterName=mymaster",
        "externalRedis.sentinels={s1:26379}",
    ]
    with pytest.raises(render.HelmError, match="exclude each other"):
        render.template(sets=both)
