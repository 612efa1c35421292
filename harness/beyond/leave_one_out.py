"""Leave one dataset out: how much each pooled verdict of the replication rests on any single dataset.

Each dataset's gaps are dropped in turn and the rest pooled again by the same rule (``harness.verdict.replication
.pool``: random effects, the claim's quantifier, near-chance datasets kept out as in the pooled verdicts). A pooled
stratum whose verdict or mean moves when one dataset leaves rests on that dataset; one that stays put does not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from harness.verdict.replication import DEFAULT_POOLING, PoolingRule, Pooled, Replication, dataset_name, pool


@dataclass(frozen=True)
class LeftOut:
    """One pooled stratum with one dataset left out."""

    dataset: str  # the dataset left out
    pooled: Pooled


def leave_one_out(replication: Replication, source: str = "ours", pooling: PoolingRule = DEFAULT_POOLING
                  ) -> list[LeftOut]:
    """Every pooled stratum of ``source`` re-pooled without each of its datasets in turn."""
    gaps = [g for g in (replication.gaps if source == "ours" else replication.paper_gaps)
            if f"{g.dataset} ({g.source})" not in replication.near_chance]
    return [LeftOut(dataset, pooled)
            for dataset in dict.fromkeys(g.dataset for g in gaps)
            for pooled in pool([g for g in gaps if g.dataset != dataset], replication.rule, pooling)]


def leave_one_out_text(found: Sequence[LeftOut], whole: Pooled) -> str:
    """One line for a pooled stratum (``whole``, all its datasets): its verdict with each of its datasets left out
    (how often each), the range of the pooled mean, and which datasets move the verdict off the most common one."""
    mine = [f for f in found if (f.pooled.claim, f.pooled.source, f.pooled.model, f.pooled.stratum)
            == (whole.claim, whole.source, whole.model, whole.stratum) and f.dataset in whole.datasets]
    if not mine:
        return "–"
    counts = Counter(str(f.pooled.verdict) for f in mine)
    usual = counts.most_common(1)[0][0]
    movers = [f"{f.pooled.verdict} without {dataset_name(f.dataset)}" for f in mine if str(f.pooled.verdict) != usual]
    means = [f.pooled.estimate for f in mine]
    return (f"{usual} in {counts[usual]} of {len(mine)}" + (f" ({'; '.join(movers)})" if movers else "")
            + f"; mean {min(means):+.2f} to {max(means):+.2f}")
