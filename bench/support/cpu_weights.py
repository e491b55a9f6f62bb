"""The CPU weight of a release's own pods on this node, read and (as an experiment) set.

On cgroup v1 a pod's weight against the other pods of a busy node is its cgroup's
``cpu.shares``, which the kubelet derives from the pod's CPU requests (1024 per CPU). A
dispatcher or Redis pod of the chart (100m) weighs 102; an evaluation pod (500m, its sidecar
10m) weighs 522. ``set_shares`` writes another weight straight into the pods' cgroups: what a
node of their own would give them, without the requests that would leave fewer evaluations room
on this one. Only the bench's own release is touched, on the node this runs on (as root).
"""

from collections.abc import Sequence
from pathlib import Path

from tests.e2e import kube

CGROUP_CPU = Path("/sys/fs/cgroup/cpu/kubepods")
# The pods a sidecar's event crosses on its way to a client, by their chart component label.
SERVICE_COMPONENTS = ("dispatcher", "redis")


def _cgroups(namespace: str, components: Sequence[str] = SERVICE_COMPONENTS) -> dict[str, Path]:
    """The cpu cgroup of each of the release's pods of ``components``, by pod name."""
    found: dict[str, Path] = {}
    for component in components:
        selector = f"app.kubernetes.io/component={component}"
        for pod in kube.kubectl_json("get", "pods", "-n", namespace, "-l", selector)["items"]:
            uid, name = pod["metadata"]["uid"], pod["metadata"]["name"]
            # Guaranteed pods sit at the top, the others under their QoS class.
            matches = sorted(CGROUP_CPU.glob(f"pod{uid}")) + sorted(CGROUP_CPU.glob(f"*/pod{uid}"))
            if not matches:
                raise RuntimeError(f"no cpu cgroup of pod {name} under {CGROUP_CPU}")
            found[name] = matches[0]
    return found


def shares(namespace: str) -> dict[str, int]:
    """Each service pod's ``cpu.shares`` now."""
    return {
        name: int((path / "cpu.shares").read_text()) for name, path in _cgroups(namespace).items()
    }


def set_shares(namespace: str, weight: int, components: Sequence[str] = SERVICE_COMPONENTS) -> None:
    """Give every pod of ``components`` ``weight``."""
    for path in _cgroups(namespace, components).values():
        (path / "cpu.shares").write_text(str(weight))
