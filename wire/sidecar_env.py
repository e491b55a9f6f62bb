"""The sidecar's environment: the one place that names its ``CRUCIBLE_SIDECAR_*`` variables.

The backends (local processes, pods) and the ingest link write it; ``sidecar.settings`` reads
it, each setting from ``PREFIX + name.upper()`` (a test holds the two together).
"""

PREFIX = "CRUCIBLE_SIDECAR_"


def variable(setting: str) -> str:
    return PREFIX + setting.upper()


def channel_env(
    *,
    eval_id: str,
    socket_path: str,
    spool_dir: str,
    exit_after_terminal: bool,
    peer_parent_pid: int | None = None,
    code_file: str | None = None,
) -> dict[str, str]:
    """Which evaluation, where to listen for the wrapper, where to spool, when to exit, and
    where to put the program of a ``code`` evaluation (fetched before it listens)."""
    env = {
        variable("eval_id"): eval_id,
        variable("socket_path"): socket_path,
        variable("spool_dir"): spool_dir,
        variable("exit_after_terminal"): "true" if exit_after_terminal else "false",
    }
    if peer_parent_pid is not None:
        env[variable("peer_parent_pid")] = str(peer_parent_pid)
    if code_file is not None:
        env[variable("code_file")] = code_file
    return env


def ingest_env(url: str, token: str) -> dict[str, str]:
    """Where to hand the events over, and the evaluation's own credential."""
    return {variable("ingest_url"): url, variable("ingest_token"): token}
