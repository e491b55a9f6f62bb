"""The dispatcher's settings: one ``BaseSettings`` root, built in ``main()`` and injected.

Environment variables carry the ``CRUCIBLE_`` prefix and ``__`` between nested names, e.g.
``CRUCIBLE_LIMITS__TIMEOUT_SECONDS_MAX=600`` or ``CRUCIBLE_LOCAL__CONCURRENCY=0``.
"""

import ipaddress
import pathlib
import secrets
from typing import Annotated, Literal, Self

import pydantic
import pydantic_settings

from dispatcher import tenants
from dispatcher.api.schema.limits import Limits
from dispatcher.backends.kube.config import KubernetesConfig
from dispatcher.backends.local.config import LocalConfig
from dispatcher.store import connect
from dispatcher.tenants import TenantsConfig
from wire import keys
from wire import limits as wire_limits

# One random key per process when none is configured: the backend that issues sidecar tokens
# and the handler that checks them must agree.
_PROCESS_INGEST_KEY = secrets.token_bytes(32)
INGEST_KEY_MIN_BYTES = 32


class ConsumerConfig(pydantic.BaseModel):
    """The consumer group that feeds the status store from the global event stream."""

    model_config = pydantic.ConfigDict(frozen=True, use_attribute_docstrings=True)

    batch_size: int = pydantic.Field(default=200, ge=1)
    """Entries read (and applied in one pipeline) per XREADGROUP."""

    block_seconds: float = pydantic.Field(default=2.0, gt=0)
    """How long one XREADGROUP waits for new entries; also bounds how late a stale-entry claim
    or a shutdown is noticed."""

    claim_idle_seconds: float = pydantic.Field(default=30.0, gt=0)
    """Entries delivered to another consumer and unacknowledged this long are claimed
    (XAUTOCLAIM): that dispatcher is presumed dead."""

    claim_interval_seconds: float = pydantic.Field(default=15.0, gt=0)
    """How often to look for such stale entries."""

    backoff_initial_seconds: float = pydantic.Field(default=0.1, gt=0)
    """First wait before reconnecting after Redis went away; doubles up to the maximum."""

    backoff_max_seconds: float = pydantic.Field(default=5.0, gt=0)
    """Longest wait between reconnection attempts."""


def _split_tokens(value: object) -> object:
    """``a,b`` as well as a JSON list: a Secret mounted as an env var is easier as plain text."""
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    return value


class DispatcherSettings(pydantic_settings.BaseSettings):
    model_config = pydantic_settings.SettingsConfigDict(
        env_prefix="CRUCIBLE_",
        env_nested_delimiter="__",
        frozen=True,
        use_attribute_docstrings=True,
        extra="forbid",
    )

    backend: Literal["local", "kubernetes"] = "local"
    """Where evaluations run: processes on this machine, or Kubernetes Jobs."""

    redis_url: str | None = None
    """Redis for records and events (``redis://``, ``rediss://``, ``unix://``). Unset: ``crucible
    serve`` starts an embedded Redis under ``data_dir``."""

    redis_cluster: bool = False
    """``redis_url`` names a node of a Redis Cluster: the keys are partitioned by hash tag
    (``wire.keys.Keyspace``), so every evaluation lives on one shard and the load spreads."""

    redis_sentinel_master: str | None = None
    """The master's name at Redis Sentinel: ``redis_url`` then names the Sentinels
    (``redis://[user:password@]host:port,host:port/db``, the credentials and db the master's),
    and the dispatcher follows the master through failovers."""

    data_dir: pathlib.Path = pathlib.Path.home() / ".cache" / "crucible" / "redis"
    """Directory of the embedded Redis (append-only file), used when ``redis_url`` is unset."""

    host: str = "127.0.0.1"
    """Address the HTTP API binds; loopback by default, so a laptop run is not exposed."""

    port: int = pydantic.Field(default=8080, ge=0, le=65535)
    """Port the HTTP API binds (0: any free port)."""

    api_tokens: Annotated[list[str], pydantic_settings.NoDecode] = []
    """Bearer tokens accepted by the API (comma-separated or a JSON list): ``TENANT:TOKEN`` for a
    tenant, who sees only its own evaluations, or a bare ``TOKEN`` for an operator, who sees
    every tenant's. Empty, with no ``api_tokens_file``: no authentication (everyone is an
    operator), allowed on a loopback bind only."""

    api_tokens_file: pathlib.Path | None = None
    """A file with one token entry per line (a mounted Secret); added to ``api_tokens``."""

    ingest_key: pydantic.SecretStr | None = None
    """The key each sidecar's credential is derived from (an HMAC of its evaluation id, good for
    that evaluation alone). Unset: a random key for this process, fine for one dispatcher;
    replicas, and a restarted dispatcher whose evaluations still run, need a shared one (the
    chart generates it into a Secret)."""

    ingest_key_file: pathlib.Path | None = None
    """A file holding ``ingest_key`` (a mounted Secret); used when ``ingest_key`` is unset."""

    allow_unauthenticated: bool = False
    """Serve without tokens on a non-loopback address. Only behind something that
    authenticates for us."""

    images: dict[str, str] = {"python": "python:3.11-slim"}
    """Allow-list of executor images: the name a request uses -> the image reference run."""

    default_image: str = "python"
    """Name (key of ``images``) used when a request gives no image."""

    limits: Limits = Limits()
    """Defaults and maxima of what a request may ask for."""

    record_ttl_seconds: int = pydantic.Field(default=wire_limits.DEFAULT_TTL_SECONDS, gt=0)
    """How long an evaluation record is kept after it was created."""

    streams: wire_limits.StreamLimits = wire_limits.StreamLimits()
    """Lengths and lifetime of the event streams (must outlive records)."""

    consumer: ConsumerConfig = ConsumerConfig()
    """The consumer group that keeps records up to date."""

    sse_heartbeat_seconds: float = pydantic.Field(default=15.0, gt=0)
    """A comment line is sent on an idle event stream this often, so proxies keep it open."""

    sse_verify_wait_seconds: float = pydantic.Field(default=15.0, ge=0)
    """After a terminal event that is not yet verified, how long an event stream stays open for
    the verified one (the kubelet's record on Kubernetes; it may correct the first)."""

    redis_pool_max: int = pydantic.Field(default=64, ge=1)
    """Redis connections the API's commands use at most (event streams have their own,
    ``sse_streams_max``); a command finding none free waits up to 5 s, then 503."""

    sse_streams_max: int = pydantic.Field(default=500, ge=1)
    """Event streams one dispatcher holds open, all tenants together (each holds a Redis
    connection in a blocking read); more: 429 with Retry-After."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Level of the dispatcher's log (stderr)."""

    shutdown_timeout_seconds: float = pydantic.Field(default=20.0, gt=0)
    """Time open requests get to finish on SIGTERM; keep it below the pod's grace period."""

    shutdown_delay_seconds: float = pydantic.Field(default=0.0, ge=0)
    """On SIGTERM, go on serving this long (``/readyz`` answers 503) before the listener
    closes: a Service's endpoints and kube-proxy take a moment to stop sending new connections
    to a terminating pod (the chart sets 3). SIGINT (Ctrl-C) does not wait."""

    head_timeout_seconds: float = pydantic.Field(default=10.0, gt=0)
    """A connection's first request line and headers must have arrived within this, else it
    is closed (a slow-loris client holds nothing longer)."""

    body_timeout_seconds: float = pydantic.Field(default=30.0, gt=0)
    """A request body (submission, sidecar batch) must have arrived whole within this: 408."""

    idle_timeout_seconds: float = pydantic.Field(default=75.0, gt=0)
    """A connection with no request in progress is closed after this (keep-alive)."""

    local: LocalConfig = LocalConfig()
    """The local backend (processes)."""

    kubernetes: KubernetesConfig = KubernetesConfig()
    """The Kubernetes backend (Jobs)."""

    tenants: TenantsConfig = TenantsConfig()
    """Per-tenant limits: ``CRUCIBLE_TENANTS__DEFAULTS__ACTIVE_MAX=50``,
    ``CRUCIBLE_TENANTS__LIMITS='{"acme": {"submissions_per_second": 100}}'``."""

    @pydantic.field_validator("api_tokens", mode="before")
    @classmethod
    def _tokens_from_text(cls, value: object) -> object:
        if isinstance(value, str) and value.lstrip().startswith("["):
            return pydantic.TypeAdapter(list[str]).validate_json(value)
        return _split_tokens(value)

    def redis_target(self, redis_url: str) -> "connect.Target":
        """``redis_url`` (the embedded Redis's when ``redis_url`` is unset) as configured."""
        return connect.Target(redis_url, self.redis_cluster, self.redis_sentinel_master)

    def keyspace(self) -> keys.Keyspace:
        """Where the records live in Redis (``wire.keys``): partitioned on a Redis Cluster."""
        return keys.CLUSTER if self.redis_cluster else keys.STANDALONE

    @pydantic.field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and value.split("://", 1)[0] not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.redis_cluster or self.redis_sentinel_master) and (
            self.redis_url is None or self.redis_url.startswith("unix")
        ):
            raise ValueError("redis_cluster and redis_sentinel_master need a redis:// URL")
        if self.redis_cluster and self.redis_sentinel_master:
            raise ValueError("redis_cluster and redis_sentinel_master exclude each other")
        if self.default_image not in self.images:
            raise ValueError(f"default_image {self.default_image!r} is not a key of images")
        self.ingest_key_bytes()  # a short key or an unreadable file stops the start
        if self.streams.ttl_seconds < self.record_ttl_seconds:
            raise ValueError("streams.ttl_seconds must be at least record_ttl_seconds")
        if self.consumer.backoff_initial_seconds > self.consumer.backoff_max_seconds:
            raise ValueError("consumer.backoff_initial_seconds exceeds backoff_max_seconds")
        tenants.TokenTable(self.tokens())  # a malformed TENANT:TOKEN entry stops the start
        if not self.tokens() and not self.loopback and not self.allow_unauthenticated:
            raise ValueError(
                f"refusing to serve on {self.host} without api_tokens; set api_tokens or "
                "api_tokens_file, or allow_unauthenticated=true if something else authenticates"
            )
        return self

    def ingest_key_bytes(self) -> bytes:
        if self.ingest_key is not None:
            key = self.ingest_key.get_secret_value().encode()
        elif self.ingest_key_file is not None:
            try:
                key = self.ingest_key_file.read_bytes().strip()
            except OSError as e:
                raise ValueError(f"ingest_key_file: {e}") from None
        else:
            return _PROCESS_INGEST_KEY
        if len(key) < INGEST_KEY_MIN_BYTES:
            # Every pod's credential is derived from it: a guessable key is every pod's key.
            raise ValueError(f"the ingest key must be at least {INGEST_KEY_MIN_BYTES} bytes")
        return key

    def sidecar_url(self) -> str:
        """The dispatcher's URL as sidecars reach it."""
        if self.backend == "kubernetes":
            return self.kubernetes.sidecar_ingest_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def tokens(self) -> tuple[str, ...]:
        """Every accepted token: the list plus the file's lines (read on each call)."""
        found = list(self.api_tokens)
        if self.api_tokens_file is not None:
            try:
                text = self.api_tokens_file.read_text()
            except OSError as e:
                raise ValueError(f"api_tokens_file: {e}") from None
            found += [line.strip() for line in text.splitlines() if line.strip()]
        return tuple(dict.fromkeys(found))

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def image_ref(self, name_or_ref: str) -> str | None:
        """The image to run for a request's ``image``: an allow-listed name or reference."""
        if name_or_ref in self.images:
            return self.images[name_or_ref]
        return name_or_ref if name_or_ref in self.images.values() else None
