"""``crucible.Client`` against a live dispatcher (local backend, real Redis, two tenants)."""

import traceback

import pytest

import crucible
from tests.integration.client.conftest import (
    ACME_TOKEN,
    GLOBEX_TOKEN,
    LIMITED_TOKEN,
    OPERATOR_TOKEN,
    SLEEPER,
    assert_no_token,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def acme(dispatcher_url: str) -> crucible.Client:
    return crucible.Client(dispatcher_url, ACME_TOKEN)


def test_submit_then_wait_returns_the_completed_verified_record_with_its_output(
    acme: crucible.Client,
) -> None:
    submitted = acme.submit("print(6 * 7)", eval_id="sync-answer", labels={"suite": "client"})
    assert (submitted.eval_id, submitted.tenant, submitted.status) == (
        "sync-answer",
        "acme",
        "accepted",
    )
    record = acme.wait(submitted.eval_id, timeout=30)
    assert (record.status, record.verified, record.exit_code) == ("completed", True, 0)
    assert record.output == "42\n"
    assert record.labels == {"suite": "client"}
    assert record.command[:3] == ("python", "-u", "-c")
    assert acme.output("sync-answer") == crucible.Output(stdout="42\n", stderr="", truncated=False)


def test_watch_yields_running_output_and_the_verified_end_in_order_with_the_tenant(
    acme: crucible.Client,
) -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    acme.submit(code, eval_id="sync-watch")
    seen = list(acme.watch("sync-watch"))
    types = [e.type for e in seen]
    assert types.index("running") < types.index("output") < types.index("failed")
    assert seen[-1].final
    assert seen[-1].exit_code == 3
    assert {(e.eval_id, e.tenant) for e in seen} == {("sync-watch", "acme")}
    printed = {(e.stream, e.data) for e in seen if e.type == "output"}
    assert printed == {("stdout", "out\n"), ("stderr", "err\n")}
    assert [e.seq for e in seen] == sorted(e.seq for e in seen if e.seq is not None)

    resumed = list(acme.watch("sync-watch", last_event_id=seen[1].id))
    assert [e.id for e in resumed] == [e.id for e in seen[2:]]


def test_list_follows_next_cursor_across_pages_newest_first(dispatcher_url: str) -> None:
    client = crucible.Client(dispatcher_url, GLOBEX_TOKEN)
    ids = [client.submit("pass", eval_id=f"sync-page-{n}").eval_id for n in range(5)]
    listed = [e.eval_id for e in client.list(limit=2)]
    assert [i for i in listed if i in ids] == ids[::-1]
    assert all(e.tenant == "globex" for e in client.list(limit=2))
    for eval_id in ids:
        client.wait(eval_id, timeout=30)
    completed = {e.eval_id for e in client.list(status="completed", limit=2)}
    assert set(ids) <= completed


def test_cancel_of_a_long_running_evaluation_ends_it_cancelled(acme: crucible.Client) -> None:
    acme.submit(SLEEPER, eval_id="sync-cancel")
    running = next(e for e in acme.watch("sync-cancel") if e.type == "running")
    assert running.started_at is not None
    answered = acme.cancel("sync-cancel")
    assert answered.eval_id == "sync-cancel"
    record = acme.wait("sync-cancel", timeout=30)
    assert (record.status, record.verified) == ("cancelled", True)


def test_wait_gives_up_after_its_timeout_and_the_evaluation_goes_on(
    acme: crucible.Client,
) -> None:
    acme.submit(SLEEPER, eval_id="sync-slow")
    with pytest.raises(crucible.WaitTimeoutError):
        acme.wait("sync-slow", timeout=0.5)
    assert not acme.get("sync-slow").terminal
    acme.cancel("sync-slow")


def test_another_tenants_evaluation_is_not_found_but_an_operator_names_it(
    acme: crucible.Client, dispatcher_url: str
) -> None:
    acme.submit("pass", eval_id="sync-private")
    globex = crucible.Client(dispatcher_url, GLOBEX_TOKEN)
    for call in (globex.get, globex.cancel, globex.output):
        with pytest.raises(crucible.NotFoundError) as caught:
            call("sync-private")
        assert (caught.value.status, caught.value.code) == (404, "not_found")
    with pytest.raises(crucible.NotFoundError):
        list(globex.watch("sync-private"))
    operator = crucible.Client(dispatcher_url, OPERATOR_TOKEN)
    record = operator.get("acme~sync-private")
    assert (record.eval_id, record.tenant, record.qualified_id) == (
        "sync-private",
        "acme",
        "acme~sync-private",
    )


def test_an_invalid_submission_names_every_bad_field(acme: crucible.Client) -> None:
    with pytest.raises(crucible.InvalidRequestError) as caught:
        acme.submit(
            "print(1)",
            timeout_seconds=0.1,
            resources={"memory": "lots"},
            env={"LD_PRELOAD": "/tmp/x.so"},
        )
    error = caught.value
    assert (error.status, error.code) == (422, "invalid_request")
    assert set(error.field_errors) >= {"timeout_seconds", "resources.memory"}
    assert any(field.startswith("env") for field in error.field_errors)
    assert "timeout_seconds" in str(error)


def test_over_a_tenant_limit_a_submission_is_rate_limited_with_retry_after(
    dispatcher_url: str,
) -> None:
    client = crucible.Client(dispatcher_url, LIMITED_TOKEN)
    client.submit(SLEEPER, eval_id="sync-limit-1")
    with pytest.raises(crucible.RateLimitedError) as caught:
        client.submit("pass", eval_id="sync-limit-2")
    assert caught.value.status == 429
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 0
    with pytest.raises(crucible.NotFoundError):
        client.get("sync-limit-2")  # nothing was created
    client.cancel("sync-limit-1")
    assert client.wait("sync-limit-1", timeout=30).status == "cancelled"


def test_url_and_token_come_from_the_environment_when_not_passed(
    dispatcher_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRUCIBLE_URL", dispatcher_url)
    with crucible.Client() as anonymous, pytest.raises(crucible.UnauthorizedError):
        anonymous.get("anything")
    monkeypatch.setenv("CRUCIBLE_TOKEN", GLOBEX_TOKEN)
    with crucible.Client() as client:
        assert client.url == dispatcher_url
        assert client.submit("pass", eval_id="sync-from-env").tenant == "globex"


def test_the_token_never_shows_in_reprs_or_errors(dispatcher_url: str) -> None:
    client = crucible.Client(dispatcher_url, ACME_TOKEN)
    assert_no_token(repr(client), repr(vars(client)))
    errors: list[crucible.CrucibleError] = []
    # The dispatcher echoes a bad value back: here, the token itself.
    with pytest.raises(crucible.InvalidRequestError) as invalid:
        client.submit("pass", resources={"cpu": ACME_TOKEN})
    errors.append(invalid.value)
    with pytest.raises(crucible.NotFoundError) as missing:
        client.get(ACME_TOKEN)
    errors.append(missing.value)
    with pytest.raises(crucible.UnauthorizedError) as refused:
        crucible.Client(dispatcher_url, ACME_TOKEN + "-wrong").get("x")
    errors.append(refused.value)
    with pytest.raises(crucible.TransportError) as unreachable:
        crucible.Client("http://127.0.0.1:9", ACME_TOKEN).get("x")
    errors.append(unreachable.value)
    for error in errors:
        shown = "".join(traceback.format_exception(error))
        assert_no_token(str(error), repr(error), shown, repr(getattr(error, "details", None)))
