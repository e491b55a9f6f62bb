"""SidecarSettings from the environment, and what the sidecar's errors and imports expose."""

import ast
import dataclasses
import inspect
import math
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from sidecar import errors, settings
from wire import channel, sidecar_env

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
REQUIRED = {"eval_id": "ev", "ingest_url": "http://dispatcher:8080", "ingest_token": "t0k3n"}


@pytest.fixture(autouse=True)
def _no_sidecar_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.upper().startswith(settings.ENV_PREFIX)]:
        monkeypatch.delenv(name)


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
    monkeypatch.setenv("CRUCIBLE_SIDECAR_PEER_PARENT_PID", "4242")
    monkeypatch.setenv("CRUCIBLE_SIDECAR_BATCH_INTERVAL_SECONDS", "0")
    monkeypatch.setenv("CRUCIBLE_SIDECAR_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("crucible_sidecar_drain_deadline_seconds", "2.5")  # any case, as before
    monkeypatch.setenv("CRUCIBLE_SIDECAR_REDIS_URL", "redis://old")  # unknown: ignored
    config = settings.SidecarSettings()  # the environment supplies the required fields
    assert config.eval_id == "ev-9"
    assert str(config.ingest_url) == "http://crucible.ns.svc:8080/prefix"
    assert config.ingest_token.get_secret_value() == "abc123"
    assert (config.socket_path, config.spool_dir) == (tmp_path / "s.sock", tmp_path)
    assert config.exit_after_terminal is False
    assert config.output_cap_bytes == 1000
    assert config.peer_parent_pid == 4242
    assert config.batch_interval_seconds == 0.0
    assert isinstance(config.batch_interval_seconds, float)
    assert config.drain_deadline_seconds == 2.5
    assert config.log_level == "DEBUG"


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRUCIBLE_SIDECAR_EVAL_ID", "from-env")
    monkeypatch.setenv("CRUCIBLE_SIDECAR_BATCH_BYTES", "1024")
    config = settings.SidecarSettings(**REQUIRED)  # type: ignore[arg-type]
    assert (config.eval_id, config.batch_bytes) == ("ev", 1024)


def test_defaults_suit_the_pod_layout_and_a_30s_grace_period() -> None:
    config = settings.SidecarSettings(**REQUIRED)  # type: ignore[arg-type]
    assert str(config.socket_path) == channel.DEFAULT_SOCKET
    assert str(config.spool_dir) == "/crucible/spool"
    assert config.peer_parent_pid is None
    assert config.output_cap_bytes == channel.DEFAULT_OUTPUT_CAP_BYTES
    assert config.batch_bytes == 64 * 1024
    assert config.batch_interval_seconds == 0.02
    assert config.ingest_timeout_seconds == 10.0
    assert config.drain_deadline_seconds < 30
    assert config.exit_after_terminal is True
    assert config.log_level == "INFO"


@pytest.mark.parametrize(
    ("spelling", "value"),
    [
        *[("true", True), ("True", True), ("1", True), ("yes", True), ("on", True)],
        *[("false", False), ("FALSE", False), ("0", False), ("no", False), ("off", False)],
    ],
)
def test_booleans_are_read_as_before(
    monkeypatch: pytest.MonkeyPatch, spelling: str, value: bool
) -> None:
    monkeypatch.setenv("CRUCIBLE_SIDECAR_EXIT_AFTER_TERMINAL", spelling)
    assert settings.SidecarSettings(**REQUIRED).exit_after_terminal is value  # type: ignore[arg-type]


def test_the_token_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    config = settings.SidecarSettings(**REQUIRED)  # type: ignore[arg-type]
    assert "t0k3n" not in repr(config)
    assert "t0k3n" not in str(config)
    assert "t0k3n" not in str(dataclasses.asdict(config))
    assert "t0k3n" not in f"{config.ingest_token}"
    with pytest.raises(settings.SettingsError) as caught:
        settings.SidecarSettings(**{**REQUIRED, "ingest_token": "bad token\r\n"})  # type: ignore[arg-type]
    assert "bad token" not in str(caught.value)
    assert (
        "ingest_token (CRUCIBLE_SIDECAR_INGEST_TOKEN): the ingest token must be visible ASCII"
        in (str(caught.value))
    )


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_eval_id_and_the_ingest_link_are_required(missing: str) -> None:
    values = {k: v for k, v in REQUIRED.items() if k != missing}
    with pytest.raises(settings.SettingsError, match=f"{missing} .*: required"):
        settings.SidecarSettings(**values)  # type: ignore[arg-type]


def test_settings_are_frozen() -> None:
    config = settings.SidecarSettings(**REQUIRED)  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.eval_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "bad",
    [
        {"batch_bytes": 3},
        {"batch_bytes": settings.MAX_BATCH_BYTES + 1},
        {"batch_bytes": "64k"},
        {"batch_bytes": 1.5},
        {"batch_bytes": True},
        {"drain_deadline_seconds": 0},
        {"drain_deadline_seconds": "nan"},
        {"ingest_timeout_seconds": -1},
        {"batch_interval_seconds": -0.1},
        {"output_cap_bytes": 0},
        {"peer_parent_pid": 0},
        {"peer_parent_pid": ""},
        {"ingest_url": "redis://redis:6379/0"},
        {"ingest_url": "http://"},
        {"ingest_url": "http://host:99999"},
        {"ingest_url": "http://host/a b"},
        {"ingest_url": "dispatcher:8080"},
        {"ingest_token": ""},
        {"eval_id": ""},
        {"eval_id": "x" * 257},
        {"exit_after_terminal": "maybe"},
        {"log_level": "debug"},
        {"spool_dir": ""},
    ],
)
def test_nonsense_is_rejected_at_start(bad: dict[str, object]) -> None:
    name = next(iter(bad))
    with pytest.raises(
        settings.SettingsError, match=f"{name} \\(CRUCIBLE_SIDECAR_{name.upper()}\\)"
    ):
        settings.SidecarSettings(**{**REQUIRED, **bad})  # type: ignore[arg-type]


def test_every_problem_is_named_at_once_without_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRUCIBLE_SIDECAR_INGEST_URL", "ftp://secret-host")
    monkeypatch.setenv("CRUCIBLE_SIDECAR_INGEST_TOKEN", "s3cr3t value")
    monkeypatch.setenv("CRUCIBLE_SIDECAR_BATCH_BYTES", "12345678901")
    with pytest.raises(settings.SettingsError) as caught:
        settings.SidecarSettings()
    message = str(caught.value)
    assert message.splitlines() == [
        "invalid settings:",
        "  eval_id (CRUCIBLE_SIDECAR_EVAL_ID): required",
        "  ingest_url (CRUCIBLE_SIDECAR_INGEST_URL): must be an http:// or https:// URL with a"
        " host",
        "  ingest_token (CRUCIBLE_SIDECAR_INGEST_TOKEN): the ingest token must be visible ASCII",
        f"  batch_bytes (CRUCIBLE_SIDECAR_BATCH_BYTES): must be an integer from 64 to"
        f" {settings.MAX_BATCH_BYTES}",
    ]
    assert isinstance(caught.value, ValueError)


def test_numbers_keep_their_bounds_and_types() -> None:
    config = settings.SidecarSettings(
        **REQUIRED,  # type: ignore[arg-type]
        batch_bytes=settings.MAX_BATCH_BYTES,
        output_cap_bytes="1",
        ingest_timeout_seconds=3,
        drain_deadline_seconds=math.inf,  # as before: > 0 holds
        socket_path=pathlib.Path("/x/s.sock"),
        spool_dir="/y",
    )
    assert (config.batch_bytes, config.output_cap_bytes) == (settings.MAX_BATCH_BYTES, 1)
    assert isinstance(config.ingest_timeout_seconds, float)
    assert (config.socket_path, config.spool_dir) == (pathlib.Path("/x/s.sock"), pathlib.Path("/y"))


def test_every_field_is_documented() -> None:
    """An attribute docstring follows each field (the source is read: the class keeps none)."""
    source = textwrap.dedent(inspect.getsource(settings.SidecarSettings))
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    documented = {
        statement.target.id
        for statement, following in zip(body.body, body.body[1:], strict=False)
        if isinstance(statement, ast.AnnAssign)
        and isinstance(statement.target, ast.Name)
        and isinstance(following, ast.Expr)
        and isinstance(following.value, ast.Constant)
        and isinstance(following.value.value, str)
    }
    assert documented == {field.name for field in dataclasses.fields(settings.SidecarSettings)}


def test_errors_are_the_sidecar_s_own_and_bounded() -> None:
    for error in (errors.PublishRejectedError, errors.IngestUnavailableError, errors.SpoolError):
        assert issubclass(error, errors.SidecarError)
    assert len(errors.bounded("x" * 10_000)) <= errors.UPSTREAM_TEXT_LIMIT + 3


def loaded_by_the_sidecar(ingest_url: str) -> set[str]:
    """The modules a fresh ``python -m sidecar`` holds once it runs (loaded in the order of
    ``__main__.main``), by top-level name; plus ``asyncio_first`` if importing ``__main__``
    alone loaded asyncio (too early for ``keep_ssl_out``)."""
    code = (
        "import sys, sidecar.__main__ as m;"
        "early = 'asyncio' in sys.modules;"
        f"m.keep_ssl_out({ingest_url!r});"
        "import asyncio, sidecar.service;"
        "print(','.join(['asyncio_first'] * early + [n.split('.')[0] for n, mod in"
        " sys.modules.items() if mod is not None]))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    ).stdout.strip()
    return set(output.split(","))


def test_the_sidecar_imports_no_redis_no_http_library_and_no_dispatcher() -> None:
    """Its memory is paid per pod: no pydantic (the events are plain dicts, ``wire.event_dicts``),
    no library it does not use, and ssl only for an https ingest URL."""
    loaded = loaded_by_the_sidecar("http://dispatcher:8080")
    forbidden = {
        *("redis", "aiohttp", "httpx", "requests", "dispatcher", "wrapper"),
        *("pydantic", "pydantic_core", "pydantic_settings", "typing_extensions"),
        *("ssl", "_ssl", "email", "http", "hashlib", "_hashlib", "zoneinfo", "decimal"),
        "asyncio_first",  # asyncio must load after keep_ssl_out, not with __main__
    }
    assert loaded & forbidden == set()
    assert {"asyncio", "sidecar", "wire"} <= loaded


def test_ssl_loads_for_an_https_ingest_url() -> None:
    assert "ssl" in loaded_by_the_sidecar("https://dispatcher:8443")


def test_what_the_backends_write_is_what_the_sidecar_reads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    env = sidecar_env.channel_env(
        eval_id="e-1",
        socket_path=str(tmp_path / "channel.sock"),
        spool_dir=str(tmp_path / "spool"),
        exit_after_terminal=False,
        peer_parent_pid=4242,
    ) | sidecar_env.ingest_env("http://dispatcher:8080", "t" * 64)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    read = settings.SidecarSettings()
    assert (read.eval_id, read.exit_after_terminal, read.peer_parent_pid) == ("e-1", False, 4242)
    assert (read.socket_path, read.spool_dir) == (tmp_path / "channel.sock", tmp_path / "spool")
    assert str(read.ingest_url).rstrip("/") == "http://dispatcher:8080"
    assert read.ingest_token.get_secret_value() == "t" * 64
