"""Per-example predictions in a record: one character per example, the evidence every verdict rests on.

A cell's record keeps, for every epoch, the label it predicted for each validation and test example,
and the true labels once (``labels``), like lm-evaluation-harness's ``--log_samples``. Label ids are
written in base 36 (``0-9a-z``), one character an example: 1,000 test examples cost 1 KB an epoch,
and every dataset of the paper has at most 14 labels (DBpedia).
"""

from __future__ import annotations

import numpy as np

from harness.errors import BadResults

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_CODES = np.frombuffer(ALPHABET.encode("ascii"), dtype=np.uint8)
_LOOKUP = np.full(256, 255, dtype=np.uint8)
_LOOKUP[_CODES] = np.arange(len(ALPHABET), dtype=np.uint8)


def encode_labels(labels: np.ndarray) -> str:
    """Label ids (0-35) as a string of one base-36 character each."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= len(ALPHABET)):
        raise ValueError(f"label ids must lie in [0, {len(ALPHABET)}): got {labels.min()}..{labels.max()}")
    return _CODES[labels.astype(np.int64)].tobytes().decode("ascii")


def decode_labels(text: str) -> np.ndarray:
    """The inverse of ``encode_labels``; a character outside the alphabet is a damaged record."""
    codes = _LOOKUP[np.frombuffer(text.encode("ascii", errors="replace"), dtype=np.uint8)]
    if (codes == 255).any():
        raise BadResults(f"a prediction string holds characters outside {ALPHABET!r}: the record is damaged")
    return codes.astype(np.int64)
