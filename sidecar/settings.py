"""SidecarSettings: all the sidecar is told, from ``CRUCIBLE_SIDECAR_*`` environment variables.

Built once in ``__main__.main()`` and passed to the service; nothing else reads the environment.
"""

import pathlib
from typing import Literal

import pydantic
import pydantic_settings

from sidecar import streams
from wrapper import state


class SidecarSettings(pydantic_settings.BaseSettings):
    model_config = pydantic_settings.SettingsConfigDict(
        env_prefix="CRUCIBLE_SIDECAR_",
        env_nested_delimiter="__",
        frozen=True,
        use_attribute_docstrings=True,
        extra="ignore",
    )

    eval_id: str = pydantic.Field(min_length=1, max_length=256)
    """The evaluation this sidecar reports on; part of every event and Redis key. Required."""

    redis_url: pydantic.RedisDsn = pydantic.RedisDsn("redis://127.0.0.1:6379/0")
    """Where events go. A user name may be in the URL (``redis://sidecar@host:6379/0``); the
    password is better passed as a file (``redis_password_file``)."""

    redis_password_file: pathlib.Path | None = None
    """A file holding the Redis password (Kubernetes mounts the sidecar's ACL password as a
    Secret volume); surrounding whitespace is ignored. None: the URL's password, if any."""

    redis_timeout_seconds: float = pydantic.Field(default=5.0, gt=0)
    """Socket timeout for connecting and for each publish; a hung server counts as unavailable
    and the publish is retried (the dedup token makes a retry of a lost reply harmless)."""

    state_dir: pathlib.Path = pathlib.Path(state.DEFAULT_STATE_DIR)
    """The wrapper's state directory (the shared volume); see ``wrapper.state``."""

    ttl_seconds: int = pydantic.Field(default=streams.DEFAULT_TTL_SECONDS, gt=0)
    """How long the evaluation's stream and publish metadata live after the last event."""

    eval_stream_maxlen: int = pydantic.Field(default=streams.DEFAULT_EVAL_STREAM_MAXLEN, gt=0)
    """Approximate cap (MAXLEN ~) of the evaluation's own stream."""

    global_stream_maxlen: int = pydantic.Field(default=streams.DEFAULT_GLOBAL_STREAM_MAXLEN, gt=0)
    """Approximate cap (MAXLEN ~) of the stream of all evaluations."""

    batch_bytes: int = pydantic.Field(default=64 * 1024, ge=64)
    """Most output bytes in one ``output`` event. 64 KiB keeps 8 MiB of output (the wrapper's
    cap) to about 130 events per stream while each event stays small for SSE clients."""

    batch_interval_seconds: float = pydantic.Field(default=0.02, ge=0)
    """How long new output may wait for more before it is published: trades a little latency
    for far fewer events when a program prints many small lines."""

    backlog_max_bytes: int = pydantic.Field(default=16 * 1024 * 1024, ge=1024)
    """Most unpublished output per stream. The output files are the buffer, so this bounds how
    far publishing may fall behind (e.g. while Redis is away), not memory; beyond it the oldest
    unpublished bytes are skipped and counted as lost. Above the wrapper's 8 MiB cap by default,
    so nothing is skipped unless the files grow past it."""

    drain_deadline_seconds: float = pydantic.Field(default=10.0, gt=0)
    """After SIGTERM, how long the sidecar may keep publishing what it holds before it gives up.
    Must stay below the pod's terminationGracePeriodSeconds (30 s by default)."""

    exit_after_terminal: bool = True
    """Exit 0 once the terminal event is published: right for the local backend and for a plain
    sidecar container (clusters before 1.29), whose exit lets the Job complete. Set false for a
    native sidecar (restartPolicy: Always), which the kubelet would restart: it stays up until
    SIGTERM."""

    watch: Literal["auto", "inotify", "poll"] = "auto"
    """How to notice changes in the state directory: inotify where the kernel offers it (auto),
    else a short poll. ``poll`` forces the fallback (tests, exotic filesystems)."""

    poll_interval_seconds: float = pydantic.Field(default=0.05, gt=0)
    """Poll period of the fallback watcher; also bounds the latency of events without inotify."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level of the sidecar's stderr log."""

    def redis_password(self) -> str | None:
        """The password from ``redis_password_file``; None when no file is configured."""
        if self.redis_password_file is None:
            return None
        return self.redis_password_file.read_text(encoding="utf-8").strip()

    def limits(self) -> streams.Limits:
        return streams.Limits(
            eval_stream_maxlen=self.eval_stream_maxlen,
            global_stream_maxlen=self.global_stream_maxlen,
            ttl_seconds=self.ttl_seconds,
        )
