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
    rules = sorted(
        (group, resource, tuple(rule.get("resourceNames", ())), tuple(sorted(rule["verbs"])))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    )
    lease = render.resolved_env(defaults)["CRUCIBLE_KUBERNETES__LEADER_LEASE_NAME"]
    assert rules == [
        ("", "pods", (), ("get", "list", "watch")),
        ("batch", "jobs", (), ("create", "delete", "get", "list", "watch")),
        # Leader election: create cannot be narrowed to a name; reading and renewing can.
        ("coordination.k8s.io", "leases", (), ("create",)),
        ("coordination.k8s.io", "leases", (lease,), ("get", "update")),
    ]
    assert all("*" not in r["verbs"] for r in role["rules"])
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


@pytest.mark.parametrize("name", SCENARIOS)
def test_no_secret_or_value_serves_a_redis_credential_for_pods(helm: str, name: str) -> None:
    manifests = rendered(name)
    for secret in render.find(manifests, "Secret"):
        assert "sidecar" not in secret["metadata"]["name"]
        assert not [k for k in secret.get("data", {}) if "sidecar" in k]
    env = render.resolved_env(manifests) if name == "defaults" else {}
    assert not [n for n in env if "SIDECAR_REDIS" in n or "REDIS_PASSWORD_SECRET" in n]


def test_ingest_key_is_mounted_by_the_dispatcher_alone(defaults: list[render.Manifest]) -> None:
    ingest_secret = render.one(defaults, "Secret", "-ingest-key")["metadata"]["name"]
    mounting = []
    for owner, spec in render.pod_specs(defaults):
        volumes = [
            v["name"]
            for v in spec.get("volumes", [])
            if v.get("secret", {}).get("secretName") == ingest_secret
        ]
        for c in containers(spec):
            if any(m["name"] in volumes for m in c.get("volumeMounts", [])):
                mounting.append(f"{owner}/{c['name']}")
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef", {})
                assert ref.get("name") != ingest_secret, f"{owner}/{c['name']}"
    assert mounting == [f"{render.FULLNAME}-dispatcher/dispatcher"]


def test_redis_pod_mounts_the_acl_file_but_no_password(defaults: list[render.Manifest]) -> None:
    spec = render.one(defaults, "StatefulSet", "-redis")["spec"]["template"]["spec"]
    acl = next(v for v in spec["volumes"] if v["name"] == "acl")
    assert acl["secret"]["items"] == [{"key": "users.acl", "path": "users.acl"}]


def pod_labels(manifests: list[render.Manifest], kind: str) -> dict[str, str]:
    labels: dict[str, str] = render.one(manifests, kind)["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(peer: render.Manifest, labels: dict[str, str]) -> bool:
    """Whether a NetworkPolicyPeer without namespaceSelector picks a pod of the release's
    namespace with these labels (matchLabels only: the chart renders no expressions)."""
    assert "namespaceSelector" not in peer
    assert "ipBlock" not in peer
    selector = peer["podSelector"]
    assert set(selector) <= {"matchLabels"}
    matched: bool = selector.get("matchLabels", {}).items() <= labels.items()
    return matched


def test_network_policies_isolate_evaluation_pods(defaults: list[render.Manifest]) -> None:
    policy = render.one(defaults, "NetworkPolicy", "-evaluation")
    spec = policy["spec"]
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    assert spec["ingress"] == []
    evaluation = dict(spec["podSelector"]["matchLabels"])
    dispatcher = pod_labels(defaults, "Deployment")
    redis = pod_labels(defaults, "StatefulSet")
    dns, to_dispatcher = [], []
    for rule in spec["egress"]:
        ports = sorted((p["port"], p["protocol"]) for p in rule["ports"])
        for peer in rule["to"]:
            if peer.get("podSelector", {}).get("matchLabels") == {"k8s-app": "kube-dns"}:
                assert "namespaceSelector" in peer
                dns.append(ports)
                continue
            assert not selects(peer, redis), "evaluation pods may reach Redis"
            assert selects(peer, dispatcher)
            to_dispatcher.append(ports)
    assert dns == [[(53, "TCP"), (53, "UDP")]]
    assert to_dispatcher == [[(8080, "TCP")]]
    # Redis admits the dispatcher alone: not evaluation pods, not the helm test pod.
    redis_policy = render.one(defaults, "NetworkPolicy", "-redis")["spec"]
    assert redis_policy["policyTypes"] == ["Ingress"]
    (redis_rule,) = redis_policy["ingress"]
    assert redis_rule["ports"] == [{"port": "redis", "protocol": "TCP"}]
    assert [selects(p, dispatcher) for p in redis_rule["from"]] == [True]
    assert not any(selects(p, evaluation) for p in redis_rule["from"])
    test_pod = render.one(defaults, "Pod", "-test")["metadata"]["labels"]
    assert not any(selects(p, test_pod) for p in redis_rule["from"])
    # The dispatcher admits anyone on its API port (dispatcherIngressFrom is empty) and, by a
    # rule of their own, evaluation pods on that port.
    dispatcher_policy = render.one(defaults, "NetworkPolicy", "-dispatcher")["spec"]
    assert dispatcher_policy["ingress"][0] == {"ports": [{"port": "http", "protocol": "TCP"}]}
    (evaluation_rule,) = dispatcher_policy["ingress"][1:]
    assert evaluation_rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert [selects(p, evaluation) for p in evaluation_rule["from"]] == [True]


def test_restricted_dispatcher_ingress_still_admits_the_helm_test_and_evaluations(
    helm: str,
) -> None:
    manifests = render.template(
        sets=["networkPolicy.dispatcherIngressFrom[0].podSelector.matchLabels.role=client"]
    )
    rules = render.one(manifests, "NetworkPolicy", "-dispatcher")["spec"]["ingress"]
    assert all(r["ports"] == [{"port": "http", "protocol": "TCP"}] for r in rules)
    peers = [p for r in rules for p in r["from"]]
    test_pod = render.one(manifests, "Pod", "-test")["metadata"]["labels"]
    evaluation = render.one(manifests, "NetworkPolicy", "-evaluation")["spec"]["podSelector"]
    assert {"role": "client"} in [p["podSelector"]["matchLabels"] for p in peers]
    assert any(selects(p, test_pod) for p in peers)
    assert any(selects(p, evaluation["matchLabels"]) for p in peers)
    # A client is not an evaluation pod, nor the other way round.
    assert not selects(peers[0], evaluation["matchLabels"])


def test_helm_test_pod_reaches_the_dispatcher_only(defaults: list[render.Manifest]) -> None:
    spec = render.one(defaults, "NetworkPolicy", "-test")["spec"]
    dispatcher = pod_labels(defaults, "Deployment")
    redis = pod_labels(defaults, "StatefulSet")
    peers = [p for r in spec["egress"] for p in r["to"] if "namespaceSelector" not in p]
    assert peers
    assert all(selects(p, dispatcher) and not selects(p, redis) for p in peers)


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
