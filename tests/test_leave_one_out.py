"""Leave one dataset out (harness.beyond.leave_one_out) on the kept replication: each re-pooling drops exactly the
one dataset, pools the rest by the replication's own rule, and the line counts the stratum's own datasets."""

from pathlib import Path

import pytest

from harness.beyond.leave_one_out import leave_one_out, leave_one_out_text
from harness.report.replication import kept_replication
from harness.verdict.replication import pool

RECORDS = Path(__file__).resolve().parents[1] / "results" / "records"


@pytest.fixture(scope="module")
def replication():
    kept = kept_replication(RECORDS)
    assert kept is not None, "the replication's records are kept in git: results/records/replication"
    return kept.replication


def test_each_dataset_is_left_out_once_and_the_rest_pooled_by_the_same_rule(replication):
    found = leave_one_out(replication)
    wholes = [p for p in replication.pooled if p.source == "ours"]
    assert wholes and found
    for whole in wholes:
        mine = [f for f in found if (f.pooled.claim, f.pooled.stratum) == (whole.claim, whole.stratum)
                and f.dataset in whole.datasets]
        assert sorted(f.dataset for f in mine) == sorted(whole.datasets)  # none of the near-chance ones
        for f in mine:
            assert set(f.pooled.datasets) == set(whole.datasets) - {f.dataset}
        gaps = [g for g in replication.gaps if g.dataset != mine[0].dataset
                and f"{g.dataset} (ours)" not in replication.near_chance]
        again = next(p for p in pool(gaps, replication.rule) if (p.claim, p.stratum) == (whole.claim, whole.stratum))
        assert again == mine[0].pooled
        line = leave_one_out_text(found, whole)
        assert f" of {len(whole.datasets)}" in line and "mean " in line
        means = [f.pooled.estimate for f in mine]
        assert f"{min(means):+.2f} to {max(means):+.2f}" in line
