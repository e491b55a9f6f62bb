"""The platform image the cluster runs is ./Dockerfile as buildah built it: containerd holds that
very image (same config, so the same layers), it runs as non-root, carries the OCI labels, and a
build from nothing in a fresh buildah storage gives the same manifest digest (reproducible).

Needs the in-VM cluster's containerd (skipped without it, failed with CRUCIBLE_E2E_REQUIRED=1).
tests/cluster/images.sh runs first: it is a no-op when the image of these sources is current.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "tests" / "cluster"
MKOCI = CLUSTER / "mkoci.py"
CACHE = Path(os.environ.get("CRUCIBLE_CACHE", Path.home() / ".cache" / "crucible"))
IMAGES = CACHE / "images"
NAME = "localhost/crucible-platform:ci"
CLUSTER_DIR = Path(os.environ.get("CRUCIBLE_CLUSTER_DIR", "/var/lib/crucible-cluster"))
CONTAINERD_SOCK = CLUSTER_DIR / "run" / "containerd.sock"
LABELS = ("title", "source", "version", "revision", "licenses")
# What the Dockerfile reads (.dockerignore lets in the rest of this list only).
BUILD_CONTEXT = (
    "Dockerfile", ".dockerignore", "pyproject.toml", "README.md",
    "wire", "wrapper", "sidecar", "dispatcher", "crucible",
)  # fmt: skip

pytestmark = pytest.mark.timeout(900)


def run(*argv: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False
    )
    assert done.returncode == 0, f"{argv[:3]} exited {done.returncode}: {done.stderr[-3000:]}"
    return done.stdout


def buildah(*argv: str, storage: Path = CACHE / "buildah") -> str:
    return run(
        "buildah", "--root", str(storage / "root"), "--runroot", str(storage / "run"),
        "--storage-driver", "overlay", *argv,
    )  # fmt: skip


def ctr(*argv: str) -> str:
    return run("ctr", "--address", str(CONTAINERD_SOCK), "--namespace", "k8s.io", *argv)


@pytest.fixture(scope="module")
def digest() -> Iterator[str]:
    """The manifest digest of the platform image images.sh built from these sources (and
    imported); read at once, before another build may replace the archive."""
    if not CONTAINERD_SOCK.exists():
        problem = f"no cluster containerd at {CONTAINERD_SOCK} (start one: tests/cluster/up.sh)"
        if os.environ.get("CRUCIBLE_E2E_REQUIRED") == "1":
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    run(str(CLUSTER / "images.sh"), "--import", env={"CRUCIBLE_IMAGES": "platform"})
    for line in (IMAGES / "current.list").read_text().splitlines():
        name, path = line.split()
        if name == NAME:
            yield Path(path + ".digest").read_text().strip()
            return
    pytest.fail(f"images.sh listed no {NAME}")


@pytest.fixture(scope="module")
def built(digest: str) -> dict[str, Any]:
    """buildah's record of the image it built and tagged."""
    inspected: dict[str, Any] = json.loads(buildah("inspect", "--type", "image", NAME))
    return inspected


def test_containerd_runs_the_image_buildah_built(digest: str, built: dict[str, Any]) -> None:
    listed = [line.split() for line in ctr("images", "ls").splitlines()[1:]]
    digests = {fields[0]: fields[2] for fields in listed}
    assert digests[NAME] == digest
    assert digests["localhost/crucible-platform:ci-next"] == digests[NAME]
    manifest = json.loads(ctr("content", "get", digests[NAME]))
    # The config holds the layers' diff IDs: the same config means the same filesystem.
    assert manifest["config"]["digest"] == "sha256:" + built["FromImageID"]


def test_runs_as_non_root_and_carries_the_oci_labels(built: dict[str, Any]) -> None:
    config = built["OCIv1"]["config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["crucible-dispatcher"]
    labels = config["Labels"]
    for label in LABELS:
        assert labels.get(f"org.opencontainers.image.{label}"), label
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"


def test_a_build_from_nothing_gives_the_same_digest(built: dict[str, Any], tmp_path: Path) -> None:
    """A build in a fresh buildah storage against one in the cached storage (its layer cache),
    both of one snapshot of the sources: the tree may change under a long test."""
    base_name = built["ImageAnnotations"]["org.opencontainers.image.base.name"]
    base_key = base_name.rsplit("-", 1)[1]
    layers = [p for p in IMAGES.glob("layer-python-*.tar") if _key_of(p) == base_key]
    assert layers, f"no python layer in {IMAGES} matches {base_name}"
    snapshot = tmp_path / "src"
    snapshot.mkdir()
    for name in (*BUILD_CONTEXT, "tests/cluster"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, snapshot / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, snapshot / name)
    script = str(snapshot / "tests" / "cluster" / "platform-image.sh")
    cached = run(script, str(layers[0]), str(tmp_path / "cached.oci.tar"), f"{NAME}-repro")
    fresh = tmp_path / "buildah"
    try:
        again = run(
            script, str(layers[0]), str(tmp_path / "fresh.oci.tar"), f"{NAME}-repro",
            env={"CRUCIBLE_BUILDAH_DIR": str(fresh)},
        )  # fmt: skip
        assert again.strip() == cached.strip()
    finally:
        for storage, what in ((CACHE / "buildah", f"{NAME}-repro"), (fresh, "--all")):
            subprocess.run(
                ["buildah", "--root", str(storage / "root"), "--runroot", str(storage / "run"),
                 "--storage-driver", "overlay", "rmi", "--force", what],
                capture_output=True, check=False,
            )  # fmt: skip
        shutil.rmtree(fresh, ignore_errors=True)


def _key_of(path: Path) -> str:
    """The base image's name in platform-image.sh: a key of the layer and of mkoci.py."""
    return run("sh", "-c", 'cat "$0" "$1" | sha256sum | cut -c1-16', str(path), str(MKOCI)).strip()
