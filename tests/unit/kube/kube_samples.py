"""Sample templates and values shared by the kube unit tests (not a test module)."""

import pathlib

from dispatcher.backends.kube.jobs import templates

CHART_TEMPLATE = pathlib.Path(__file__).parents[3] / "charts/crucible/files/job-template.yaml"

# Placeholders in every kind of position: whole scalars, text, list splices, command, env, args,
# annotations, a second container.
EVERYWHERE = """
apiVersion: batch/v1
kind: Job
metadata:
  name: ${crucible.job_name}
  annotations:
    note: "eval ${crucible.eval_id} at ${crucible.created_at}"
    raw: ${crucible.eval_id}
  labels:
    eval: ${crucible.eval_label}
spec:
  activeDeadlineSeconds: ${crucible.timeout_seconds}
  template:
    spec:
      containers:
        - name: main
          image: ${crucible.image}
          command: ${crucible.command}
          args: ["--id=${crucible.eval_id}", "${crucible.timeout_seconds}", "$(HOME)"]
          env:
            - {name: FIXED, value: "$(HOME)"}
            - ${crucible.env}
            - {name: ID, value: "${crucible.eval_id}"}
          resources:
            limits: {cpu: "${crucible.cpu}", memory: "${crucible.memory}"}
        - name: helper
          image: busybox
          command: ["echo", "${crucible.job_name}"]
"""


def values(**overrides: object) -> templates.Values:
    base: dict[str, object] = {
        "job_name": "crucible-e-0123456789",
        "eval_id": "e",
        "eval_label": "e",
        "image": "python:3.12-slim",
        "command": ["python", "-c", "print(1)"],
        "timeout_seconds": 30,
        "cpu": "500m",
        "memory": "256Mi",
        "env": {"A": "1"},
        "created_at": "2026-01-01T00:00:00Z",
    }
    base.update(overrides)
    return templates.Values(**base)  # type: ignore[arg-type]
