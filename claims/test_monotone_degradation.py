"""Finding 2 (Section 4.2): "as the degree of corruption increases, the fine-tuned performance
decreases": along clean -> bottom levels -> 100% and clean -> top levels -> 100%, each step to
more corruption scores no higher (levels compared by order, so 2/6 and 4/6 layers work as 25/50/75%).
One case per consecutive pair; fails only if CONTRADICTED (F1 rises beyond the noise)."""

import pytest

from harness.claims import Verdict

CLAIM = "monotone-degradation"


def test_monotone_degradation(comparison, record_verdict):
    record_verdict(comparison)
    if comparison.verdict is Verdict.CONTRADICTED:
        pytest.fail(f"CONTRADICTED: {comparison.detail}", pytrace=False)
