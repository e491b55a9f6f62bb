import json

import pytest
from kubernetes.client.exceptions import ApiException

from dispatcher import errors
from dispatcher.backends.kube import client


def api_error(status: int, message: str, headers: dict[str, str] | None = None) -> ApiException:
    e = ApiException(status=status, reason="Reason")
    e.body = json.dumps({"kind": "Status", "code": status, "message": message})
    e.headers = headers or {}
    return e


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (
            422,
            'Job.batch "x" is invalid: spec.template.spec.containers[0].resources',
            errors.InvalidRequestError,
        ),
        (400, "bad request", errors.InvalidRequestError),
        (
            403,
            "forbidden: exceeded quota: evals, requested: count/jobs.batch=1",
            errors.QueueFullError,
        ),
        (403, 'jobs.batch is forbidden: User "x" cannot create', errors.BackendUnavailableError),
        (401, "Unauthorized", errors.BackendUnavailableError),
        (500, "etcdserver: request timed out", errors.BackendUnavailableError),
    ],
)
def test_api_statuses_map_to_dispatcher_errors(
    status: int, message: str, kind: type[errors.DispatcherError]
) -> None:
    translated = client.translate(api_error(status, message))
    assert type(translated) is kind
    assert message[:40] in translated.message


def test_too_many_requests_keeps_the_servers_retry_after() -> None:
    translated = client.translate(api_error(429, "slow down", {"Retry-After": "7"}))
    assert isinstance(translated, errors.QueueFullError)
    assert translated.retry_after_seconds == 7


def test_upstream_text_is_bounded_and_bodies_need_not_be_json() -> None:
    huge = client.translate(api_error(500, "x" * 100_000))
    assert len(huge.message) < errors.MAX_UPSTREAM_TEXT + 100
    odd = ApiException(status=502, reason="Bad Gateway")
    odd.body = "<html>proxy error</html>"
    assert "proxy error" in client.translate(odd).message


def test_crucible_errors_do_not_leak_the_client_library() -> None:
    kinds: list[type[Exception]] = [errors.DispatcherError]
    kinds += errors.DispatcherError.__subclasses__()
    assert len(kinds) > 5
    for kind in kinds:
        assert not issubclass(kind, ApiException)
