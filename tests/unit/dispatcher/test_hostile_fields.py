"""Inputs that used to pass validation and fail later: hidden characters in names, a timeout
that rounds to nothing, environment variables that take over the interpreter or the loader."""

import pathlib
import types
from typing import Any

import pytest
import yaml

from dispatcher import errors, user_env
from dispatcher.api.schema import requests
from dispatcher.backends import base
from dispatcher.backends.local import run as local_run
from dispatcher.settings import DispatcherSettings
from dispatcher.store import records
from wire import sidecar_env

SETTINGS = DispatcherSettings()
CHART_TEMPLATE = pathlib.Path(__file__).parents[3] / "charts/crucible/files/job-template.yaml"


def fields_of(body: dict[str, Any], parse: Any = requests.parse_evaluation) -> list[str]:
    with pytest.raises(errors.InvalidRequestError) as caught:
        parse(body, SETTINGS)
    details: list[dict[str, str]] = caught.value.details
    assert all(d["message"] for d in details)
    return [d["field"] for d in details]


@pytest.mark.parametrize("bad", ["\n", "\x00", "\ud800"])
def test_names_with_a_newline_nul_or_surrogate_are_refused(bad: str) -> None:
    body = {
        "code": "1",
        "eval_id": "run" + bad,
        "env": {"NAME" + bad: "1"},
        "labels": {"team" + bad: "ml", "stage": "dev" + bad},
    }
    assert sorted(fields_of(body)) == sorted(
        ["eval_id", f"env.NAME{bad}", f"labels.team{bad}", "labels.stage"]
    )


@pytest.mark.parametrize("bad", ["\x00", "\ud800"])
def test_text_for_a_process_must_be_encodable_without_nul(bad: str) -> None:
    assert fields_of({"code": "print(1)" + bad}) == ["code"]
    assert fields_of({"command": ["echo", "x" + bad]}) == ["command"]
    assert fields_of({"code": "1", "env": {"GREETING": "hi" + bad}}) == ["env.GREETING"]


@pytest.mark.parametrize("seconds", [0.0004, 0.5, 0.999])
def test_timeouts_below_a_second_are_refused_on_both_endpoints(seconds: float) -> None:
    assert fields_of({"code": "1", "timeout_seconds": seconds}) == ["timeout_seconds"]
    assert fields_of({"code": "1", "timeout": seconds}, requests.parse_execute) == ["timeout"]


def test_a_one_second_timeout_is_accepted() -> None:
    assert requests.parse_evaluation({"code": "1", "timeout_seconds": 1}, SETTINGS).timeout_seconds
    assert requests.parse_execute({"code": "1", "timeout": 1.5}, SETTINGS).timeout_seconds == 1.5


TAKEOVERS = [
    "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "ld_preload", "GLIBC_TUNABLES", "GCONV_PATH",
    "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONINSPECT", "PYTHONSAFEPATH",
    "CRUCIBLE_CHANNEL", "CRUCIBLE_SIDECAR_INGEST_TOKEN",
    "PATH", "HOME", "TMPDIR", "LANG", "EVAL_ID",
]  # fmt: skip


def test_env_names_that_change_the_interpreter_loader_or_platform_get_one_message_each() -> None:
    body = {"code": "1", "env": {name: "x" for name in TAKEOVERS} | {"GREETING": "hi"}}
    assert sorted(fields_of(body)) == sorted(f"env.{name}" for name in TAKEOVERS)


def test_ordinary_env_names_are_accepted() -> None:
    env = {"GREETING": "hi", "LC_ALL": "C", "PY_VERSION": "3", "MY_LD_PATH": "x", "_": "1"}
    assert requests.parse_evaluation({"code": "1", "env": env}, SETTINGS).env == dict(
        sorted(env.items())
    )


def _local_platform_env() -> set[str]:
    submission = base.Submission(
        eval_id="e",
        command=["true"],
        image="python",
        timeout_seconds=1,
        resources=records.Resources(cpu="1", memory="1Gi"),
        env={},
        labels={},
    )
    run = local_run.LocalRun(submission, types.SimpleNamespace(bin_dir="/bin"))  # type: ignore[arg-type]
    dirs = types.SimpleNamespace(work="/w", tmp="/t")
    return set(run._child_env(dirs))  # type: ignore[arg-type]


def _chart_platform_env() -> set[str]:
    document = yaml.safe_load(CHART_TEMPLATE.read_text())
    env = document["spec"]["template"]["spec"]["containers"][0]["env"]
    return {item["name"] for item in env if isinstance(item, dict)}


def test_every_name_the_platform_sets_itself_is_refused() -> None:
    platform = _local_platform_env() | _chart_platform_env()
    platform |= {sidecar_env.variable(s) for s in ("eval_id", "ingest_token", "ingest_url")}
    assert {"PATH", "HOME", "EVAL_ID"} <= platform
    assert {name for name in platform if user_env.problem(name) is None} == set()
