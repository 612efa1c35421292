"""Finding 3 (Section 4.2): "when the degree of corruption remains unchanged, the impact of
bottom-layer corruption is greater than top-layer corruption": at each level, bottom scores below top.

Strata: the levels. A level is CONTRADICTED when bottom scores significantly above top."""

CLAIM = "bottom-worse-than-top"


def test_bottom_worse_than_top_verdict(judge_claim):
    judge_claim(CLAIM)


def test_bottom_worse_than_top(comparison, judge_comparison):
    judge_comparison(comparison)
