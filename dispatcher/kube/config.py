"""Settings group of the Kubernetes backend (owner: dispatcher/kube/)."""

import pydantic


class KubernetesConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, use_attribute_docstrings=True)

    namespace: str = "default"
    """Namespace the dispatcher creates evaluation Jobs in (normally its own)."""

    job_template_path: str = "/etc/crucible/job-template.yaml"
    """The operator-owned Job template (mounted from the chart's ConfigMap)."""
