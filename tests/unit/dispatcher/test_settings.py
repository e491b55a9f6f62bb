"""Dispatcher settings: environment names, defaults, cross-field checks at startup."""

import pathlib

import pydantic
import pytest

from dispatcher.settings import DispatcherSettings


def test_environment_with_prefix_and_nested_delimiter(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CRUCIBLE_BACKEND", "kubernetes")
    monkeypatch.setenv("CRUCIBLE_API_TOKENS", "one, two")
    monkeypatch.setenv("CRUCIBLE_LIMITS__TIMEOUT_SECONDS_MAX", "600")
    monkeypatch.setenv("CRUCIBLE_LOCAL__CONCURRENCY", "0")
    monkeypatch.setenv("CRUCIBLE_STREAMS__EVAL_STREAM_MAXLEN", "500")
    monkeypatch.setenv("CRUCIBLE_KUBERNETES__NAMESPACE", "evals")
    monkeypatch.setenv("CRUCIBLE_SIDECAR_EVAL_ID", "not ours: ignored")
    settings = DispatcherSettings()
    assert settings.backend == "kubernetes"
    assert settings.api_tokens == ["one", "two"]
    assert settings.limits.timeout_seconds_max == 600
    assert settings.local.concurrency == 0
    assert settings.streams.eval_stream_maxlen == 500
    assert settings.kubernetes.namespace == "evals"


def test_tokens_as_json_list(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CRUCIBLE_API_TOKENS", '["a,b", "c"]')
    assert DispatcherSettings().api_tokens == ["a,b", "c"]


def test_tokens_file_adds_tokens(tmp_path: pathlib.Path):
    path = tmp_path / "tokens"
    path.write_text("x\n\n y \n")
    settings = DispatcherSettings(api_tokens=["x"], api_tokens_file=path)
    assert settings.tokens() == ("x", "y")


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.com", "::"])
def test_refuses_a_non_loopback_bind_without_tokens(host: str):
    with pytest.raises(pydantic.ValidationError, match="without api_tokens"):
        DispatcherSettings(host=host)
    assert DispatcherSettings(host=host, api_tokens=["t"]).host == host
    assert DispatcherSettings(host=host, allow_unauthenticated=True).host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_bind_may_run_without_tokens(host: str):
    assert DispatcherSettings(host=host).loopback


@pytest.mark.parametrize(
    "values",
    [
        {"default_image": "ruby"},
        {"limits": {"timeout_seconds_default": 100, "timeout_seconds_max": 50}},
        {"limits": {"cpu_default": "8"}},
        {"limits": {"memory_max": "lots"}},
        {"redis_url": "http://localhost"},
        {"record_ttl_seconds": 10, "streams": {"ttl_seconds": 5}},
        {"api_tokens_file": "/nonexistent/tokens"},
        {"unknown_setting": 1},
    ],
)
def test_inconsistent_settings_fail_at_startup(values: dict[str, object]):
    with pytest.raises(pydantic.ValidationError):
        DispatcherSettings(**values)  # type: ignore[arg-type]


def test_every_field_is_documented():
    def check(model: type[pydantic.BaseModel]) -> None:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no docstring"

    check(DispatcherSettings)
    from dispatcher.api.schema.limits import Limits
    from dispatcher.settings import ConsumerConfig

    check(Limits)
    check(ConsumerConfig)
