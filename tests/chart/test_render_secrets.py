"""Generated secrets: one set of values per render, shared by every template that needs them,
and kept across upgrades through `lookup`.

`helm template` has no cluster, so `lookup` finds nothing there and every render generates new
values; that an upgrade keeps them is checked on a real cluster (tests/e2e). Here: the
templates look the three Secrets up by the names they render, and agree with each other."""

import hashlib
import re

from tests.chart import render

ACL_SECRET = f"{render.FULLNAME}-redis"
SIDECAR_SECRET = f"{render.FULLNAME}-sidecar-redis"
TOKENS_SECRET = f"{render.FULLNAME}-api-tokens"


def acl_users(manifests: list[render.Manifest]) -> dict[str, str]:
    text = render.secret_value(manifests, ACL_SECRET, "users.acl")
    return {line.split()[1]: line for line in text.splitlines() if line.startswith("user ")}


def test_acl_file_holds_the_hashes_of_the_passwords_in_the_other_secrets(
    defaults: list[render.Manifest],
) -> None:
    users = acl_users(defaults)
    assert set(users) == {"default", "dispatcher", "sidecar"}
    assert " off " in users["default"]
    assert "#" not in users["default"]
    for user, secret, key in (
        ("dispatcher", ACL_SECRET, "dispatcher-password"),
        ("sidecar", SIDECAR_SECRET, "password"),
    ):
        password = render.secret_value(defaults, secret, key)
        assert len(password) == 32
        assert password.isalnum()
        digest = hashlib.sha256(password.encode()).hexdigest()
        assert f" #{digest} " in users[user]
        assert password not in users[user]


def test_generated_values_are_fresh_without_a_cluster(helm: str) -> None:
    # Different --set values bypass the render cache; lookup is empty, so values are new.
    first = render.template(sets=["commonLabels.run=a"])
    second = render.template(sets=["commonLabels.run=b"])
    for name, key in (
        (ACL_SECRET, "dispatcher-password"),
        (SIDECAR_SECRET, "password"),
        (TOKENS_SECRET, "tokens"),
    ):
        assert render.secret_value(first, name, key) != render.secret_value(second, name, key)


def test_templates_look_up_the_secrets_they_render() -> None:
    helpers = (render.CHART / "templates" / "_helpers.tpl").read_text()
    looked_up = re.findall(
        r'lookup "v1" "Secret" \.Release\.Namespace \(printf "%s-([a-z-]+)" \$fullname\)', helpers
    )
    assert sorted(looked_up) == ["api-tokens", "redis", "sidecar-redis"]


def test_checksums_follow_the_data_not_the_labels(
    helm: str, defaults: list[render.Manifest]
) -> None:
    def annotations(manifests: list[render.Manifest]) -> dict[str, str]:
        meta = render.one(manifests, "Deployment")["spec"]["template"]["metadata"]
        return {k: v for k, v in meta["annotations"].items() if k.startswith("checksum/")}

    base = annotations(defaults)
    assert set(base) == {"checksum/job-template", "checksum/api-tokens", "checksum/redis-secret"}
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


def test_existing_redis_secret_replaces_every_generated_redis_secret(helm: str) -> None:
    manifests = render.template(sets=["redis.auth.existingSecret=mine"])
    names = {m["metadata"]["name"] for m in render.find(manifests, "Secret")}
    assert names == {TOKENS_SECRET}
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
    assert env["CRUCIBLE_KUBERNETES__REDIS_PASSWORD_SECRET"]["value"] == "mine"
    assert env["CRUCIBLE_KUBERNETES__REDIS_PASSWORD_SECRET_KEY"]["value"] == "sidecar-password"
