"""SidecarSettings from the environment, and what the sidecar's errors expose."""

import pathlib

import pydantic
import pytest
import redis.exceptions

from sidecar import errors, settings


def test_settings_come_from_crucible_sidecar_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("CRUCIBLE_SIDECAR_EVAL_ID", "ev-9")
    monkeypatch.setenv("CRUCIBLE_SIDECAR_REDIS_URL", "redis://sidecar@redis:6379/0")
    monkeypatch.setenv("CRUCIBLE_SIDECAR_REDIS_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("CRUCIBLE_SIDECAR_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CRUCIBLE_SIDECAR_EXIT_AFTER_TERMINAL", "false")
    monkeypatch.setenv("CRUCIBLE_SIDECAR_TTL_SECONDS", "60")
    config = settings.SidecarSettings()  # the environment supplies eval_id
    assert config.eval_id == "ev-9"
    assert config.redis_password() == "s3cret"
    assert config.state_dir == tmp_path
    assert config.exit_after_terminal is False
    assert config.limits().ttl_seconds == 60
    assert str(config.redis_url) == "redis://sidecar@redis:6379/0"


def test_defaults_suit_the_wrapper_cap_and_a_30s_grace_period() -> None:
    config = settings.SidecarSettings(eval_id="ev")
    assert config.batch_bytes == 64 * 1024
    assert config.backlog_max_bytes > 8 * 1024 * 1024
    assert config.drain_deadline_seconds < 30
    assert config.redis_password() is None
    assert str(config.state_dir) == "/crucible/state"


def test_eval_id_is_required_and_settings_are_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRUCIBLE_SIDECAR_EVAL_ID", raising=False)
    with pytest.raises(pydantic.ValidationError, match="eval_id"):
        settings.SidecarSettings()
    config = settings.SidecarSettings(eval_id="ev")
    with pytest.raises(pydantic.ValidationError):
        config.eval_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "bad", [{"batch_bytes": 3}, {"drain_deadline_seconds": 0}, {"watch": "fanotify"}]
)
def test_nonsense_is_rejected_at_start(bad: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        settings.SidecarSettings(eval_id="ev", **bad)  # type: ignore[arg-type]


def test_every_field_is_documented() -> None:
    for name, field in settings.SidecarSettings.model_fields.items():
        assert field.description, f"{name} has no docstring"


def test_sidecar_errors_do_not_leak_the_redis_client_types() -> None:
    assert not issubclass(errors.PublishRejectedError, redis.exceptions.RedisError)
    assert issubclass(errors.PublishRejectedError, errors.SidecarError)
    assert len(errors.bounded("x" * 10_000)) <= errors.UPSTREAM_TEXT_LIMIT + 3
