"""The healing curve: is "no complete recovery" a property of the model, or of the fine-tuning budget?

The recovery gap of a corrupted setting is clean F1 minus its F1, paired by seed and budget (same data,
same seed: the same examples in the same order). The budget is training examples x epochs. The finding
"the gap shrinks as the budget grows" is tested per corrupted setting the claims' way
(``harness.verdict.decision``): each seed's least-squares slope of the gap against log2(budget) (gap points per
doubling), paired over seeds: SUPPORTED if the slope is significantly below 0, CONTRADICTED if
significantly above, INCONCLUSIVE otherwise. A curve need not be monotone (at a tiny budget the clean
model itself has barely learned), so every step between consecutive budgets is also tested, as claim 2
tests its steps. Beside them, claim 1's test at the largest budget: does the gap close there
(equivalent within the margin), stay open, or is it undecided?

A budget enters the verdicts only where the clean model has learned the task (``LEARNED_SHARE``): below that,
clean and corrupted models alike sit near guessing, and a small gap there says nothing about healing (SST-2's
clean model at 500 example-passes scored 57.1, below both corrupted settings; read as the curve's first point,
it turned "the 100% gap shrinks" into CONTRADICTED). Tables and figures still show every budget.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.verdict.claims import Comparison, recovery_margin, stratum_label
from harness.verdict.decision import DEFAULT_RULE, DecisionRule, Verdict, decide

FINDING = "gap-shrinks-with-budget"
SCORE = "best_test_f1"  # the paper's protocol, as the claims use
# The clean model has learned the task at a budget when its seed-mean F1 has covered at least this share of the way
# from guessing (the majority class's F1 on the test set) to its own best over the budgets.
LEARNED_SHARE = 0.5


def learned_budgets(frame: pd.DataFrame) -> pd.Series:
    """Per budget, whether the clean model has learned the task (``LEARNED_SHARE`` of the way from the majority
    class's F1 to its best seed-mean F1 over the budgets)."""
    usable = frame[frame[SCORE].notna() & (frame["position"] == "none")]
    clean = usable.assign(budget=usable["n_train"] * usable["epochs"]).groupby("budget")[[SCORE, "majority_f1"]].mean()
    guess = clean["majority_f1"]
    return (clean[SCORE] - guess >= LEARNED_SHARE * (clean[SCORE].max() - guess)).rename("learned")


def gaps(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per corrupted setting, budget and seed: ``budget, position, level, seed, n_test, f1, clean_f1, gap,
    learned`` (whether the clean model has learned the task at that budget)."""
    usable = frame[frame[SCORE].notna()].assign(budget=frame["n_train"] * frame["epochs"])
    clean = usable[usable["position"] == "none"].set_index(["budget", "seed"])[SCORE].rename("clean_f1")
    corrupted = usable[usable["position"] != "none"][["budget", "position", "level", "seed", "n_test", SCORE]]
    joined = corrupted.join(clean, on=["budget", "seed"], how="inner").rename(columns={SCORE: "f1"})
    joined = joined.join(learned_budgets(frame), on="budget")
    return joined.assign(gap=joined["clean_f1"] - joined["f1"]).sort_values(["level", "position", "budget", "seed"],
                                                                            kind="stable").reset_index(drop=True)


def gap_table(gap_rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of the gap, per setting and budget, and whether the clean model had learned the task."""
    return (gap_rows.groupby(["position", "level", "budget"], sort=False)
            .agg(mean=("gap", "mean"), std=("gap", "std"), seeds=("gap", "count"), learned=("learned", "all"))
            .reset_index())


def _slope(piece: pd.DataFrame) -> float:
    return float(np.polyfit(np.log2(piece["budget"].to_numpy(float)), piece["gap"].to_numpy(float), 1)[0])


def shrink_findings(gap_rows: pd.DataFrame, rule: DecisionRule = DEFAULT_RULE) -> list[Comparison]:
    """Per corrupted setting: does the gap shrink with the budget, and does it close at the largest one? Only the
    budgets where the clean model has learned the task are judged (``gaps``' ``learned``)."""
    found = []
    for (position, level), piece in gap_rows[gap_rows["learned"]].groupby(["position", "level"], sort=False):
        label = stratum_label((position, float(level)))
        ids = {"table": "healing-curve", "model": "-", "dataset": "-"}
        budgets = sorted(piece["budget"].unique())
        slopes = {int(seed): _slope(part) for seed, part in piece.groupby("seed") if part["budget"].nunique() >= 3}
        if len(slopes) < 2:
            found.append(Comparison(FINDING, {**ids, "comparison": f"{label} slope"}, {}, Verdict.INCONCLUSIVE,
                                    "needs >= 2 seeds with >= 3 budgets each", "results", label))
        else:
            decision = decide(slopes, dict.fromkeys(slopes, 0.0), math.inf, rule, run_sd=None)  # predicts slope < 0
            found.append(Comparison(FINDING, {**ids, "comparison": f"{label} slope"},
                                    {"slope": decision.values["low"], **decision.values}, decision.verdict,
                                    f"gap slope {decision.values['low']:+.2f} F1 per doubling of the budget "
                                    f"({budgets[0]:g} to {budgets[-1]:g} example-passes): {decision.detail}",
                                    "results", label, mdd=decision.mdd))
        for smaller, larger in zip(budgets, budgets[1:]):  # each step along the curve, as claim 2 tests its steps
            before = piece[piece["budget"] == smaller]
            after = piece[piece["budget"] == larger]
            step = decide(dict(zip(after["seed"], after["gap"])), dict(zip(before["seed"], before["gap"])), math.inf,
                          rule, run_sd=None)  # predicts gap(larger) < gap(smaller)
            found.append(Comparison("gap-shrinks-at-step", {**ids, "comparison": f"{label} {smaller:g}->{larger:g}"},
                                    dict(step.values), step.verdict,
                                    f"gap {step.values.get('high', math.nan):+.2f} at {smaller:g} -> "
                                    f"{step.values.get('low', math.nan):+.2f} at {larger:g}: {step.detail}",
                                    "results", label, mdd=step.mdd))
        largest = piece[piece["budget"] == budgets[-1]]
        closes = decide(dict(zip(largest["seed"], largest["f1"])), dict(zip(largest["seed"], largest["clean_f1"])),
                        float(largest["n_test"].min()), rule, boundary=recovery_margin())
        found.append(Comparison("gap-at-largest-budget", {**ids, "comparison": f"{label} at {budgets[-1]:g}"},
                                dict(closes.values), closes.verdict,
                                f"at the largest budget ({budgets[-1]:g}): {closes.detail}", "results", label,
                                mdd=closes.mdd))
    return found
