"""SidecarSettings: all the sidecar is told, from ``CRUCIBLE_SIDECAR_*`` environment variables.

Built once in ``__main__.main()`` and passed to the service; nothing else reads the environment.
"""

import pathlib
from typing import Literal

import pydantic
import pydantic_settings

from wire import channel, limits

DEFAULT_SPOOL_DIR = "/crucible/spool"
# JSON escapes a control byte as 6 bytes (\u00XX): chunks up to this size always fit one body.
MAX_BATCH_BYTES = limits.INGEST_BODY_MAX_BYTES // 8


class SidecarSettings(pydantic_settings.BaseSettings):
    model_config = pydantic_settings.SettingsConfigDict(
        env_prefix="CRUCIBLE_SIDECAR_",
        env_nested_delimiter="__",
        frozen=True,
        use_attribute_docstrings=True,
        extra="ignore",
        # A start-up error must not print the credential it was given.
        hide_input_in_errors=True,
    )

    eval_id: str = pydantic.Field(min_length=1, max_length=256)
    """The evaluation this sidecar reports on; part of every event and of the ingest path."""

    socket_path: pathlib.Path = pathlib.Path(channel.DEFAULT_SOCKET)
    """Where the wrapper's channel socket is bound. Its directory is a volume the main container
    mounts read-only: the wrapper can connect, user code cannot replace the socket."""

    peer_parent_pid: int | None = pydantic.Field(default=None, gt=0)
    """Accept only a connection whose process is a child of this pid (``SO_PEERCRED``). The
    local backend sets its own pid: the wrapper is its child, while code of other evaluations
    (same user, same machine) is not. Unset in pods, where only the pod can reach the socket
    and the wrapper's pid is in another PID namespace."""

    spool_dir: pathlib.Path = pathlib.Path(DEFAULT_SPOOL_DIR)
    """A directory only the sidecar can reach (an emptyDir mounted in the sidecar container
    alone): the output received on the channel, and the marker of an accepted channel, which
    tells a restarted sidecar to trust no new connection."""

    ingest_url: pydantic.AnyHttpUrl
    """Base URL of the dispatcher that takes this sidecar's events (``wire.ingest``), e.g.
    ``http://crucible.ns.svc:8080``. A path prefix is kept."""

    ingest_token: pydantic.SecretStr = pydantic.Field(min_length=1)
    """The per-evaluation credential for ingest (Bearer). Good for this evaluation only."""

    ingest_timeout_seconds: float = pydantic.Field(default=10.0, gt=0)
    """Connecting plus one request and its reply; past it the request counts as failed and the
    same batch is retried (its dedup tokens make a lost reply harmless)."""

    output_cap_bytes: int = pydantic.Field(default=channel.DEFAULT_OUTPUT_CAP_BYTES, ge=1)
    """Most bytes per stream the sidecar keeps and publishes, whatever the wrapper sends; the
    truncation marker follows once, the rest is dropped and counted."""

    batch_bytes: int = pydantic.Field(default=64 * 1024, ge=64, le=MAX_BATCH_BYTES)
    """Most output bytes in one ``output`` event. 64 KiB keeps 8 MiB of output (the cap) to
    about 130 events per stream while each event stays small for SSE clients."""

    batch_interval_seconds: float = pydantic.Field(default=0.02, ge=0)
    """How long new output may wait for more before it is published: trades a little latency
    for far fewer events when a program prints many small lines."""

    drain_deadline_seconds: float = pydantic.Field(default=10.0, gt=0)
    """After SIGTERM, how long the sidecar may keep reading the channel and publishing before it
    gives up. Must stay below the pod's terminationGracePeriodSeconds (30 s by default)."""

    exit_after_terminal: bool = True
    """Exit 0 once everything is published (the terminal event last): right for the local
    backend and for a plain sidecar container, whose exit lets the Job complete. Set false for a
    native sidecar (restartPolicy: Always), which the kubelet would restart: it stays up until
    SIGTERM."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level of the sidecar's stderr log."""

    @pydantic.field_validator("ingest_token")
    @classmethod
    def _header_safe(cls, value: pydantic.SecretStr) -> pydantic.SecretStr:
        # It goes into an HTTP header as is: visible ASCII only (an HMAC hex digest is).
        token = value.get_secret_value()
        if not (token.isascii() and token.isprintable() and " " not in token):
            raise ValueError("the ingest token must be visible ASCII")
        return value
