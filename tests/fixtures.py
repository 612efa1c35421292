"""Small builders shared by several test modules."""

from __future__ import annotations

import numpy as np

from harness.method.prepare import Encoded


def random_encoded(n: int, seed: int) -> Encoded:
    """``n`` examples of 4-11 random token ids (ids 1000-1999) with random binary labels."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, 12, size=n)
    ids = rng.integers(1000, 2000, size=lengths.sum()).astype(np.int32)
    return Encoded(ids, np.zeros(len(ids), np.int8), np.concatenate([[0], np.cumsum(lengths)]),
                   rng.integers(0, 2, size=n))
