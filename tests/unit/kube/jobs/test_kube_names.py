import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.backends.kube.jobs import names

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@given(st.text(max_size=300))
def test_job_name_is_a_dns_label_for_any_eval_id(eval_id: str) -> None:
    name = names.job_name(eval_id)
    assert len(name) <= 63
    assert DNS_LABEL.match(name), name
    assert name.startswith("crucible-")


@given(st.text(max_size=300))
def test_eval_label_is_a_valid_label_value_for_any_eval_id(eval_id: str) -> None:
    value = names.eval_label(eval_id)
    assert len(value) <= 63
    assert LABEL_VALUE.match(value), value


@pytest.mark.parametrize(
    ("a", "b"),
    [("Run_1", "run-1"), ("x" * 100 + "a", "x" * 100 + "b"), ("", "-"), ("é", "è")],
)
def test_ids_that_sanitise_alike_get_different_job_names(a: str, b: str) -> None:
    assert names.job_name(a) != names.job_name(b)
    assert names.eval_label(a) != names.eval_label(b)


def test_job_name_is_stable_and_readable() -> None:
    assert names.job_name("My Eval #7") == names.job_name("My Eval #7")
    assert names.job_name("My Eval #7").startswith("crucible-my-eval-7-")


def test_valid_eval_id_is_its_own_label_and_odd_ones_are_hashed() -> None:
    assert names.eval_label("eval-42.a_b") == "eval-42.a_b"
    assert names.eval_label("a/b") != "a/b"
    assert names.eval_label("x" * 64).startswith("h-")
    # An id that looks like a hashed label is hashed too, so labels stay unambiguous.
    assert names.eval_label("h-abc") != "h-abc"


def test_selector_names_the_instance() -> None:
    assert (
        names.selector("prod") == "app.kubernetes.io/managed-by=crucible,crucible.dev/instance=prod"
    )
