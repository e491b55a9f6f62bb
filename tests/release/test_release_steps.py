"""The release workflow's steps that can run off GitHub, run here against a registry on loopback:
the tag check, the chart's package and push (then pulled back and rendered), the platform
image's push (read back by digest), its SBOM, and a cosign signature made and verified with a
key pair (the workflow signs keyless, which needs GitHub's OIDC token). The multi-arch build
itself needs buildx and qemu: that part is GitHub's alone (docs/releasing.md)."""

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
from collections.abc import Iterator

import pytest
import yaml

from tests.chart import render
from tests.release import registry

pytestmark = pytest.mark.chart
WORKFLOW = render.REPO / ".github" / "workflows" / "release.yaml"
CHART_YAML = yaml.safe_load((render.CHART / "Chart.yaml").read_text())
APP_VERSION, CHART_VERSION = CHART_YAML["appVersion"], CHART_YAML["version"]
IMAGES = pathlib.Path(os.environ.get("CRUCIBLE_CACHE", pathlib.Path.home() / ".cache/crucible"))
PLATFORM = "localhost/crucible-platform:ci"  # its name in tests/cluster/images.sh's list


def _missing(problem: str) -> None:
    """A skip where the tools may be absent (a fork's lint job); CI installs them: a failure."""
    if os.environ.get("CRUCIBLE_E2E_REQUIRED") == "1":
        pytest.fail(f"CRUCIBLE_E2E_REQUIRED=1 but {problem}", pytrace=False)
    pytest.skip(problem)


def _step(job: str, name: str) -> dict[str, object]:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"][job]["steps"]
    found = [s for s in steps if s.get("name") == name]
    assert len(found) == 1, f"no step {name!r} in the {job} job"
    return dict(found[0])


def _run(command: str, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=render.REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _tool(name: str) -> str:
    path = render.tool_binary(name)
    if path is None:
        _missing(f"no {name}: run tests/cluster/build-tools.sh {name}")
    assert path is not None
    return path


# The version check.


def _check(tag: str, tmp_path: pathlib.Path) -> tuple[subprocess.CompletedProcess[str], str]:
    step = _step("check", "Check the tag against the versions")
    outputs = tmp_path / "github-output"
    outputs.touch()
    result = _run(str(step["run"]), {"TAG": tag, "GITHUB_OUTPUT": str(outputs)})
    return result, outputs.read_text()


def test_the_check_passes_for_the_tag_to_be(tmp_path: pathlib.Path) -> None:
    result, outputs = _check(f"v{APP_VERSION}", tmp_path)
    assert result.returncode == 0, result.stderr
    assert outputs == f"app_version={APP_VERSION}\nchart_version={CHART_VERSION}\n"


@pytest.mark.parametrize("tag", ["v9.9.9", APP_VERSION, f"v{APP_VERSION}.1", "latest"])
def test_a_wrong_tag_fails_with_a_clear_message(tag: str, tmp_path: pathlib.Path) -> None:
    result, outputs = _check(tag, tmp_path)
    assert result.returncode == 1
    assert f"::error::release check: tag {tag}" in result.stderr
    assert f"(want v{APP_VERSION})" in result.stderr
    assert outputs == ""


def test_the_check_fails_when_the_package_version_differs(tmp_path: pathlib.Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(render.CHART, tree / "charts" / "crucible")
    pyproject = (render.REPO / "pyproject.toml").read_text()
    bumped = pyproject.replace(f'\nversion = "{APP_VERSION}"\n', '\nversion = "9.9.9"\n', 1)
    assert bumped != pyproject
    (tree / "pyproject.toml").write_text(bumped)
    script = render.REPO / ".github" / "scripts" / "check-release-version.py"
    result = _run(f"python3 {script} v{APP_VERSION} {tree}", {})
    assert result.returncode == 1
    assert "pyproject.toml's version 9.9.9 differs from the chart's appVersion" in result.stderr


# The registry and what is pushed to it.


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not registry.BINARY.is_file():
        _missing(f"no {registry.BINARY}: run tests/cluster/prereqs.sh")
    with registry.running(tmp_path_factory.mktemp("registry")) as found:
        yield found


@pytest.fixture(scope="module")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    helm = _tool("helm")
    bin_dir = tmp_path_factory.mktemp("bin")
    (bin_dir / "helm").symlink_to(helm)
    # helm's registry config and cache out of $HOME: nothing of this test outlives it.
    home = tmp_path_factory.mktemp("helm-home")
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
    }


@pytest.fixture(scope="module")
def pushed_chart(address: str, helm_env: dict[str, str]) -> dict[str, str]:
    """The workflow's push step, with --plain-http for the loopback registry."""
    step = _step("chart", "Package and push the chart")
    env = {
        **helm_env,
        "IMAGE_REPOSITORY": f"{address}/crucible-platform",
        "CHARTS": f"oci://{address}/charts",
    }
    result = _run(f"{step['run']} --plain-http", env)
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert outputs["chart_ref"] == f"{address}/charts/crucible:{CHART_VERSION}"
    return outputs


def _helm(helm_env: dict[str, str], *args: str) -> str:
    result = _run(" ".join(["helm", *args]), helm_env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_chart_pulled_is_the_chart_pushed(
    address: str, helm_env: dict[str, str], pushed_chart: dict[str, str], tmp_path: pathlib.Path
) -> None:
    _, served_digest = registry.manifest(address, "charts/crucible", CHART_VERSION)
    assert served_digest == pushed_chart["chart_digest"]
    oci = f"oci://{address}/charts/crucible --version {CHART_VERSION} --plain-http"
    assert yaml.safe_load(_helm(helm_env, "show chart", oci)) == CHART_YAML
    _helm(helm_env, "pull", oci, "--untar --untardir", str(tmp_path))
    pulled = tmp_path / "crucible"
    for source in (render.CHART / "templates").rglob("*"):
        if source.is_file():
            copy = pulled / source.relative_to(render.CHART)
            assert copy.read_bytes() == source.read_bytes(), copy
    # Its default image is the one the release pushed next to it, tagged with the appVersion.
    manifests = list(
        yaml.safe_load_all(
            _helm(
                helm_env,
                "template crucible",
                str(pulled),
                "--kube-version",
                render.RENDER_KUBE_VERSION,
            )
        )
    )
    deployment = next(m for m in manifests if m and m["kind"] == "Deployment")
    images = {c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert images == {f"{address}/crucible-platform:{APP_VERSION}"}


def test_a_released_chart_version_is_never_pushed_again(
    address: str, helm_env: dict[str, str], pushed_chart: dict[str, str]
) -> None:
    step = _step("chart", "Package and push the chart")
    result = _run(f"{step['run']} --plain-http", {**helm_env, "CHARTS": f"oci://{address}/charts"})
    assert result.returncode == 1
    assert "already published: bump the chart's version" in result.stderr
    _, served_digest = registry.manifest(address, "charts/crucible", CHART_VERSION)
    assert served_digest == pushed_chart["chart_digest"]


@pytest.fixture(scope="module")
def platform_archive(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A copy of the platform image tests/cluster/images.sh built (it may rebuild meanwhile)."""
    listing = IMAGES / "images" / "current.list"
    entries = (
        dict(line.split() for line in listing.read_text().splitlines()) if listing.is_file() else {}
    )
    if PLATFORM not in entries:
        _missing(f"no {PLATFORM} in {listing}: run tests/cluster/images.sh")
    copy = tmp_path_factory.mktemp("platform") / "platform.oci.tar"
    shutil.copyfile(entries[PLATFORM], copy)
    return copy


def _archive_digest(archive: pathlib.Path) -> str:
    index = subprocess.run(
        ["tar", "-xOf", str(archive), "index.json"], check=True, capture_output=True
    ).stdout
    return str(json.loads(index)["manifests"][0]["digest"])


@pytest.fixture(scope="module")
def pushed_image(address: str, platform_archive: pathlib.Path) -> str:
    """``HOST:PORT/crucible-platform@DIGEST``, pushed under the chart's default tag."""
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        _missing("no skopeo: run tests/cluster/prereqs.sh")
    target = f"docker://{address}/crucible-platform:{APP_VERSION}"
    result = _run(
        f"{skopeo} copy --quiet --insecure-policy --dest-tls-verify=false "
        f"oci-archive:{platform_archive} {target}",
        {},
    )
    assert result.returncode == 0, result.stderr
    return f"{address}/crucible-platform@{_archive_digest(platform_archive)}"


def test_the_image_served_is_the_image_built(address: str, pushed_image: str) -> None:
    body, served_digest = registry.manifest(address, "crucible-platform", APP_VERSION)
    built_digest = pushed_image.split("@")[1]
    assert served_digest == built_digest
    assert f"sha256:{hashlib.sha256(body).hexdigest()}" == built_digest
    assert json.loads(body)["mediaType"] == registry.OCI_MANIFEST


@pytest.mark.timeout(600)
def test_the_sbom_lists_crucible(platform_archive: pathlib.Path, tmp_path: pathlib.Path) -> None:
    syft = _tool("syft")
    sbom = tmp_path / "sbom.spdx.json"
    env = {"SYFT_CHECK_FOR_APP_UPDATE": "false", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = _run(
        f"{syft} scan --quiet oci-archive:{platform_archive} -o spdx-json={sbom}", env, 600
    )
    assert result.returncode == 0, result.stderr
    packages = {p["name"]: p.get("versionInfo") for p in json.loads(sbom.read_text())["packages"]}
    assert packages.get("crucible") == APP_VERSION
    # The dispatcher's dependencies, from the venv's metadata as well.
    assert {"aiohttp", "redis"} <= packages.keys()


def test_the_workflow_signs_what_it_built() -> None:
    image = _step("image", "Sign the image")
    assert image["run"] == 'cosign sign --yes --recursive "$IMAGE@$DIGEST"'
    assert image["env"] == {"DIGEST": "${{ steps.build.outputs.digest }}"}
    chart = _step("chart", "Sign the chart")
    assert chart["run"] == 'cosign sign --yes "${REF%:*}@$DIGEST"'


def test_a_signature_of_the_pushed_image_verifies(
    pushed_image: str, tmp_path: pathlib.Path
) -> None:
    """The workflow's `cosign sign`, with a key pair for the OIDC identity and no transparency
    log (both need the internet), on our image in a registry: it verifies with the key and not
    with another."""
    cosign = _tool("cosign")
    env = {"COSIGN_PASSWORD": "", "HOME": str(tmp_path), "TUF_ROOT": str(tmp_path / "tuf")}
    for name in ("signer", "other"):
        (tmp_path / name).mkdir()
        result = _run(f"cd {tmp_path / name} && {cosign} generate-key-pair", env)
        assert result.returncode == 0, result.stderr
    insecure = "--allow-insecure-registry --allow-http-registry"
    sign = _run(
        f"{cosign} sign --yes --tlog-upload=false {insecure} "
        f"--key {tmp_path / 'signer' / 'cosign.key'} {pushed_image}",
        env,
    )
    assert sign.returncode == 0, sign.stderr
    verify = f"{cosign} verify --insecure-ignore-tlog=true {insecure} --key"
    good = _run(f"{verify} {tmp_path / 'signer' / 'cosign.pub'} {pushed_image}", env)
    assert good.returncode == 0, good.stderr
    claims = json.loads(good.stdout)
    assert claims[0]["critical"]["image"]["docker-manifest-digest"] == pushed_image.split("@")[1]
    bad = _run(f"{verify} {tmp_path / 'other' / 'cosign.pub'} {pushed_image}", env)
    assert bad.returncode != 0
    assert "no matching signatures" in bad.stderr
