"""SidecarSettings: all the sidecar is told, from ``CRUCIBLE_SIDECAR_*`` environment variables.

Built once in ``__main__.main()`` and passed to the service; nothing else reads the environment.
Standard library only (the sidecar's memory is paid per pod, pydantic-settings cost 2 MB of it).

Each setting comes from a keyword argument (tests), else from ``CRUCIBLE_SIDECAR_<NAME>`` (the
variable's name in any case), else its default; other ``CRUCIBLE_SIDECAR_*`` variables are
ignored. Every value is checked, and all problems are reported at once in a ``SettingsError``
that names each setting and its rule, never the value given: it may be the credential.
"""

import dataclasses
import os
import pathlib
import urllib.parse
from collections.abc import Callable
from typing import Any, Literal

from wire import channel, limits, sidecar_env

ENV_PREFIX = sidecar_env.PREFIX
DEFAULT_SPOOL_DIR = "/crucible/spool"
# JSON escapes a control byte as 6 bytes (\u00XX): chunks up to this size always fit one body.
MAX_BATCH_BYTES = limits.INGEST_BODY_MAX_BYTES // 8
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LOG_LEVELS: tuple[LogLevel, ...] = ("DEBUG", "INFO", "WARNING", "ERROR")
# The spellings of a boolean that pydantic(-settings) accepted, kept as they were.
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})

Parse = Callable[[Any], Any]
_UNSET: Any = object()  # not given as an argument: from the environment, else the default
_REQUIRED = object()


class SettingsError(ValueError):
    """Settings the sidecar cannot start with; the message lists every problem."""


class Secret:
    """A credential: ``get_secret_value()`` gives it; ``repr``, ``str`` and logs never do."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"


def _text(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 256:
        raise ValueError("must be text of 1 to 256 characters")
    return value


def _path(value: Any) -> pathlib.Path:
    if not isinstance(value, str | os.PathLike) or not os.fspath(value):
        raise ValueError("must be a path")
    return pathlib.Path(value)


def _optional_path(value: Any) -> pathlib.Path | None:
    return None if value is None else _path(value)


def _number(kind: type[int] | type[float], rule: str, ok: Callable[[Any], bool]) -> Parse:
    """A parser of ``kind`` (from a number or its text) for which ``ok`` holds; never a bool."""
    problem = f"must be {'an integer' if kind is int else 'a number'} {rule}"

    def parse(value: Any) -> Any:
        try:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise TypeError
            number = kind(value)
            if number != value and not isinstance(value, str):
                raise TypeError  # 1.5 is not an integer
        except (TypeError, ValueError, OverflowError):
            raise ValueError(problem) from None
        if not ok(number):  # this refuses NaN too
            raise ValueError(problem)
        return number

    return parse


def _optional_pid(value: Any) -> int | None:
    return None if value is None else _number(int, "> 0", lambda n: n > 0)(value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, str | int) else ""
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError("must be true or false")


def _log_level(value: Any) -> LogLevel:
    for level in LOG_LEVELS:
        if value == level:
            return level
    raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")


def _url(value: Any) -> str:
    rule = "must be an http:// or https:// URL with a host"
    if not isinstance(value, str) or not (value.isascii() and value.isprintable()) or " " in value:
        raise ValueError(rule)
    try:
        url = urllib.parse.urlsplit(value)
        _ = url.port  # a port that is not a number or out of range raises here
    except ValueError:
        raise ValueError(rule) from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(rule)
    return value


def _token(value: Any) -> Secret:
    token = value.get_secret_value() if isinstance(value, Secret) else value
    if not isinstance(token, str) or not token:
        raise ValueError("must not be empty")
    # It goes into an HTTP header as is: visible ASCII only (an HMAC hex digest is).
    if not (token.isascii() and token.isprintable() and " " not in token):
        raise ValueError("the ingest token must be visible ASCII")
    return Secret(token)


_positive_seconds = _number(float, "> 0", lambda n: n > 0)


def _rule(parse: Parse, default: Any = _REQUIRED) -> dict[str, Any]:
    """A field's metadata: how a given value is checked, and the default if none is given."""
    return {"parse": parse, "default": default}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SidecarSettings:
    eval_id: str = dataclasses.field(default=_UNSET, metadata=_rule(_text))
    """The evaluation this sidecar reports on; part of every event and of the ingest path."""

    socket_path: pathlib.Path = dataclasses.field(
        default=_UNSET, metadata=_rule(_path, pathlib.Path(channel.DEFAULT_SOCKET))
    )
    """Where the wrapper's channel socket is bound. Its directory is a volume the main container
    mounts read-only: the wrapper can connect, user code cannot replace the socket."""

    peer_parent_pid: int | None = dataclasses.field(
        default=_UNSET, metadata=_rule(_optional_pid, None)
    )
    """Accept only a connection whose process is a child of this pid (``SO_PEERCRED``). The
    local backend sets its own pid: the wrapper is its child, while code of other evaluations
    (same user, same machine) is not. Unset in pods, where only the pod can reach the socket
    and the wrapper's pid is in another PID namespace."""

    spool_dir: pathlib.Path = dataclasses.field(
        default=_UNSET, metadata=_rule(_path, pathlib.Path(DEFAULT_SPOOL_DIR))
    )
    """A directory only the sidecar can reach (an emptyDir mounted in the sidecar container
    alone): the output received on the channel, and the marker of an accepted channel, which
    tells a restarted sidecar to trust no new connection."""

    ingest_url: str = dataclasses.field(default=_UNSET, metadata=_rule(_url))
    """Base URL of the dispatcher that takes this sidecar's events (``wire.ingest``), e.g.
    ``http://crucible.ns.svc:8080``. A path prefix is kept."""

    ingest_token: Secret = dataclasses.field(default=_UNSET, metadata=_rule(_token))
    """The per-evaluation credential for ingest (Bearer). Good for this evaluation only."""

    ingest_timeout_seconds: float = dataclasses.field(
        default=_UNSET, metadata=_rule(_positive_seconds, 10.0)
    )
    """Connecting plus one request and its reply; past it the request counts as failed and the
    same batch is retried (its dedup tokens make a lost reply harmless)."""

    code_file: pathlib.Path | None = dataclasses.field(
        default=_UNSET, metadata=_rule(_optional_path, None)
    )
    """Where the program of a ``code`` evaluation goes (``sidecar.program``), fetched before the
    sidecar listens; unset: the command needs none."""

    code_fetch_seconds: float = dataclasses.field(
        default=_UNSET, metadata=_rule(_positive_seconds, 60.0)
    )
    """How long the program's fetch is retried; then the sidecar refuses to serve (the
    wrapper never starts the command, and the reconciler ends the evaluation)."""

    output_cap_bytes: int = dataclasses.field(
        default=_UNSET,
        metadata=_rule(_number(int, ">= 1", lambda n: n >= 1), channel.DEFAULT_OUTPUT_CAP_BYTES),
    )
    """Most bytes per stream the sidecar keeps and publishes, whatever the wrapper sends; the
    truncation marker follows once, the rest is dropped and counted."""

    batch_bytes: int = dataclasses.field(
        default=_UNSET,
        metadata=_rule(
            _number(int, f"from 64 to {MAX_BATCH_BYTES}", lambda n: 64 <= n <= MAX_BATCH_BYTES),
            64 * 1024,
        ),
    )
    """Most output bytes in one ``output`` event. 64 KiB keeps 8 MiB of output (the cap) to
    about 130 events per stream while each event stays small for SSE clients."""

    batch_interval_seconds: float = dataclasses.field(
        default=_UNSET, metadata=_rule(_number(float, ">= 0", lambda n: n >= 0), 0.02)
    )
    """How long new output may wait for more before it is published: trades a little latency
    for far fewer events when a program prints many small lines."""

    drain_deadline_seconds: float = dataclasses.field(
        default=_UNSET, metadata=_rule(_positive_seconds, 10.0)
    )
    """After SIGTERM, how long the sidecar may keep reading the channel and publishing before it
    gives up. Must stay below the pod's terminationGracePeriodSeconds (30 s by default)."""

    exit_after_terminal: bool = dataclasses.field(default=_UNSET, metadata=_rule(_bool, True))
    """Exit 0 once the channel has ended and everything is published: right for the local
    backend and for a plain sidecar container, whose exit lets the Job complete. Set false for a
    native sidecar (restartPolicy: Always), which the kubelet would restart: it leaves once the
    wrapper's verdict is out (the command has ended, so the pod is ending), and otherwise stays
    up until SIGTERM."""

    log_level: LogLevel = dataclasses.field(default=_UNSET, metadata=_rule(_log_level, "INFO"))
    """Log level of the sidecar's stderr log."""

    def __post_init__(self) -> None:
        environ = {
            name.upper(): value
            for name, value in os.environ.items()
            if name.upper().startswith(ENV_PREFIX)
        }
        problems = []
        for field in dataclasses.fields(self):
            variable = sidecar_env.variable(field.name)
            value = getattr(self, field.name)
            if value is _UNSET:
                value = environ.get(variable, _UNSET)
            if value is _UNSET:
                value = field.metadata["default"]
                if value is _REQUIRED:
                    problems.append(f"{field.name} ({variable}): required")
                    continue
            else:
                try:
                    value = field.metadata["parse"](value)
                except ValueError as e:
                    problems.append(f"{field.name} ({variable}): {e}")
                    continue
            object.__setattr__(self, field.name, value)
        if problems:
            raise SettingsError("invalid settings:\n  " + "\n  ".join(problems))
