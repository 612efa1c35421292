"""Section 4.3, Linear Probe: the probe's results "appear highly unstable and inconsistent".

Instability as numbers, per model and dataset with both a probe and a full fine-tuning slice (the
paper: Table 4 against Table 2 on AG News and DBpedia). Strata, the two measures:
* violation rate: the share of the orderings of findings 1-3 that the mean F1 breaks, probe minus full;
* seed spread (our grid, 3+ seeds): the seeds' standard deviation per setting, probe minus full.
Both are tested by resampling: a bootstrap over seeds resampled jointly for every setting of both
slices (or, with one run per value, the test set's sampling noise redrawn for every value), which
keeps the dependence between comparisons that share a run. SUPPORTED when the probe's is larger."""

CLAIM = "probe-instability"


def test_probe_instability_verdict(judge_claim):
    judge_claim(CLAIM)


def test_probe_instability(comparison, judge_comparison):
    judge_comparison(comparison)
