"""The GitHub workflow's own ``ct lint`` commands, run in the three situations a fork meets: a
push to main, a pull request that bumps the chart's version, and one that changes the chart
without a bump, which must fail. In a scratch clone with an ``origin`` and a ``main``, as the
workflow's checkout (``fetch-depth: 0``) has them."""

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.chart import render

pytestmark = pytest.mark.chart
WORKFLOW = render.REPO / ".github" / "workflows" / "ci.yaml"


def _lint_commands() -> dict[str, str]:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["chart-testing"]["steps"]
    found = {s["name"]: s["run"] for s in steps if str(s.get("name", "")).startswith("ct lint")}
    # The default branch, as GitHub fills it in.
    return {
        name: re.sub(r"\$\{\{[^}]*default_branch[^}]*\}\}", "main", run)
        for name, run in found.items()
    }


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    helm, ct = render.helm_binary(), render.tool_binary("ct")
    if helm is None or ct is None:
        pytest.fail("helm and ct are built by `make chart-check` (tests/cluster/build-tools.sh)")
    bin_dir = tmp_path_factory.mktemp("bin")
    for name, path in (("helm", helm), ("ct", ct)):
        (bin_dir / name).symlink_to(path)
    venv_bin = pathlib.Path(sys.executable).parent  # yamllint, yamale
    return {**os.environ, "PATH": f"{bin_dir}:{venv_bin}:{os.environ['PATH']}"}


def _git(cwd: pathlib.Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def clone(tmp_path: pathlib.Path) -> pathlib.Path:
    """A clone of this tree's HEAD with origin/main; the chart as committed."""
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    _git(tmp_path, "clone", "--quiet", "--bare", str(render.REPO), str(origin))
    _git(origin, "branch", "-f", "main", "HEAD")
    _git(tmp_path, "clone", "--quiet", "--branch", "main", str(origin), str(work))
    _git(work, "config", "user.email", "ci@example.invalid")
    _git(work, "config", "user.name", "ci")
    # The chart tree as it is here, uncommitted edits included, is what main holds.
    shutil.rmtree(work / "charts")
    shutil.copytree(render.REPO / "charts", work / "charts")
    shutil.copy(render.REPO / "ct.yaml", work / "ct.yaml")
    _git(work, "add", "-A")
    _git(work, "commit", "--quiet", "--allow-empty", "-m", "main as it is")
    _git(work, "push", "--quiet", "origin", "main")
    return work


def _run(command: str, cwd: pathlib.Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _change_chart(work: pathlib.Path, *, bump: bool) -> None:
    _git(work, "checkout", "--quiet", "-b", "pr")
    chart = work / "charts" / "crucible" / "Chart.yaml"
    text = chart.read_text().replace("description:", "description: (changed)", 1)
    if bump:
        found = re.search(r"^version: (\d+)\.(\d+)\.(\d+)$", text, re.M)
        assert found is not None
        major, minor, patch = found.groups()
        bumped = f"version: {major}.{minor}.{int(patch) + 1}"
        text = re.sub(r"^version: .*$", bumped, text, flags=re.M)
    chart.write_text(text)
    _git(work, "commit", "--quiet", "-am", "a chart change")


def test_the_workflow_lints_every_chart_on_a_push(clone: pathlib.Path, tools: dict[str, str]):
    result = _run(_lint_commands()["ct lint (push)"], clone, tools)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "crucible" in result.stdout


def test_a_pull_request_that_bumps_the_version_passes(clone: pathlib.Path, tools: dict[str, str]):
    _change_chart(clone, bump=True)
    result = _run(_lint_commands()["ct lint (pull request)"], clone, tools)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Version increment checking disabled" not in result.stdout + result.stderr


def test_a_pull_request_without_a_version_bump_fails(clone: pathlib.Path, tools: dict[str, str]):
    _change_chart(clone, bump=False)
    result = _run(_lint_commands()["ct lint (pull request)"], clone, tools)
    assert result.returncode != 0
    assert "Needs a version bump" in result.stdout + result.stderr
