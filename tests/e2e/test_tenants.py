"""Two tenants and an operator on one release, as a shared platform runs them: each tenant sees
only its own evaluations, both may use the same id, the Job carries the tenant's label."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.e2e import kube
from tests.e2e.api import Dispatcher
from tests.e2e.conftest import VALUES, Release, installed

ACME, GLOBEX, OPERATOR = (secrets.token_hex(16) for _ in range(3))


@pytest.fixture(scope="module")
def tenants_release(cluster_available: None) -> Iterator[Release]:
    entries = f"{OPERATOR}\nacme:{ACME}\nglobex:{GLOBEX}\n"
    with installed(VALUES, tokens=entries) as release:
        yield release


def test_two_tenants_share_an_id_and_see_only_their_own(tenants_release: Release) -> None:
    base = tenants_release.api.base_url
    acme, globex = Dispatcher(base, ACME), Dispatcher(base, GLOBEX)
    operator = tenants_release.api  # the operator's token comes first in the Secret
    for client, word in ((acme, "acme"), (globex, "globex")):
        record = client.submit_ok(eval_id="same", code=f"print('from {word}')")
        assert (record["eval_id"], record["tenant"]) == ("same", word)
    mine = acme.submit_ok(eval_id="only-acme", code="print(1)")

    for client, word in ((acme, "acme"), (globex, "globex")):
        done = client.wait_verified("same")
        assert (done["status"], done["tenant"]) == ("completed", word), done
        assert client.output("same")["stdout"] == f"from {word}\n"
        job = tenants_release.job(done["job_name"])
        assert job["metadata"]["labels"]["crucible.dev/tenant"] == word

    # globex cannot read, cancel, stream or list acme's evaluation: 404 as for a missing one.
    session, url = globex.session, globex.url
    for method, path in (
        ("GET", "/v1/evaluations/only-acme"),
        ("POST", "/v1/evaluations/only-acme/cancel"),
        ("GET", "/v1/evaluations/only-acme/output"),
        ("GET", "/v1/evaluations/only-acme/events"),
    ):
        assert session.request(method, url(path), timeout=30).status_code == 404, (method, path)
    listed = session.get(url("/v1/evaluations"), timeout=30).json()["items"]
    assert {(i["eval_id"], i["tenant"]) for i in listed} == {("same", "globex")}
    # The operator sees both tenants and names acme's evaluation with its tenant.
    assert operator.get(f"acme~{mine['eval_id']}")["tenant"] == "acme"
    everyone = operator.session.get(operator.url("/v1/evaluations"), timeout=30).json()["items"]
    assert {(i["eval_id"], i["tenant"]) for i in everyone} >= {
        ("same", "acme"), ("same", "globex"), ("only-acme", "acme"),
    }  # fmt: skip
    assert acme.wait_verified("only-acme")["status"] == "completed"
    assert kube.kubectl_json("get", "jobs", "-n", tenants_release.namespace, "-l",
                             "crucible.dev/tenant=globex")["items"]  # fmt: skip
