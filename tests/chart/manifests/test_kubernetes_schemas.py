"""Every scenario's manifests are valid objects of every supported Kubernetes version (strict:
an unknown field fails), from the bundled schemas of kubernetes-validate, offline."""

import copy

import kubernetes_validate
import pytest

from tests.chart import render


@pytest.mark.parametrize("name", list(render.scenarios()))
@pytest.mark.parametrize("version", render.KUBE_VERSIONS)
def test_rendered_manifests_validate(helm: str, name: str, version: str) -> None:
    path = render.scenarios()[name]
    manifests = render.template(values=[path] if path else [])
    for manifest in manifests:
        kubernetes_validate.validate(manifest, version, strict=True)


def test_validation_catches_a_misspelled_field(defaults: list[render.Manifest]) -> None:
    deployment = copy.deepcopy(render.one(defaults, "Deployment"))
    spec = deployment["spec"]["template"]["spec"]
    spec["serviceAcountName"] = spec.pop("serviceAccountName")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, render.KUBE_VERSIONS[0], strict=True)
