"""Section 4.3, Linear Probe: the probe's results "appear highly unstable and inconsistent".

Instability as numbers, per model and dataset with both a probe and a full fine-tuning slice
(the paper: Table 4 against Table 2 on AG News and DBpedia):
* violation-rate: the share of the comparisons of findings 1-3 that are CONTRADICTED, probe vs full
  (one-sided Fisher exact test);
* seed-std (our grid, 2+ seeds): the seeds' standard deviation per setting, probe vs full, paired
  over settings (one-sided Wilcoxon signed-rank test).
SUPPORTED when the probe's is larger; fails only if CONTRADICTED (the probe is the steadier one)."""

import pytest

from harness.claims import Verdict

CLAIM = "probe-instability"


def test_probe_instability(comparison, record_verdict):
    record_verdict(comparison)
    if comparison.verdict is Verdict.CONTRADICTED:
        pytest.fail(f"CONTRADICTED: {comparison.detail}", pytrace=False)
