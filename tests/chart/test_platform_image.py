"""The platform image's Dockerfile and the chart agree: the commands the chart and the
dispatcher's instrumentation run exist in the image, it runs as the chart's user, and the build
context carries what the Dockerfile copies."""

import re
import tomllib

from dispatcher.backends.kube.config import KubernetesConfig
from tests.chart import render

DOCKERFILE = (render.REPO / "Dockerfile").read_text()
DOCKERIGNORE = [
    line.strip()
    for line in (render.REPO / ".dockerignore").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]


def test_image_runs_as_the_chart_user_with_the_dispatcher_entry_point() -> None:
    assert "USER 10001:10001" in DOCKERFILE
    assert 'ENTRYPOINT ["crucible-dispatcher"]' in DOCKERFILE
    scripts = tomllib.loads((render.REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "crucible-dispatcher" in scripts
    deployment = (render.CHART / "templates" / "dispatcher-deployment.yaml").read_text()
    assert 'command: ["crucible-dispatcher"]' in deployment
    assert "runAsUser: 10001" in deployment


def test_wrapper_lands_where_the_instrumentation_copies_it_from() -> None:
    assert KubernetesConfig().wrapper_source_path == "/opt/crucible/crucible-wrapper"
    assert f"python3 -m wrapper.pack {KubernetesConfig().wrapper_source_path}" in DOCKERFILE
    bundle = KubernetesConfig().wrapper_bundle_path
    assert f"python3 -m wrapper.bundle --launcher /tmp/crucible-launch {bundle}" in DOCKERFILE
    # The sidecar and the copy step run `python` from the image: the venv must come first.
    assert "ENV PATH=/opt/crucible/venv/bin:${PATH}" in DOCKERFILE


def test_base_is_pinned_by_digest_and_the_build_reproducible() -> None:
    froms = re.findall(r"^FROM (\S+)", DOCKERFILE, flags=re.M)
    assert froms
    # Every stage is BASE: the official image by digest unless the build passes another.
    assert set(froms) == {"${BASE}"}
    assert "ARG BASE=docker.io/library/python:3.11-slim-bookworm@${PYTHON_DIGEST}" in DOCKERFILE
    assert "SOURCE_DATE_EPOCH" in DOCKERFILE
    assert "PIP_NO_CACHE_DIR=1" in DOCKERFILE
    assert "[dispatcher,sidecar]" in DOCKERFILE


def test_build_context_holds_what_the_dockerfile_copies() -> None:
    copied = re.findall(r"^COPY (?!--from)(.+?) \S+$", DOCKERFILE, flags=re.M)
    sources = [s for line in copied for s in line.split()]
    assert sources
    assert DOCKERIGNORE[0] == "*"
    allowed = {entry.lstrip("!").rstrip("/") for entry in DOCKERIGNORE if entry.startswith("!")}
    for source in sources:
        assert source.split("/")[0] in allowed, f"{source} is excluded by .dockerignore"
        assert (render.REPO / source).exists()
