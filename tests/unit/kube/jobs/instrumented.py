"""A Job rendered from the chart's template and instrumented, and ways to look into it: what
the instrumentation and hardening tests share."""

from typing import Any

from dispatcher.backends.kube import config as kube_config
from dispatcher.backends.kube.jobs import instrument, names, templates
from tests.unit.kube import kube_samples

CONFIG = kube_config.KubernetesConfig(
    namespace="evals",
    service_account_name="crucible-evaluation",
    platform_image="registry.example/crucible:1.2.3",
)
TEMPLATE = templates.load(str(kube_samples.CHART_TEMPLATE))


def target(**overrides: Any) -> instrument.Target:
    base: dict[str, Any] = {
        "eval_id": "eval-1",
        "job_name": names.job_name("eval-1"),
        "timeout_seconds": 30.0,
        "labels": {"team": "ml"},
        "created_at": "2026-01-01T00:00:00Z",
        "main_container": "evaluation",
    }
    base.update(overrides)
    return instrument.Target(**base)


def job(config: kube_config.KubernetesConfig = CONFIG, **overrides: Any) -> dict[str, Any]:
    rendered = TEMPLATE.render(kube_samples.values(command=["python", "-c", "print(1)"]))
    return instrument.instrument(rendered, target(**overrides), config)


def pod_of(manifest: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return pod


def every_container(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    pod = pod_of(manifest)
    return list(pod["containers"]) + list(pod.get("initContainers") or [])


def by_name(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in every_container(manifest) if c["name"] == name)
