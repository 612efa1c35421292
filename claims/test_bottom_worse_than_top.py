"""Finding 3 (Section 4.2): "when the degree of corruption remains unchanged, the impact of
bottom-layer corruption is greater than top-layer corruption": at each level, bottom scores no
higher than top. One case per level; fails only if CONTRADICTED (bottom beats top beyond the noise)."""

import pytest

from harness.claims import Verdict

CLAIM = "bottom-worse-than-top"


def test_bottom_worse_than_top(comparison, record_verdict):
    record_verdict(comparison)
    if comparison.verdict is Verdict.CONTRADICTED:
        pytest.fail(f"CONTRADICTED: {comparison.detail}", pytrace=False)
