"""Finding 1 (Section 4.2): "a corrupted BERT model is unable to fully recover its original
performance via fine-tuning": every corrupted setting (bottom or top, any level, and 100%) scores
below the clean model of the same slice. One case per corrupted setting; fails only if CONTRADICTED."""

import pytest

from harness.claims import Verdict

CLAIM = "no-complete-recovery"


def test_no_complete_recovery(comparison, record_verdict):
    record_verdict(comparison)
    if comparison.verdict is Verdict.CONTRADICTED:
        pytest.fail(f"CONTRADICTED: {comparison.detail}", pytrace=False)
