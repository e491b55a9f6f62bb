"""Two dispatcher replicas by default, one reconciler: the Lease the dispatcher elects with is
the one the Role lets it read and renew, and each replica enters it under its pod's name."""

from collections.abc import Callable

from dispatcher.backends.kube import leader
from dispatcher.settings import DispatcherSettings
from tests.chart import render


def lease_rules(manifests: list[render.Manifest]) -> list[render.Manifest]:
    role = render.one(manifests, "Role", "-dispatcher")
    return [r for r in role["rules"] if r["apiGroups"] == ["coordination.k8s.io"]]


def test_two_replicas_elect_with_the_lease_the_role_names(
    helm: str,
    defaults: list[render.Manifest],
    chart_settings: Callable[[list[render.Manifest]], DispatcherSettings],
) -> None:
    deployment = render.one(defaults, "Deployment", "-dispatcher")
    assert deployment["spec"]["replicas"] == 2
    kube = chart_settings(defaults).kubernetes
    named = [r for r in lease_rules(defaults) if "resourceNames" in r]
    assert [r["resourceNames"] for r in named] == [[leader.lease_name(kube)]]
    assert leader.lease_name(kube) == f"{render.FULLNAME}-reconciler"
    # The Downward API's pod name is the replica's identity (chart_settings set the env).
    assert leader.identity(kube) == render.POD_FIELDS["metadata.name"]
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    pod_name = next(e for e in env if e["name"] == "POD_NAME")
    assert pod_name["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_the_lease_follows_a_fullname_override(helm: str) -> None:
    manifests = render.template(sets=["fullnameOverride=ev", "dispatcher.replicaCount=3"])
    assert render.one(manifests, "Deployment")["spec"]["replicas"] == 3
    env = {e["name"]: e.get("value") for e in render.one(manifests, "Deployment")["spec"][
        "template"]["spec"]["containers"][0]["env"]}  # fmt: skip
    assert env["CRUCIBLE_KUBERNETES__LEADER_LEASE_NAME"] == "ev-reconciler"
    assert [r.get("resourceNames") for r in lease_rules(manifests)] == [None, ["ev-reconciler"]]
