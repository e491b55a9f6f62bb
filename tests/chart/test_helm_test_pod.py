"""The `helm test` Pod's script, run for real against a dispatcher (local backend, real Redis):
it submits an evaluation, follows its events and passes only on `completed` with the output.
Once more with the Redis the chart configures (ACL file), the dispatcher connecting as its
`dispatcher` user: everything the dispatcher does must be allowed to that user."""

import os
import pathlib
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests import redisproc
from tests.chart import acl_redis, render

pytestmark = pytest.mark.integration
TOKEN = "chart-test-token"


@pytest.fixture(params=["open-redis", "chart-acl-redis"])
def redis_for_dispatcher(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[str]:
    if request.param == "open-redis":
        yield request.getfixturevalue("redis_url")
        return
    request.getfixturevalue("helm")
    with acl_redis.running(tmp_path / "acl-redis") as server:
        password = server.passwords["dispatcher"]
        yield f"redis://dispatcher:{password}@127.0.0.1:{server.port}/0"


@pytest.fixture
def dispatcher_url(redis_for_dispatcher: str, tmp_path: pathlib.Path) -> Iterator[str]:
    port = redisproc.free_port()
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRUCIBLE_")}
    env.update(
        {
            "CRUCIBLE_BACKEND": "local",
            "CRUCIBLE_REDIS_URL": redis_for_dispatcher,
            "CRUCIBLE_HOST": "127.0.0.1",
            "CRUCIBLE_PORT": str(port),
            "CRUCIBLE_API_TOKENS_FILE": str(tokens),
            "CRUCIBLE_LOCAL__WORK_ROOT": str(tmp_path / "work"),
        }
    )
    log = open(tmp_path / "dispatcher.log", "wb")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatcher"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, (tmp_path / "dispatcher.log").read_text()
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                break
        except (urllib.error.URLError, OSError):
            assert time.monotonic() < deadline, (tmp_path / "dispatcher.log").read_text()
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def hook_pod(manifests: list[render.Manifest]) -> render.Manifest:
    pods = [
        m
        for m in render.find(manifests, "Pod")
        if m["metadata"]["annotations"].get("helm.sh/hook") == "test"
    ]
    assert len(pods) == 1
    return pods[0]


def run_script(
    url: str, tokens: pathlib.Path, defaults: list[render.Manifest]
) -> subprocess.CompletedProcess[str]:
    container = hook_pod(defaults)["spec"]["containers"][0]
    assert container["command"][:3] == ["python", "-I", "-c"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["DISPATCHER_URL"] == f"http://{render.FULLNAME}-dispatcher:8080"
    mount = container["volumeMounts"][0]["mountPath"]
    assert env["API_TOKENS_FILE"] == mount + "/tokens"
    env.update(
        {
            "DISPATCHER_URL": url,
            "API_TOKENS_FILE": str(tokens),
            "TIMEOUT_SECONDS": "60",
            "PATH": os.environ["PATH"],
        }
    )
    return subprocess.run(
        [sys.executable, *container["command"][1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_helm_test_script_passes_on_a_completed_evaluation(
    helm: str, defaults: list[render.Manifest], dispatcher_url: str, tmp_path: pathlib.Path
) -> None:
    tokens = tmp_path / "client-tokens"
    tokens.write_text(TOKEN)
    done = run_script(dispatcher_url, tokens, defaults)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "event: completed" in done.stdout
    assert '"status": "completed"' in done.stdout


def test_helm_test_script_fails_without_a_valid_token(
    helm: str, defaults: list[render.Manifest], dispatcher_url: str, tmp_path: pathlib.Path
) -> None:
    tokens = tmp_path / "client-tokens"
    tokens.write_text("not-the-token")
    done = run_script(dispatcher_url, tokens, defaults)
    assert done.returncode != 0
    assert "401" in done.stderr
