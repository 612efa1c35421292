"""Finding 1 (Section 4.2): "a corrupted BERT model is unable to fully recover its original
performance via fine-tuning": every corrupted setting (bottom or top, any level, and 100%) scores
below the clean model of the same slice.

Strata: the corruption settings. The mildest (top 25%) decides as much as the harshest: one setting
that heals completely refutes "never". A comparison is CONTRADICTED when the setting scores
significantly above clean, or when it is shown equivalent to clean within the margin (complete
recovery)."""

CLAIM = "no-complete-recovery"


def test_no_complete_recovery_verdict(judge_claim):
    judge_claim(CLAIM)


def test_no_complete_recovery(comparison, judge_comparison):
    judge_comparison(comparison)
