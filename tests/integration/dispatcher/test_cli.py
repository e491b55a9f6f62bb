"""The ``crucible`` command as a user runs it: ``serve`` (embedded Redis, local backend) and the
client commands, all as real processes."""

import json
import os
import pathlib
import subprocess
from collections.abc import Iterator

import pytest

from tests import redisproc, serving

CRUCIBLE = serving.CRUCIBLE


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("serve")
    port = redisproc.free_port()
    env = {
        **os.environ,
        "CRUCIBLE_DATA_DIR": str(directory / "redis"),
        "CRUCIBLE_LOCAL__WORK_ROOT": str(directory / "work"),
        "CRUCIBLE_API_TOKENS": "cli-token",
    }
    env.pop("CRUCIBLE_REDIS_URL", None)
    with serving.serving(env, directory / "serve.log", "--port", str(port)) as url:
        yield url


def crucible(url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CRUCIBLE_URL": url, "CRUCIBLE_TOKEN": "cli-token"}
    return subprocess.run(
        [*CRUCIBLE, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def test_submit_watch_streams_output_and_exits_with_the_code(server: str):
    code = "import sys; print('hello'); print('oops', file=sys.stderr); sys.exit(7)"
    result = crucible(server, "submit", "--watch", code)
    assert result.returncode == 7, result.stderr
    assert result.stdout == "hello\n"
    assert "oops\n" in result.stderr
    assert "failed exit_code=7" in result.stderr


def test_submit_watch_follows_events_of_any_size(server: str):
    """Output events are up to 256 KiB of text, and terminal events carry 64 KiB tails: the
    stream is read as bytes, not as lines of a bounded length."""
    result = crucible(server, "submit", "--watch", "print('\\U0001F600' * 100_000)")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "\U0001f600" * 100_000 + "\n"


def test_submit_from_stdin_with_timeout_exits_124(server: str):
    result = crucible(
        server, "submit", "--watch", "--timeout", "1", "-", stdin="import time\ntime.sleep(30)\n"
    )
    assert result.returncode == 124, result.stderr
    assert " timeout " in result.stderr


def test_submit_then_status_and_cancel(server: str, tmp_path: pathlib.Path):
    script = tmp_path / "job.py"
    script.write_text("import time\ntime.sleep(30)\n")
    submitted = crucible(server, "submit", "-f", str(script), "--eval-id", "cli-cancel")
    assert submitted.returncode == 0, submitted.stderr
    assert json.loads(submitted.stdout)["eval_id"] == "cli-cancel"
    cancelled = crucible(server, "cancel", "cli-cancel")
    assert json.loads(cancelled.stdout)["status"] == "cancelled"
    status = crucible(server, "status", "cli-cancel")
    assert json.loads(status.stdout)["status"] == "cancelled"


def test_invalid_submission_prints_one_line_per_field(server: str):
    result = crucible(server, "submit", "--memory", "lots", "--cpu", "99", "print(1)")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("crucible: 422 invalid_request")
    assert sorted(line.split(":")[0].strip() for line in lines[1:]) == [
        "resources.cpu",
        "resources.memory",
    ]


def test_wrong_token_is_reported(server: str):
    env_url = server
    result = subprocess.run(
        [*CRUCIBLE, "status", "x", "--url", env_url, "--token", "wrong"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert result.returncode == 1
    assert "401 unauthorized" in result.stderr
