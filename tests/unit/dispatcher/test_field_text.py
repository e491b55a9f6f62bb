"""A record field's JSON text is the compact encoder's, to the character, whatever the value."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.store import layout

COMPACT = json.JSONEncoder(separators=(",", ":")).encode

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and the infinities too: they take the encoder's own path
    st.text(),  # control characters, quotes, backslashes, non-ASCII, lone surrogates
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


@given(values)
def test_a_value_is_the_compact_encoders_text(value):
    assert layout.field_text(value) == COMPACT(value)


@pytest.mark.parametrize(
    "value", ['a\x00"\\é\U0001f600\ud800', -(2**70), 2**53 + 1, 1e-7, 0.1, -0.0, 1e308]
)
def test_a_scalar_that_skips_the_encoder_reads_back_as_itself(value):
    text = layout.field_text(value)
    assert text == COMPACT(value)
    assert json.loads(text) == value
