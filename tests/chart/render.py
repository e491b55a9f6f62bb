"""Run helm on the chart: find the binary, render scenarios into manifests as dicts.

helm comes from ``CRUCIBLE_HELM``, else the cache that tests/cluster/build-tools.sh fills (version
pinned in tests/cluster/versions.sh), else ``helm`` on PATH. A go-installed helm believes the
cluster is Kubernetes 1.20, so every render passes ``--kube-version``.
"""

import base64
import functools
import os
import pathlib
import re
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "crucible"
RELEASE = "crucible-test"
FULLNAME = RELEASE  # the release name already contains the chart name
NAMESPACE = "crucible-ns"
KUBE_VERSIONS = ("1.29.0", "1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0")
RENDER_KUBE_VERSION = KUBE_VERSIONS[-1]

Manifest = dict[str, Any]
# What the Downward API would give the dispatcher pod, for resolved_env.
POD_FIELDS = {"metadata.name": f"{FULLNAME}-dispatcher-7d9f8b6c5-x2k4q"}


def scenarios() -> dict[str, pathlib.Path | None]:
    """Every values scenario: the chart defaults, ct's ci/ files, the render-only ones."""
    found: dict[str, pathlib.Path | None] = {"defaults": None}
    for directory in (CHART / "ci", REPO / "tests" / "chart" / "scenarios"):
        for path in sorted(directory.glob("*-values.yaml")):
            found[f"{directory.name}/{path.stem}"] = path
    return found


def helm_binary() -> str | None:
    return tool_binary("helm")


def tool_binary(name: str) -> str | None:
    """``CRUCIBLE_<NAME>``, else the pinned build in the cache, else ``name`` on PATH."""
    explicit = os.environ.get(f"CRUCIBLE_{name.upper()}")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    versions = (REPO / "tests" / "cluster" / "versions.sh").read_text()
    variable = f"{name.upper()}_VERSION"
    pinned = re.search(rf"{variable}=\$\{{{variable}:-([0-9.]+)\}}", versions)
    cache = pathlib.Path(os.environ.get("CRUCIBLE_CACHE", pathlib.Path.home() / ".cache/crucible"))
    if pinned and (cache / "bin" / f"{name}-{pinned.group(1)}").is_file():
        return str(cache / "bin" / f"{name}-{pinned.group(1)}")
    return shutil.which(name)


class HelmError(Exception):
    """helm exited non-zero; the message is its stderr."""


def _args(values: Sequence[pathlib.Path], sets: Sequence[str]) -> list[str]:
    args = []
    for path in values:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    return args


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    helm = helm_binary()
    if helm is None:
        raise HelmError("no helm binary")
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120, check=False)


@functools.lru_cache(maxsize=64)
def _template_text(
    values: tuple[pathlib.Path, ...], sets: tuple[str, ...], extra: tuple[str, ...]
) -> str:
    done = run_helm(
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        RENDER_KUBE_VERSION,
        *extra,
        *_args(values, sets),
    )
    if done.returncode != 0:
        raise HelmError(done.stderr.strip())
    return done.stdout


def template(
    values: Sequence[pathlib.Path] = (), sets: Sequence[str] = (), extra: Sequence[str] = ()
) -> list[Manifest]:
    """The rendered manifests (hooks such as the test Pod included), one dict per document."""
    text = _template_text(tuple(values), tuple(sets), tuple(extra))
    return [doc for doc in yaml.safe_load_all(text) if doc]


def lint(
    values: Sequence[pathlib.Path] = (), sets: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    return run_helm(
        "lint", "--strict", str(CHART), "--kube-version", RENDER_KUBE_VERSION, *_args(values, sets)
    )


def find(manifests: list[Manifest], kind: str, name_suffix: str = "") -> list[Manifest]:
    return [
        m for m in manifests if m["kind"] == kind and m["metadata"]["name"].endswith(name_suffix)
    ]


def one(manifests: list[Manifest], kind: str, name_suffix: str = "") -> Manifest:
    matches = find(manifests, kind, name_suffix)
    assert len(matches) == 1, f"expected one {kind} *{name_suffix}, got {len(matches)}"
    return matches[0]


def pod_specs(manifests: list[Manifest]) -> list[tuple[str, Manifest]]:
    """(object name, pod spec) of every object that runs pods."""
    specs = []
    for m in manifests:
        if m["kind"] == "Pod":
            specs.append((m["metadata"]["name"], m["spec"]))
        elif m["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            specs.append((m["metadata"]["name"], m["spec"]["template"]["spec"]))
    return specs


def secret_value(manifests: list[Manifest], name: str, key: str) -> str:
    found = [m for m in find(manifests, "Secret") if m["metadata"]["name"] == name]
    assert found, f"no Secret {name}"
    return base64.b64decode(found[0]["data"][key]).decode()


def resolved_env(manifests: list[Manifest]) -> dict[str, str]:
    """The dispatcher container's env as the kubelet would give it: Secret references read
    from the rendered Secrets, $(VAR) expanded in order."""
    spec = one(manifests, "Deployment", "-dispatcher")["spec"]["template"]["spec"]
    resolved: dict[str, str] = {}
    for item in spec["containers"][0]["env"]:
        if "fieldRef" in item.get("valueFrom", {}):
            field = item["valueFrom"]["fieldRef"]["fieldPath"]
            resolved[item["name"]] = POD_FIELDS[field]
        elif "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            resolved[item["name"]] = secret_value(manifests, ref["name"], ref["key"])
        else:
            resolved[item["name"]] = re.sub(
                r"\$\(([A-Z_]+)\)", lambda m: resolved[m.group(1)], item["value"]
            )
    return resolved
