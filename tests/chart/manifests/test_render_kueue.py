"""`evaluation.kueue.localQueueName`: off by default, else the dispatcher's Kueue setting."""

from collections.abc import Callable

from dispatcher.settings import DispatcherSettings
from tests.chart import render

KUEUE_ENV = "CRUCIBLE_KUBERNETES__KUEUE_QUEUE_NAME"


def test_kueue_is_off_by_default(
    helm: str,
    defaults: list[render.Manifest],
    chart_settings: Callable[[list[render.Manifest]], DispatcherSettings],
) -> None:
    assert KUEUE_ENV not in render.resolved_env(defaults)
    assert chart_settings(defaults).kubernetes.kueue_queue_name is None


def test_a_local_queue_name_reaches_the_dispatcher_setting(
    helm: str, chart_settings: Callable[[list[render.Manifest]], DispatcherSettings]
) -> None:
    manifests = render.template(
        sets=["evaluation.kueue.localQueueName=team-a", "evaluation.admission.maxRunning=0"]
    )
    settings = chart_settings(manifests)
    assert settings.kubernetes.kueue_queue_name == "team-a"
    assert settings.kubernetes.max_running == 0


def test_a_queue_name_that_is_no_dns_label_fails_the_install(helm: str) -> None:
    done = render.lint(sets=["evaluation.kueue.localQueueName=Team_A"])
    assert done.returncode != 0
    assert "localQueueName" in done.stdout + done.stderr
