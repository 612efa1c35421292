"""Finding 5, the paper's Figure 1 made testable (Section 4.2): "the clean and top-corrupted models keep
clear label clusters; bottom-corrupted and fully corrupted ones do not". Measured, not looked at: the
final layer's label separation after fine-tuning (the mean over labels of the hard-margin SVM's
minimum distance, ``harness.beyond.analysis``) orders clean >= top-k > bottom-k >= 100%.

Strata: the three steps. The paper prints only the pictures, so on its source this claim is
INCONCLUSIVE with that reason; on ours it needs the representation analysis (`dvc repro`'s analyse stage)."""

CLAIM = "separation-order"


def test_separation_order_verdict(judge_claim):
    judge_claim(CLAIM)


def test_separation_order(comparison, judge_comparison):
    judge_comparison(comparison)
