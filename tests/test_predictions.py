"""harness/method/predictions.py: the per-example predictions of a record, one character an example."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import BadResults
from harness.method.predictions import ALPHABET, decode_labels, encode_labels


@given(st.lists(st.integers(min_value=0, max_value=len(ALPHABET) - 1), max_size=3000))
def test_labels_round_trip(labels):
    text = encode_labels(np.array(labels, dtype=np.int64))
    assert len(text) == len(labels)
    assert decode_labels(text).tolist() == labels


def test_dbpedias_14_labels_fit_one_character_each():
    assert encode_labels(np.arange(14)) == "0123456789abcd"


@pytest.mark.parametrize("bad", [[-1], [36]])
def test_label_ids_outside_the_alphabet_are_refused(bad):
    with pytest.raises(ValueError, match="label ids must lie in"):
        encode_labels(np.array(bad))


def test_a_damaged_prediction_string_is_one_clear_error():
    with pytest.raises(BadResults, match="outside"):
        decode_labels("01?1")
