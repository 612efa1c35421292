"""The budget analysis (harness.beyond.budget): the gap's line along log2(budget), its noise, its error rates,
and the section on the kept records."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.beyond.budget import AtBudget, at_largest, budget_cells, interval, lr_table, paper_budget, rises, trends
from harness.report.budget import budget_section, edge_sentence
from harness.verdict.decision import (
    DEFAULT_RULE,
    DecisionRule,
    Runs,
    Verdict,
    contrast_noise,
    paired_noise,
    weighted_f1_resampled,
)
from harness.verdict.replication import DatasetVerdicts

RECORDS = Path(__file__).resolve().parents[1] / "results" / "records"
FAST = DecisionRule(test_resamples=200)


def _runs(rng: np.random.Generator, labels: np.ndarray, item: np.ndarray, ability: dict[int, float]) -> Runs:
    """One setting's runs on a shared test set: an example is right when ability + its difficulty + the run's own
    noise is above 0, so runs share which examples are hard (the test-set term) and differ by seed."""
    predictions, f1 = {}, {}
    for seed, theta in ability.items():
        right = theta + item + rng.normal(0, 1, len(labels)) > 0
        predictions[seed] = np.where(right, labels, 1 - labels)
        f1[seed] = float(weighted_f1_resampled(labels, predictions[seed][None], np.ones((1, len(labels))))[0, 0])
    return Runs(f1, predictions)


def _point(dataset: str, budget: int, settings: dict[tuple[str, float], Runs], labels: np.ndarray) -> AtBudget:
    rows, predictions = [], {}
    for (position, level), runs in settings.items():
        for seed, f1 in runs.f1.items():
            identity = f"{position}{level}-{budget}-{seed}"
            rows.append({"position": position, "level": level, "seed": seed, "f1": f1, "identity": identity,
                         "failed": False})
            predictions[identity] = (labels, runs.predictions[seed])
    return AtBudget(dataset, budget, pd.DataFrame(rows), predictions, DatasetVerdicts(dataset, (), {}))


def _grid(rng: np.random.Generator, gap_per_doubling: float, budgets=(6000, 12000, 24000), seeds=(0, 1, 2),
          n_test: int = 400) -> list[AtBudget]:
    """SST-2-like: a balanced binary test set shared by every run; the corrupted ability is the clean one less a
    gap that moves by ``gap_per_doubling`` (ability units) per doubling; per-(seed, budget) shifts."""
    labels = rng.integers(0, 2, n_test)
    item = rng.normal(0, 1.0, n_test)
    points = []
    for i, budget in enumerate(budgets):
        clean = {s: 1.2 + rng.normal(0, 0.08) for s in seeds}
        corrupted = {s: clean[s] - (0.3 + gap_per_doubling * i) + rng.normal(0, 0.08) for s in seeds}
        points.append(_point("sst2", budget, {("none", 0.0): _runs(rng, labels, item, clean),
                                              ("bottom", 50.0): _runs(rng, labels, item, corrupted)}, labels))
    return points


def test_a_paired_difference_is_the_contrast_plus_one_minus_one():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    item = rng.normal(0, 1, 300)
    low, high = _runs(rng, labels, item, {0: 0.5, 1: 0.6, 2: 0.4}), _runs(rng, labels, item, {0: 1, 1: 1.1, 2: 0.9})
    pair = paired_noise(low, high, [0, 1, 2], 300, labels, FAST, None)
    contrast = contrast_noise([(1.0, high), (-1.0, low)], [0, 1, 2], labels, FAST)
    assert (contrast.se, contrast.seed_var, contrast.test_var, contrast.df) == pytest.approx(
        (pair.se, pair.seed_var, pair.test_var, pair.df))
    assert math.isnan(contrast_noise([(1.0, Runs({0: 1.0, 1: 2.0}))], [0, 1], labels, FAST).se)  # no predictions


def test_the_line_is_least_squares_through_the_mean_gaps_and_read_at_the_papers_budget():
    points = _grid(np.random.default_rng(1), -0.2)
    [trend] = trends(points, FAST)
    x = np.log2([6000, 12000, 24000])
    gaps = [np.mean([p.runs("none", 0.0).f1[s] - p.runs("bottom", 50.0).f1[s] for s in (0, 1, 2)]) for p in points]
    slope, intercept = np.polyfit(x, gaps, 1)
    assert trend.slope == pytest.approx(slope) and trend.seeds == 3 and trend.setting == "bottom 50%"
    assert trend.paper_budget == paper_budget("sst2") == 560_000  # Table 1's 56k x 10 epochs
    assert trend.at_paper == pytest.approx(intercept + slope * math.log2(560_000))
    assert trend.doublings_beyond == pytest.approx(math.log2(560_000 / 24000))
    assert trend.slope_low < trend.slope < trend.slope_high and trend.at_paper_low < trend.at_paper < trend.at_paper_high
    # the extrapolation's interval is wider than the slope's: it is read 4.5 doublings past the data
    assert trend.at_paper_high - trend.at_paper_low > trend.slope_high - trend.slope_low


def test_a_budget_scored_on_another_test_set_is_refused():
    points = _grid(np.random.default_rng(2), 0.0)
    other = points[-1]
    moved = {k: (1 - labels, p) for k, (labels, p) in other.predictions.items()}
    with pytest.raises(Exception, match="different test sets"):
        trends(points[:-1] + [AtBudget(other.dataset, other.budget, other.frame, moved, other.verdicts)], FAST)


@pytest.mark.parametrize("gap_per_doubling, expected", [(0.0, "null"), (-0.25, "alternative")])
def test_the_shrink_test_errs_within_alpha_and_has_power(gap_per_doubling, expected):
    """Simulated grids whose truth we built (a shared test set, paired seeds, per-run noise): with no change of the
    gap along the budget, "the gap shrinks" is SUPPORTED (and "grows" CONTRADICTS it) at most alpha + 2 MC SE of
    the time; with the gap shrinking ~2 F1 per doubling it is found in most grids."""
    rng = np.random.default_rng(3 if expected == "null" else 4)
    grids = 200
    found = [trends(_grid(rng, gap_per_doubling), FAST)[0].slope_verdict for _ in range(grids)]
    supported = sum(v is Verdict.SUPPORTED for v in found) / grids
    contradicted = sum(v is Verdict.CONTRADICTED for v in found) / grids
    bound = DEFAULT_RULE.alpha + 2 * math.sqrt(DEFAULT_RULE.alpha * (1 - DEFAULT_RULE.alpha) / grids)
    print(f"{expected}: SUPPORTED {supported:.3f}, CONTRADICTED {contradicted:.3f} (bound {bound:.3f})")
    if expected == "null":
        assert supported <= bound and contradicted <= bound
    else:
        assert supported >= 0.5 and contradicted <= bound


def test_the_clean_model_is_still_rising_or_flat_by_the_test():
    rng = np.random.default_rng(5)
    labels, item = rng.integers(0, 2, 1000), rng.normal(0, 1, 1000)
    flat = [_point("sst2", b, {("none", 0.0): _runs(rng, labels, item, {s: 1.5 for s in (0, 1, 2)})}, labels)
            for b in (6000, 12000)]
    rising = [_point("sst2", b, {("none", 0.0): _runs(rng, labels, item, {s: t for s in (0, 1, 2)})}, labels)
              for b, t in ((6000, 0.3), (12000, 1.5))]
    [still] = rises(rising, FAST)
    assert still.state == "still rising" and still.rise > 5 and still.low > 0
    [level] = rises(flat, FAST)
    assert level.state != "still rising" and abs(level.rise) < 1.5


def test_interval_uses_t_on_the_df_and_the_normal_without():
    assert interval(1.0, 1.0, 2) == pytest.approx((1 - 2.919986, 1 + 2.919986), rel=1e-5)
    assert interval(0.0, 1.0, math.inf) == pytest.approx((-1.644854, 1.644854), rel=1e-5)
    assert all(math.isnan(v) for v in interval(1.0, math.nan, 2))


def test_the_section_on_the_kept_records_says_what_it_rests_on(tmp_path):
    cells = budget_cells(RECORDS / "budget")
    lrs = lr_table(cells)
    sst2 = lrs[(lrs["dataset"] == "sst2") & (lrs["budget"] == 6000)].set_index("setting")
    # the design's reading of the SST-2 scan (params.yaml): clean 1e-4, the corrupted settings 2e-4
    assert sst2.loc["clean", "chosen lr"] == 1e-4
    assert {sst2.loc[s, "chosen lr"] for s in ("bottom 50%", "top 50%", "100%")} == {2e-4}
    text = budget_section(RECORDS, params=Path(__file__).resolve().parents[1] / "params.yaml", plots_dir=tmp_path)
    assert (tmp_path / "budget_gaps.png").stat().st_size > 10_000
    assert "## Healing or under-training?" in text and "slope per doubling" in text and "SST-2" in text
    assert "Intervals are 90%" in text


def test_each_claim_is_read_at_each_datasets_largest_tested_budget():
    table = pd.DataFrame({"dataset": ["sst2", "sst2", "sst2", "ag_news"], "budget": [6000, 24000, 96000, 6000],
                          "no-complete-recovery": ["INCONCLUSIVE (2/0/1)", "SUPPORTED (3/0/0)", "–",
                                                   "INCONCLUSIVE (1/0/2)"],
                          "bottom-worse-than-top": ["–", "–", "–", "–"]})
    assert at_largest(table, ["no-complete-recovery", "bottom-worse-than-top"]) == [
        "no-complete-recovery: SUPPORTED on SST-2 (24,000), INCONCLUSIVE on AG News (6,000)"]


def test_a_chosen_lr_at_the_edge_of_its_scan_is_named():
    lrs = lr_table(budget_cells(RECORDS / "budget"))
    assert set(lrs["at the edge"]) <= {"", "smallest", "largest"}
    sst2_clean = lrs[(lrs["dataset"] == "sst2") & (lrs["setting"] == "clean")].iloc[0]
    assert sst2_clean["chosen lr"] == 1e-4 and sst2_clean["at the edge"] == ""  # inside 5e-5 .. 2e-4
    sentence = edge_sentence(lrs)
    assert all(f"{s} (largest)" in sentence for s in lrs.loc[lrs["at the edge"] == "largest", "setting"])
    assert edge_sentence(lrs.assign(**{"at the edge": ""})) == " Every chosen lr lies inside its scan."
