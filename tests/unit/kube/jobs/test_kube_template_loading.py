import pathlib

import pytest
import yaml

from dispatcher import errors
from dispatcher.backends.kube.jobs import templates
from tests.unit.kube import kube_samples

MINIMAL = """
apiVersion: batch/v1
kind: Job
spec:
  template:
    spec:
      containers:
        - name: main
          image: ${crucible.image}
          command: ${crucible.command}
          env: ${crucible.env}
          resources: {limits: {cpu: "${crucible.cpu}", memory: "${crucible.memory}"}}
"""


def test_minimal_template_loads_and_names_its_main_container() -> None:
    assert templates.parse(MINIMAL).main_container == "main"


def test_shipped_chart_template_loads() -> None:
    template = templates.load(str(kube_samples.CHART_TEMPLATE))
    assert template.main_container == "evaluation"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL.replace("kind: Job", "kind: Pod"), "not a Job"),
        (MINIMAL.replace("batch/v1", "batch/v1beta1"), "not a Job"),
        (MINIMAL + "\n---\n" + MINIMAL, "one YAML document"),
        ("", "one YAML document"),
        ("[1, 2]", "not a mapping"),
        ("apiVersion: batch/v1\nkind: Job\nspec: {}\n", "pod"),
        (MINIMAL.split("      containers:")[0] + "      containers: []\n", "no containers"),
        (MINIMAL.replace("- name: main", "- nom: main"), "needs a name"),
        (MINIMAL.replace("${crucible.cpu}", "1"), "missing placeholders: ${crucible.cpu}"),
        (MINIMAL.replace("env: ${crucible.env}", ""), "${crucible.env}"),
        (MINIMAL.replace("${crucible.memory}", "${crucible.mem}"), "unknown placeholder"),
        (MINIMAL.replace("${crucible.memory}", "${crucible.memory"), "malformed placeholder"),
        (MINIMAL.replace("${crucible.memory}", "x ${crucible.env}"), "is a list"),
        (MINIMAL + "metadata: {labels: {'${crucible.eval_id}': x}}\n", "mapping key"),
        ("apiVersion: batch/v1\nkind: Job\nx: [unclosed\n", "not valid YAML"),
        (MINIMAL + "metadata: {annotations: {when: 2024-01-01}}\n", "JSON cannot carry"),
        (MINIMAL + "metadata: {x: !!python/object/apply:os.system ['id']}\n", "not valid YAML"),
        (MINIMAL + "metadata: {x: !!binary aGVsbG8=}\n", "JSON cannot carry"),
    ],
)
def test_unusable_templates_fail_at_load_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(errors.TemplateError, match=None) as caught:
        templates.parse(text)
    assert message in caught.value.message


def test_image_and_command_must_be_in_the_main_container() -> None:
    two = MINIMAL + "        - {name: second, image: busybox, command: [sleep, '1']}\n"
    with pytest.raises(errors.TemplateError, match="main container 'second'"):
        templates.parse(two, main_container="second")
    with pytest.raises(errors.TemplateError, match="'nope' not in"):
        templates.parse(MINIMAL, main_container="nope")


def test_missing_file_is_a_template_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(errors.TemplateError, match="cannot read"):
        templates.load(str(tmp_path / "absent.yaml"))


def test_yaml_aliases_are_unshared_so_renders_cannot_leak_between_places() -> None:
    text = MINIMAL + ("metadata:\n  labels: &shared {a: b}\n  annotations: *shared\n")
    rendered = templates.parse(text).render(kube_samples.values())
    rendered["metadata"]["labels"]["a"] = "changed"
    assert rendered["metadata"]["annotations"] == {"a": "b"}


def test_render_leaves_the_template_untouched() -> None:
    template = templates.parse(kube_samples.EVERYWHERE)
    first = template.render(kube_samples.values(eval_id="one"))
    snapshot = yaml.safe_dump(first)
    template.render(kube_samples.values(eval_id="two", command=["x"] * 5))
    assert yaml.safe_dump(first) == snapshot
    assert first["metadata"]["annotations"]["raw"] == "one"
