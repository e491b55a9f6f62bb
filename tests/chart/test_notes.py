"""NOTES.txt, rendered through a copy of the chart where its text is wrapped into an ordinary
template (helm template skips NOTES.txt, and `helm install --dry-run` wants a cluster)."""

import pathlib
import shutil

import pytest
import yaml

from tests.chart import render


@pytest.fixture(scope="module")
def notes_chart(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    chart = tmp_path_factory.mktemp("notes") / "crucible"
    shutil.copytree(render.CHART, chart)
    text = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "NOTES.txt").unlink()
    (chart / "templates" / "_notes.tpl").write_text(
        '{{- define "test.notes" -}}\n' + text + "\n{{- end }}\n"
    )
    (chart / "templates" / "notes.yaml").write_text(
        'notes: {{ include "test.notes" . | toJson }}\n'
    )
    return chart


def notes(chart: pathlib.Path, *sets: str) -> str:
    args = [a for s in sets for a in ("--set", s)]
    done = render.run_helm(
        "template",
        render.RELEASE,
        str(chart),
        "--namespace",
        render.NAMESPACE,
        "--kube-version",
        render.RENDER_KUBE_VERSION,
        "--show-only",
        "templates/notes.yaml",
        *args,
    )
    assert done.returncode == 0, done.stderr
    text: str = yaml.safe_load(done.stdout)["notes"]
    return text


def test_notes_say_how_to_reach_and_use_the_dispatcher(
    helm: str, notes_chart: pathlib.Path
) -> None:
    text = notes(notes_chart)
    service = f"svc/{render.FULLNAME}-dispatcher 8080:8080"
    assert f"kubectl -n {render.NAMESPACE} port-forward {service}" in text
    assert f"get secret {render.FULLNAME}-api-tokens" in text
    assert "pod-security.kubernetes.io/enforce=restricted" in text
    assert f"helm test {render.RELEASE}" in text
    assert "WARNING" not in text
    assert 'one ACL user, "dispatcher"' in text
    assert "sidecar" not in text.replace("Sidecar mode", "")


@pytest.mark.parametrize(
    ("sets", "warning"),
    [
        (["networkPolicy.enabled=false"], "networkPolicy.enabled is false"),
        (
            ["dispatcher.podDisruptionBudget.enabled=true", "dispatcher.replicaCount=1"],
            "block node drains",
        ),
        (
            ["redis.enabled=false", "externalRedis.host=r", "externalRedis.existingSecret=s"],
            "Only the dispatcher connects to the external Redis",
        ),
    ],
)
def test_notes_warn_about_risky_settings(
    helm: str, notes_chart: pathlib.Path, sets: list[str], warning: str
) -> None:
    assert warning in notes(notes_chart, *sets)
