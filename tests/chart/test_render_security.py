"""Pod Security "restricted", least privilege and secret handling in every rendered scenario."""

import base64
import json

import pytest

from tests.chart import render

SCENARIOS = list(render.scenarios())


def rendered(name: str) -> list[render.Manifest]:
    path = render.scenarios()[name]
    return render.template(values=[path] if path else [])


def containers(spec: render.Manifest) -> list[render.Manifest]:
    return list(spec.get("initContainers", [])) + list(spec["containers"])


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_pod_and_container_meets_pod_security_restricted(helm: str, name: str) -> None:
    specs = render.pod_specs(rendered(name))
    assert specs
    for owner, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, owner
        assert pod["runAsUser"] > 0, owner
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, owner
        assert spec["enableServiceLinks"] is False, owner
        for c in containers(spec):
            sc = c["securityContext"]
            where = f"{owner}/{c['name']}"
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["runAsNonRoot"] is True, where
            assert "privileged" not in sc, where
            assert c["resources"]["requests"]["memory"], where
            assert c["resources"]["limits"]["memory"], where
        assert not any(v.get("hostPath") for v in spec.get("volumes", [])), owner
        for host_namespace in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(host_namespace), owner


@pytest.mark.parametrize("name", SCENARIOS)
def test_only_the_dispatcher_pod_gets_an_api_token(helm: str, name: str) -> None:
    for owner, spec in render.pod_specs(rendered(name)):
        expected = owner.endswith("-dispatcher")
        assert spec["automountServiceAccountToken"] is expected, owner


def test_evaluation_service_account_has_no_token_and_no_rights(
    defaults: list[render.Manifest],
) -> None:
    account = render.one(defaults, "ServiceAccount", "-evaluation")
    assert account["automountServiceAccountToken"] is False
    name = account["metadata"]["name"]
    for binding in render.find(defaults, "RoleBinding") + render.find(
        defaults, "ClusterRoleBinding"
    ):
        assert all(s["name"] != name for s in binding["subjects"])
    deployment = render.one(defaults, "Deployment", "-dispatcher")
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["CRUCIBLE_KUBERNETES__SERVICE_ACCOUNT_NAME"] == name


def test_dispatcher_role_is_namespaced_and_minimal(defaults: list[render.Manifest]) -> None:
    assert render.find(defaults, "ClusterRole") == []
    assert render.find(defaults, "ClusterRoleBinding") == []
    role = render.one(defaults, "Role", "-dispatcher")
    rules = {
        (group, resource): sorted(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert rules == {
        ("batch", "jobs"): ["create", "delete", "get", "list", "watch"],
        ("", "pods"): ["get", "list", "watch"],
    }
    assert all("resourceNames" not in r and "*" not in r["verbs"] for r in role["rules"])
    binding = render.one(defaults, "RoleBinding", "-dispatcher")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    account = render.one(defaults, "ServiceAccount", "-dispatcher")
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": render.NAMESPACE,
        }
    ]


def test_rbac_and_accounts_can_be_left_to_the_operator(helm: str) -> None:
    manifests = render.template(
        sets=[
            "dispatcher.rbac.create=false",
            "dispatcher.serviceAccount.create=false",
            "evaluation.serviceAccount.create=false",
        ]
    )
    assert not [m for m in manifests if m["kind"] in ("Role", "RoleBinding", "ServiceAccount")]
    spec = render.one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "default"


def test_no_generated_secret_appears_outside_its_secret(helm: str) -> None:
    for name in SCENARIOS:
        manifests = rendered(name)
        secrets = {
            base64.b64decode(value).decode()
            for m in render.find(manifests, "Secret")
            for key, value in m.get("data", {}).items()
            if key != "users.acl"
        }
        for m in manifests:
            if m["kind"] != "Secret":
                text = json.dumps(m)
                assert not [s for s in secrets if s in text], f"{name}: {m['metadata']['name']}"


def test_sidecar_password_secret_is_mounted_by_no_chart_pod(
    defaults: list[render.Manifest],
) -> None:
    """Only evaluation pods' sidecars mount it (the dispatcher adds that mount per Job)."""
    sidecar_secret = render.one(defaults, "Secret", "-sidecar-redis")["metadata"]["name"]
    for owner, spec in render.pod_specs(defaults):
        for volume in spec.get("volumes", []):
            assert volume.get("secret", {}).get("secretName") != sidecar_secret, owner
        for c in containers(spec):
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef", {})
                assert ref.get("name") != sidecar_secret, f"{owner}/{c['name']}"


def test_redis_pod_mounts_the_acl_file_but_no_password(defaults: list[render.Manifest]) -> None:
    spec = render.one(defaults, "StatefulSet", "-redis")["spec"]["template"]["spec"]
    acl = next(v for v in spec["volumes"] if v["name"] == "acl")
    assert acl["secret"]["items"] == [{"key": "users.acl", "path": "users.acl"}]


def test_network_policies_isolate_evaluation_pods(defaults: list[render.Manifest]) -> None:
    policy = render.one(defaults, "NetworkPolicy", "-evaluation")
    spec = policy["spec"]
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    assert spec["ingress"] == []
    redis_labels = render.one(defaults, "StatefulSet", "-redis")["spec"]["template"]["metadata"][
        "labels"
    ]
    egress_ports = []
    for rule in spec["egress"]:
        for peer in rule["to"]:
            selected = peer.get("podSelector", {}).get("matchLabels", {})
            assert "ipBlock" not in peer
            assert selected.items() <= redis_labels.items() or selected == {"k8s-app": "kube-dns"}
        egress_ports += [(p["port"], p["protocol"]) for p in rule["ports"]]
    assert sorted(egress_ports) == [(53, "TCP"), (53, "UDP"), (6379, "TCP")]
    # Redis admits the evaluation pods the policy above selects, and the dispatcher.
    redis_policy = render.one(defaults, "NetworkPolicy", "-redis")["spec"]
    selectors = [p["podSelector"]["matchLabels"] for p in redis_policy["ingress"][0]["from"]]
    assert spec["podSelector"]["matchLabels"] in selectors
    dispatcher_policy = render.one(defaults, "NetworkPolicy", "-dispatcher")["spec"]
    assert dispatcher_policy["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]


def test_restricted_dispatcher_ingress_still_admits_the_helm_test(helm: str) -> None:
    manifests = render.template(
        sets=["networkPolicy.dispatcherIngressFrom[0].podSelector.matchLabels.role=client"]
    )
    peers = render.one(manifests, "NetworkPolicy", "-dispatcher")["spec"]["ingress"][0]["from"]
    test_pod = next(
        m for m in render.find(manifests, "Pod") if m["metadata"]["name"].endswith("-test")
    )
    selectors = [p["podSelector"]["matchLabels"] for p in peers]
    assert {"role": "client"} in selectors
    assert any(
        s.items() <= test_pod["metadata"]["labels"].items() for s in selectors if "role" not in s
    )


def test_network_policies_can_be_switched_off(helm: str) -> None:
    assert render.find(render.template(sets=["networkPolicy.enabled=false"]), "NetworkPolicy") == []


def test_pod_disruption_budget_only_when_enabled(
    helm: str, defaults: list[render.Manifest]
) -> None:
    assert render.find(defaults, "PodDisruptionBudget") == []
    pdb = render.one(
        render.template(
            sets=[
                "dispatcher.podDisruptionBudget.enabled=true",
                "dispatcher.podDisruptionBudget.maxUnavailable=1",
            ]
        ),
        "PodDisruptionBudget",
    )
    assert pdb["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in pdb["spec"]


def test_images_use_the_chart_version_unless_pinned(
    helm: str, defaults: list[render.Manifest]
) -> None:
    spec = render.one(defaults, "Deployment")["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"].endswith(":0.1.0")
    digest = "sha256:" + "ab" * 32
    pinned = render.one(render.template(sets=[f"image.digest={digest}"]), "Deployment")
    assert pinned["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f":0.1.0@{digest}")


def test_every_object_has_the_standard_labels(defaults: list[render.Manifest]) -> None:
    for m in defaults:
        labels = m["metadata"]["labels"]
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "helm.sh/chart",
            "app.kubernetes.io/managed-by",
            "app.kubernetes.io/component",
        ):
            assert labels.get(key), f"{m['kind']}/{m['metadata']['name']} lacks {key}"
        assert len(m["metadata"]["name"]) <= 63
    for kind in ("Deployment", "StatefulSet"):
        workload = render.one(defaults, kind)
        selector = workload["spec"]["selector"]["matchLabels"]
        assert "helm.sh/chart" not in selector
        assert "app.kubernetes.io/version" not in selector
        assert selector.items() <= workload["spec"]["template"]["metadata"]["labels"].items()


def test_long_release_names_still_give_valid_names(helm: str) -> None:
    for sets in (["fullnameOverride=" + "x" * 63], ["nameOverride=" + "y" * 63]):
        manifests = render.template(sets=sets)
        assert all(len(m["metadata"]["name"]) <= 63 for m in manifests)
        assert len(render.one(manifests, "StatefulSet")["metadata"]["name"]) <= 52
