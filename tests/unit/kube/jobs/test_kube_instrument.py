import copy

import kubernetes_validate
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher import errors
from dispatcher.api import ingest
from dispatcher.backends.kube.jobs import instrument, names, templates
from tests.unit.kube import kube_samples
from tests.unit.kube.jobs.instrumented import (
    CONFIG,
    TEMPLATE,
    by_name,
    every_container,
    job,
    pod_of,
    target,
)
from wire import channel
from wire import ingest as wire_ingest


def test_pods_hold_no_secret_and_the_sidecar_only_its_own_ingest_token() -> None:
    link = ingest.SidecarLink(url="http://crucible.evals.svc:8080", key=b"k" * 32)
    rendered = TEMPLATE.render(kube_samples.values())
    manifest = instrument.instrument(rendered, target(), CONFIG, sidecar_env=link.env("eval-1"))
    assert not any("secret" in v or "projected" in v for v in pod_of(manifest)["volumes"])
    for container in every_container(manifest):
        assert not any("valueFrom" in e for e in container.get("env") or [])
        if container["name"] != instrument.SIDECAR_CONTAINER:
            assert not any("TOKEN" in e["name"] for e in container.get("env") or [])
    env = {e["name"]: e["value"] for e in by_name(manifest, "crucible-sidecar")["env"]}
    assert env["CRUCIBLE_SIDECAR_INGEST_TOKEN"] == wire_ingest.eval_token(b"k" * 32, "eval-1")
    assert env["CRUCIBLE_SIDECAR_INGEST_URL"] == "http://crucible.evals.svc:8080"
    assert not any(name.startswith("CRUCIBLE_SIDECAR_REDIS") for name in env)


def test_the_spool_is_the_sidecars_alone_and_the_channel_is_read_only_for_user_code() -> None:
    manifest = job()
    mounts = {
        c["name"]: {m["name"]: m for m in c.get("volumeMounts") or []}
        for c in every_container(manifest)
    }
    assert instrument.SPOOL_VOLUME in mounts["crucible-sidecar"]
    assert not mounts["crucible-sidecar"][instrument.RUN_VOLUME].get("readOnly")
    main = mounts["evaluation"]
    assert instrument.SPOOL_VOLUME not in main
    assert main[instrument.RUN_VOLUME]["readOnly"] is True
    assert main[instrument.BIN_VOLUME]["readOnly"] is True
    assert set(mounts["crucible-wrapper-copy"]) == {instrument.BIN_VOLUME}


@pytest.mark.parametrize(
    ("runtime", "runner"),
    [
        ("bundled", ["/crucible/bin/crucible-launch"]),
        ("image-python", ["python", "-I", "-S", "/crucible/bin/crucible-wrapper"]),
    ],
)
def test_main_command_runs_through_the_wrapper(runtime: str, runner: list[str]) -> None:
    config = CONFIG.model_copy(update={"wrapper_runtime": runtime})
    main = by_name(job(config, timeout_seconds=12.5), "evaluation")
    assert main["command"] == [
        *runner, "--timeout", "12.5", "--grace", "5",
        "--channel", "/crucible/run/channel.sock", "--connect-timeout", "120",
        "--", "python", "-c", "print(1)",
    ]  # fmt: skip
    assert "args" not in main
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    assert mounts["/crucible/bin"]["readOnly"] is True
    assert mounts["/crucible/run"]["readOnly"] is True


@pytest.mark.parametrize(("timeout", "rendered"), [(0.0004, "0.001"), (1.0004, "1.0"), (2, "2")])
def test_timeout_is_rendered_to_the_millisecond_and_never_as_zero(
    timeout: float, rendered: str
) -> None:
    command = by_name(job(timeout_seconds=timeout), "evaluation")["command"]
    assert command[command.index("--timeout") + 1] == rendered


def test_template_args_follow_the_command_after_the_separator() -> None:
    text = kube_samples.CHART_TEMPLATE.read_text().replace(
        "\n          command: ${crucible.command}\n",
        "\n          command: [python, -u]\n          args: ${crucible.command}\n",
    )
    rendered = templates.parse(text).render(kube_samples.values(command=["-c", "pass"]))
    main = templates.containers(instrument.instrument(rendered, target(), CONFIG))[0]
    assert main["command"][-5:] == ["--", "python", "-u", "-c", "pass"]


def test_native_sidecar_starts_first_and_the_wrapper_waits_for_its_socket() -> None:
    manifest = job()
    pod = pod_of(manifest)
    assert [c["name"] for c in pod["initContainers"]] == [
        "crucible-wrapper-copy",
        "crucible-sidecar",
    ]
    assert [c["name"] for c in pod["containers"]] == ["evaluation"]
    sidecar = pod["initContainers"][1]
    assert sidecar["restartPolicy"] == "Always"
    # No probe: its period would be a floor on start-up; the wrapper waits for the socket.
    assert "startupProbe" not in sidecar
    main = pod["containers"][0]["command"]
    assert main[main.index("--connect-timeout") + 1] == str(CONFIG.sidecar_startup_timeout_seconds)
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert env["CRUCIBLE_SIDECAR_EXIT_AFTER_TERMINAL"] == "false"
    assert env["CRUCIBLE_SIDECAR_SOCKET_PATH"] == channel.DEFAULT_SOCKET
    assert env["CRUCIBLE_SIDECAR_SPOOL_DIR"] == instrument.SPOOL_DIR


def test_plain_sidecar_is_a_container_that_exits_after_the_end() -> None:
    pod = pod_of(job(CONFIG.model_copy(update={"sidecar_mode": "plain"})))
    assert [c["name"] for c in pod["initContainers"]] == ["crucible-wrapper-copy"]
    sidecar = pod["containers"][1]
    assert sidecar["name"] == "crucible-sidecar"
    assert "restartPolicy" not in sidecar
    assert "startupProbe" not in sidecar
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert env["CRUCIBLE_SIDECAR_EXIT_AFTER_TERMINAL"] == "true"


def test_the_bundled_wrapper_is_the_default_and_copied_whole() -> None:
    copier = by_name(job(), "crucible-wrapper-copy")
    assert copier["command"][:5] == ["python", "-I", "-S", "-c", instrument._COPY_BUNDLE]
    assert copier["command"][-2:] == ["/opt/crucible/wrapper-bundle", "/crucible/bin"]
    python_config = CONFIG.model_copy(update={"wrapper_runtime": "image-python"})
    copier = by_name(job(python_config), "crucible-wrapper-copy")
    assert copier["command"][-2:] == [
        "/opt/crucible/crucible-wrapper",
        "/crucible/bin/crucible-wrapper",
    ]


def test_wrapper_copy_has_small_requests_and_a_generous_cpu_limit() -> None:
    copier = by_name(job(), "crucible-wrapper-copy")
    assert copier["resources"]["requests"]["cpu"] == "10m"
    assert copier["resources"]["limits"]["cpu"] == "1"
    bin_volume = next(v for v in pod_of(job())["volumes"] if v["name"] == "crucible-bin")
    assert bin_volume["emptyDir"]["sizeLimit"] == "32Mi"


def test_labels_are_valid_and_the_exact_id_is_annotated() -> None:
    eval_id = "Weird id/with spaces & $(X) " + "z" * 80
    manifest = job(eval_id=eval_id, job_name=names.job_name(eval_id))
    for meta in (manifest["metadata"], manifest["spec"]["template"]["metadata"]):
        assert meta["labels"][names.LABEL_MANAGED_BY] == "crucible"
        assert names.is_label_value(meta["labels"][names.LABEL_EVAL_ID])
        assert meta["annotations"][names.ANNOTATION_EVAL_ID] == eval_id
        assert meta["labels"]["user.crucible.dev/team"] == "ml"
    assert manifest["metadata"]["name"] == names.job_name(eval_id)
    assert manifest["metadata"]["namespace"] == "evals"
    env = {e["name"]: e["value"] for e in by_name(manifest, "crucible-sidecar")["env"]}
    assert env["CRUCIBLE_SIDECAR_EVAL_ID"] == eval_id.replace("$", "$$")


def test_user_labels_can_go_to_annotations_where_any_value_fits() -> None:
    config = CONFIG.model_copy(update={"user_labels_as": "annotations"})
    manifest = job(config, labels={"note": "free text: with spaces\nand lines"})
    assert manifest["metadata"]["annotations"]["user.crucible.dev/note"].startswith("free text")
    assert "user.crucible.dev/note" not in manifest["metadata"]["labels"]


@pytest.mark.parametrize("labels", [{"bad key": "v"}, {"k": "not a label value"}, {"k" * 64: "v"}])
def test_invalid_user_labels_are_refused(labels: dict[str, str]) -> None:
    with pytest.raises(errors.InvalidRequestError) as caught:
        job(labels=labels)
    assert any(key.startswith("labels.") for key in caught.value.details)


def test_instrumenting_does_not_modify_the_rendered_job() -> None:
    rendered = TEMPLATE.render(kube_samples.values())
    before = copy.deepcopy(rendered)
    instrument.instrument(rendered, target(), CONFIG)
    assert rendered == before


@pytest.mark.parametrize("mode", ["native", "plain"])
@pytest.mark.parametrize("version", ["1.29.0", kubernetes_validate.utils.latest_version()])
def test_instrumented_job_is_valid_for_kubernetes(mode: str, version: str) -> None:
    manifest = job(CONFIG.model_copy(update={"sidecar_mode": mode}))
    kubernetes_validate.validate(manifest, version, strict=True)


@settings(max_examples=60, deadline=None)
@given(st.text(st.characters(exclude_categories=()), max_size=120))
def test_any_eval_id_gives_valid_names_and_labels(eval_id: str) -> None:
    manifest = job(eval_id=eval_id, job_name=names.job_name(eval_id))
    assert names.is_dns_label(manifest["metadata"]["name"])
    for meta in (manifest["metadata"], manifest["spec"]["template"]["metadata"]):
        assert all(names.is_label_value(v) for v in meta["labels"].values())
        assert meta["annotations"][names.ANNOTATION_EVAL_ID] == eval_id


def test_extra_sidecar_settings_are_added_but_cannot_override_crucibles() -> None:
    rendered = TEMPLATE.render(kube_samples.values())
    extra = {
        "CRUCIBLE_SIDECAR_LOG_LEVEL": "DEBUG",
        "CRUCIBLE_SIDECAR_EVAL_ID": "someone-else",
        "PATH": "/evil",
    }
    manifest = instrument.instrument(rendered, target(), CONFIG, sidecar_env=extra)
    env = {e["name"]: e["value"] for e in by_name(manifest, "crucible-sidecar")["env"]}
    assert env["CRUCIBLE_SIDECAR_LOG_LEVEL"] == "DEBUG"
    assert env["CRUCIBLE_SIDECAR_EVAL_ID"] == "eval-1"
    assert "PATH" not in env
