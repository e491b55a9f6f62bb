"""SidecarSettings from the environment, and what the sidecar's errors expose."""

import pathlib
import subprocess
import sys

import pydantic
import pytest

from sidecar import errors, settings
from wire import channel

REQUIRED = {"eval_id": "ev", "ingest_url": "http://dispatcher:8080", "ingest_token": "t0k3n"}


def test_settings_come_from_crucible_sidecar_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setenv("CRUCIBLE_SIDECAR_EVAL_ID", "ev-9")
    monkeypatch.setenv("CRUCIBLE_SIDECAR_INGEST_URL", "http://crucible.ns.svc:8080/prefix")
    monkeypatch.setenv("CRUCIBLE_SIDECAR_INGEST_TOKEN", "abc123")
    monkeypatch.setenv("CRUCIBLE_SIDECAR_SOCKET_PATH", str(tmp_path / "s.sock"))
    monkeypatch.setenv("CRUCIBLE_SIDECAR_SPOOL_DIR", str(tmp_path))
    monkeypatch.setenv("CRUCIBLE_SIDECAR_EXIT_AFTER_TERMINAL", "false")
    monkeypatch.setenv("CRUCIBLE_SIDECAR_OUTPUT_CAP_BYTES", "1000")
    config = settings.SidecarSettings()  # the environment supplies the required fields
    assert config.eval_id == "ev-9"
    assert str(config.ingest_url) == "http://crucible.ns.svc:8080/prefix"
    assert config.ingest_token.get_secret_value() == "abc123"
    assert (config.socket_path, config.spool_dir) == (tmp_path / "s.sock", tmp_path)
    assert config.exit_after_terminal is False
    assert config.output_cap_bytes == 1000


def test_defaults_suit_the_pod_layout_and_a_30s_grace_period() -> None:
    config = settings.SidecarSettings(**REQUIRED)  # type: ignore[arg-type]
    assert str(config.socket_path) == channel.DEFAULT_SOCKET
    assert str(config.spool_dir) == "/crucible/spool"
    assert config.output_cap_bytes == channel.DEFAULT_OUTPUT_CAP_BYTES
    assert config.batch_bytes == 64 * 1024
    assert config.batch_interval_seconds == 0.02
    assert config.drain_deadline_seconds < 30
    assert config.exit_after_terminal is True


def test_the_token_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    config = settings.SidecarSettings(**REQUIRED)  # type: ignore[arg-type]
    assert "t0k3n" not in repr(config)
    assert "t0k3n" not in str(config.model_dump())
    with pytest.raises(pydantic.ValidationError) as caught:
        settings.SidecarSettings(**{**REQUIRED, "ingest_token": "bad token\r\n"})  # type: ignore[arg-type]
    assert "bad token" not in str(caught.value)


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_eval_id_and_the_ingest_link_are_required(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    for name in REQUIRED:
        monkeypatch.delenv(f"CRUCIBLE_SIDECAR_{name.upper()}", raising=False)
    values = {k: v for k, v in REQUIRED.items() if k != missing}
    with pytest.raises(pydantic.ValidationError, match=missing):
        settings.SidecarSettings(**values)  # type: ignore[arg-type]


def test_settings_are_frozen() -> None:
    config = settings.SidecarSettings(**REQUIRED)  # type: ignore[arg-type]
    with pytest.raises(pydantic.ValidationError):
        config.eval_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "bad",
    [
        {"batch_bytes": 3},
        {"batch_bytes": settings.MAX_BATCH_BYTES + 1},
        {"drain_deadline_seconds": 0},
        {"output_cap_bytes": 0},
        {"ingest_url": "redis://redis:6379/0"},
        {"ingest_token": ""},
    ],
)
def test_nonsense_is_rejected_at_start(bad: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        settings.SidecarSettings(**{**REQUIRED, **bad})  # type: ignore[arg-type]


def test_every_field_is_documented() -> None:
    for name, field in settings.SidecarSettings.model_fields.items():
        assert field.description, f"{name} has no docstring"


def test_errors_are_the_sidecar_s_own_and_bounded() -> None:
    for error in (errors.PublishRejectedError, errors.IngestUnavailableError, errors.SpoolError):
        assert issubclass(error, errors.SidecarError)
    assert len(errors.bounded("x" * 10_000)) <= errors.UPSTREAM_TEXT_LIMIT + 3


def test_the_sidecar_imports_no_redis_no_http_library_and_no_dispatcher() -> None:
    code = (
        "import sys, sidecar.__main__;"
        "bad = [m for m in sys.modules if m.split('.')[0] in"
        " ('redis', 'aiohttp', 'httpx', 'requests', 'dispatcher', 'wrapper')];"
        "print(','.join(bad))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert found == ""
