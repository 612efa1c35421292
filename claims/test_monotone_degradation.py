"""Finding 2 (Section 4.2): "as the degree of corruption increases, the fine-tuned performance
decreases": along clean -> bottom levels -> 100% and clean -> top levels -> 100%, each step to more
corruption scores lower (levels compared by order, so 2/6 and 4/6 layers stand where 25/50/75% do).

Strata: the steps (clean -> bottom 25%, bottom 25% -> bottom 50%, ...). A step is CONTRADICTED when F1
rises significantly, or when it is shown equivalent within the margin (no degradation)."""

CLAIM = "monotone-degradation"


def test_monotone_degradation_verdict(judge_claim):
    judge_claim(CLAIM)


def test_monotone_degradation(comparison, judge_comparison):
    judge_comparison(comparison)
