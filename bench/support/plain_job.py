"""A plain Job: the same workload as an evaluation, minus wrapper, init container and sidecar
(the baseline of the cluster benchmarks' instrumentation overhead)."""

from typing import Any

from dispatcher.backends.base import CODE_COMMAND


def manifest(name: str, image: str, code: str) -> dict[str, Any]:
    """``code`` run by ``image``'s python as a Job of its own, with the chart's default CPU
    and memory limits and the restricted security context its evaluations get."""
    restricted = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"crucible.dev/bench": "plain"}},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 300,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "evaluation",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": [*CODE_COMMAND, code],
                            "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}},
                            "securityContext": restricted,
                        }
                    ],
                }
            },
        },
    }
