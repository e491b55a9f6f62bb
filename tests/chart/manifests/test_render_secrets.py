"""Generated secrets: one set of values per render, shared by every template that needs them,
and kept across upgrades through `lookup`.

`helm template` has no cluster, so `lookup` finds nothing there and every render generates new
values; that an upgrade keeps them is checked on a real cluster (tests/e2e). Here: the
templates look the three Secrets up by the names they render, and agree with each other. No
Secret holds anything for evaluation pods: they get no Redis credential."""

import hashlib
import re

from tests.chart import render

ACL_SECRET = f"{render.FULLNAME}-redis"
TOKENS_SECRET = f"{render.FULLNAME}-api-tokens"
INGEST_SECRET = f"{render.FULLNAME}-ingest-key"


def acl_users(manifests: list[render.Manifest]) -> dict[str, str]:
    text = render.secret_value(manifests, ACL_SECRET, "users.acl")
    return {line.split()[1]: line for line in text.splitlines() if line.startswith("user ")}


def test_acl_file_holds_the_dispatcher_password_hash_and_no_other_user(
    defaults: list[render.Manifest],
) -> None:
    users = acl_users(defaults)
    assert set(users) == {"default", "dispatcher"}
    assert " off " in users["default"]
    assert "#" not in users["default"]
    password = render.secret_value(defaults, ACL_SECRET, "dispatcher-password")
    assert len(password) == 32
    assert password.isalnum()
    digest = hashlib.sha256(password.encode()).hexdigest()
    assert f" #{digest} " in users["dispatcher"]
    assert password not in users["dispatcher"]


def test_the_chart_renders_exactly_its_three_secrets(defaults: list[render.Manifest]) -> None:
    secrets = {m["metadata"]["name"]: set(m["data"]) for m in render.find(defaults, "Secret")}
    assert secrets == {
        ACL_SECRET: {"dispatcher-password", "users.acl"},
        TOKENS_SECRET: {"tokens"},
        INGEST_SECRET: {"ingest-key"},
    }


def test_ingest_key_is_long_and_random(defaults: list[render.Manifest]) -> None:
    key = render.secret_value(defaults, INGEST_SECRET, "ingest-key")
    assert len(key) == 64
    assert key.isalnum()
    others = {
        render.secret_value(defaults, ACL_SECRET, "dispatcher-password"),
        render.secret_value(defaults, TOKENS_SECRET, "tokens"),
    }
    assert not [o for o in others if o in key or key in o]


def test_generated_values_are_fresh_without_a_cluster(helm: str) -> None:
    # Different --set values bypass the render cache; lookup is empty, so values are new.
    first = render.template(sets=["commonLabels.run=a"])
    second = render.template(sets=["commonLabels.run=b"])
    for name, key in (
        (ACL_SECRET, "dispatcher-password"),
        (TOKENS_SECRET, "tokens"),
        (INGEST_SECRET, "ingest-key"),
    ):
        assert render.secret_value(first, name, key) != render.secret_value(second, name, key)


def test_templates_look_up_the_secrets_they_render() -> None:
    helpers = (render.CHART / "templates" / "_helpers.tpl").read_text()
    looked_up = re.findall(
        r'lookup "v1" "Secret" \.Release\.Namespace \(printf "%s-([a-z-]+)" \$fullname\)', helpers
    )
    assert sorted(looked_up) == ["api-tokens", "ingest-key", "redis"]
    # Each is kept under the key its Secret stores it in.
    for secret, key in (("redis", "dispatcher-password"), ("api-tokens", "tokens")):
        assert f'"key" "{key}"' in helpers, secret
    assert '"secret" $ingest "key" "ingest-key"' in helpers


def test_checksums_follow_the_data_not_the_labels(
    helm: str, defaults: list[render.Manifest]
) -> None:
    def annotations(manifests: list[render.Manifest]) -> dict[str, str]:
        meta = render.one(manifests, "Deployment")["spec"]["template"]["metadata"]
        return {k: v for k, v in meta["annotations"].items() if k.startswith("checksum/")}

    base = annotations(defaults)
    assert set(base) == {
        "checksum/job-template",
        "checksum/api-tokens",
        "checksum/redis-secret",
        "checksum/ingest-key",
    }
    relabelled = annotations(render.template(sets=["commonLabels.team=x"]))
    assert relabelled["checksum/job-template"] == base["checksum/job-template"]
    override = "apiVersion: batch/v1\nkind: Job\nspec: {}\n"
    changed = annotations(render.template(sets=[f"jobTemplate.override={override}"]))
    assert changed["checksum/job-template"] != base["checksum/job-template"]


def test_job_template_override_replaces_the_file_verbatim(helm: str) -> None:
    override = "# {{ not rendered by helm }}\nkind: Job\nmetadata:\n  name: ${crucible.job_name}\n"
    manifests = render.template(sets=[f"jobTemplate.override={override}"])
    data = render.one(manifests, "ConfigMap", "-job-template")["data"]["job-template.yaml"]
    assert data == override
    default = render.template()
    shipped = (render.CHART / "files" / "job-template.yaml").read_text()
    assert render.one(default, "ConfigMap", "-job-template")["data"]["job-template.yaml"] == shipped


def test_readme_shows_the_acl_the_chart_renders(defaults: list[render.Manifest]) -> None:
    readme = (render.CHART / "README.md").read_text()
    for user, line in acl_users(defaults).items():
        shown = re.sub(r"#[0-9a-f]{64}", f"#<sha256 of {user}-password>", line)
        assert shown in readme, f"README's ACL line for {user} is stale"


def test_existing_redis_secret_replaces_the_generated_redis_secret(helm: str) -> None:
    manifests = render.template(sets=["redis.auth.existingSecret=mine"])
    names = {m["metadata"]["name"] for m in render.find(manifests, "Secret")}
    assert names == {TOKENS_SECRET, INGEST_SECRET}
    spec = render.one(manifests, "StatefulSet")["spec"]["template"]["spec"]
    acl = next(v for v in spec["volumes"] if v["name"] == "acl")
    assert acl["secret"]["secretName"] == "mine"
    env = {
        e["name"]: e
        for e in render.one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0][
            "env"
        ]
    }
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "mine",
        "key": "dispatcher-password",
    }
    # The one reference to the operator's Secret in the Deployment: nothing for sidecars.
    assert [e for e in env.values() if "mine" in str(e)] == [env["REDIS_PASSWORD"]]


def test_existing_ingest_key_secret_replaces_the_generated_one(helm: str) -> None:
    manifests = render.template(
        sets=[
            "dispatcher.ingestKey.existingSecret=my-ingest",
            "dispatcher.ingestKey.existingSecretKey=hmac",
        ]
    )
    assert render.find(manifests, "Secret", "-ingest-key") == []
    spec = render.one(manifests, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if v["name"] == "ingest-key")
    assert volume["secret"]["secretName"] == "my-ingest"
    assert volume["secret"]["items"] == [{"key": "hmac", "path": "key"}]
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "ingest-key")
    assert env["CRUCIBLE_INGEST_KEY_FILE"] == mount["mountPath"] + "/key"
    assert mount["readOnly"] is True
