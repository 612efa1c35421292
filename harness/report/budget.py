"""REPORT.md's budget section: healing or under-training? The numbers come from ``harness.beyond.budget``; this
module lays them out and says in words what they decide."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from harness.beyond.budget import (
    LEVEL,
    PROFILE,
    AtBudget,
    Rise,
    Trend,
    at_budgets,
    at_largest,
    budget_cells,
    changes,
    gap_points,
    lr_table,
    rises,
    trend_lines,
    trends,
    verdicts_by_budget,
)
from harness.figures import plot_budget_gaps
from harness.method.config import METHOD_VERSION
from harness.perf.estimate import cost_comparison_text
from harness.report.markdown import markdown_table, provenance
from harness.report.replication import expected_cells, read_json
from harness.verdict.claims import recovery_margin
from harness.verdict.decision import DEFAULT_RULE, DecisionRule
from harness.verdict.replication import ORDERING_CLAIMS, TaskLearned, chance_f1, dataset_name

COST_COMMAND = f"python -m harness estimate --profile {PROFILE} --measured results/records/{PROFILE}"


def _span(estimate: float, low: float, high: float) -> str:
    if not math.isfinite(estimate):
        return "–"
    return f"{estimate:+.2f} [{low:+.2f}, {high:+.2f}]" if math.isfinite(low) else f"{estimate:+.2f} (no test)"


def protocol_table(cells: pd.DataFrame) -> pd.DataFrame:
    """What each (dataset, budget) trained on: examples, epochs, lrs, test size, runs."""
    keys = ["dataset", "budget"]
    table = cells.groupby(keys, sort=False).agg(
        n_train=("n_train", "first"), epochs=("epochs", "first"), n_test=("n_test", "first"),
        settings=("level", "nunique"),
        lrs=("lr", lambda lr: ", ".join(f"{x:g}" for x in sorted(set(lr)))), runs=("seed", "size")).reset_index()
    return (table.sort_values(keys, kind="stable").rename(columns={"settings": "levels"})
            .assign(dataset=lambda f: f["dataset"].map(dataset_name), budget=lambda f: f["budget"].map("{:,}".format)))


def gap_rows(points: list[AtBudget]) -> pd.DataFrame:
    """Claim 1's gap (clean − setting) per dataset, setting and budget, with the engine's verdict and outcome."""
    found = gap_points(points, "no-complete-recovery")
    return pd.DataFrame({"dataset": found["dataset"], "setting": found["setting"],
                         "budget": found["budget"].map("{:,}".format),
                         f"gap [{LEVEL:.0%}]": [_span(g, lo, hi) for g, lo, hi in zip(found["gap"], found["low"],
                                                                                       found["high"])],
                         "verdict": found["verdict"], "outcome": found["outcome"]})


def trend_table(found: list[Trend]) -> pd.DataFrame:
    return pd.DataFrame([{
        "dataset": dataset_name(t.dataset), "setting": t.setting, "budgets": ", ".join(f"{b:,}" for b in t.budgets),
        "seeds": t.seeds, f"slope per doubling [{LEVEL:.0%}]": _span(t.slope, t.slope_low, t.slope_high),
        "gap shrinks": str(t.slope_verdict), "paper's budget": f"{t.paper_budget:,}",
        f"gap there, if the line holds [{LEVEL:.0%}]": _span(t.at_paper, t.at_paper_low, t.at_paper_high),
        "doublings past the data": f"{t.doublings_beyond:.1f}"} for t in found])


def lr_shown(lrs: pd.DataFrame) -> pd.DataFrame:
    scanned = sorted(c for c in lrs.columns if c.startswith("val F1 at "))
    scanned.sort(key=lambda c: float(c.removeprefix("val F1 at ")))
    return lrs.assign(dataset=lrs["dataset"].map(dataset_name), budget=lrs["budget"].map("{:,}".format),
                      **{"chosen lr": lrs["chosen lr"].map("{:g}".format)},
                      **{c: lrs[c].round(2) for c in scanned})[["dataset", "budget", "setting", *scanned, "chosen lr",
                                                                   "same as clean", "at the edge"]]


def rise_table(found: list[Rise]) -> pd.DataFrame:
    return pd.DataFrame([{
        "dataset": dataset_name(r.dataset), "budgets": f"{r.smaller:,} → {r.larger:,}",
        "clean F1": f"{r.f1_smaller:.2f} → {r.f1_larger:.2f}", f"rise [{LEVEL:.0%}]": _span(r.rise, r.low, r.high),
        "the clean model": r.state} for r in found])


def learned_lines(points: list[AtBudget]) -> list[str]:
    """Datasets run with the clean model only (RTE): did it learn the task at all? claims/README.md's rule."""
    lines = []
    for p in points:
        if set(p.frame["position"]) != {"none"} or p.labels is None:
            continue
        learned = TaskLearned(p.dataset, "full", float(p.frame["f1"].mean()), chance_f1(p.labels), len(p.labels),
                              math.nan)
        verdict = ("near chance: within what luck gives a guess on this test set, so it stays out of the pooled "
                   "verdicts (claims/README.md's rule)" if learned.near_chance else "above chance: it learns the task")
        lines.append(f"{dataset_name(p.dataset)} at {p.budget:,} example-passes (clean, {len(p.frame)} seeds): test "
                     f"F1 {learned.clean_f1:.2f} against {learned.chance_f1:.2f} for guessing at the test set's label "
                     f"rates (luck's margin {learned.margin:.2f}): {verdict}.")
    return lines


def converged_at(found: list[Rise]) -> dict[str, int]:
    """Per dataset, the smallest budget after which the clean model is flat at every later step measured."""
    out = {}
    for dataset in dict.fromkeys(r.dataset for r in found):
        steps = [r for r in found if r.dataset == dataset]
        for i, r in enumerate(steps):
            if all(s.state.startswith("flat") for s in steps[i:]):
                out[dataset] = r.smaller
                break
    return out


def edge_sentence(lrs: pd.DataFrame) -> str:
    """Which settings chose the smallest or largest lr scanned: their best lr may lie outside the scan."""
    edge = lrs[lrs["at the edge"] != ""]
    if edge.empty:
        return " Every chosen lr lies inside its scan."
    named = ", ".join(f"{dataset_name(d)} {s} ({e})"
                      for d, s, e in zip(edge["dataset"], edge["setting"], edge["at the edge"]))
    return (f" {len(edge)} of {len(lrs)} choose the smallest or largest lr scanned, so their best lr may lie outside "
            f"the scan: {named}.")


def budget_section(records_dir: str | Path, *, rule: DecisionRule = DEFAULT_RULE, cost: str | Path | None = None,
                   params: str | Path | None = "params.yaml", plots_dir: str | Path = "results/plots") -> str:
    """REPORT.md's section on the fine-tuning budget, from ``<records_dir>/budget``; says plainly when nothing has
    run yet."""
    folder = Path(records_dir) / PROFILE
    parts = ["## Healing or under-training? The claims along the fine-tuning budget", ""]
    cells = budget_cells(folder) if folder.is_dir() else pd.DataFrame()
    if cells.empty:
        return "\n".join(parts + [(f"Not yet run: no records of profile `{PROFILE}` (METHOD_VERSION {METHOD_VERSION}) "
                                  f"in `{folder.as_posix()}`: `python -m harness grid --profile {PROFILE}`."), ""])
    points = at_budgets(cells, folder, rule)
    found, steps = trends(points, rule), rises(points, rule)
    claims = list(ORDERING_CLAIMS)
    by_budget = verdicts_by_budget(points, claims)
    moved = changes(by_budget, claims)
    expected = expected_cells(Path(params) if params is not None else None, PROFILE)
    coverage = (f"{len(cells)} of {expected} cells of the profile{'; PARTIAL: the tables below move as records land' if len(cells) < expected else ''}"
                if expected else f"{len(cells)} cells")
    parts += [(f"From {provenance(cells, folder)} ({coverage}). The replication's settings (MiniLM-L6, "
              "mean pooling, full fine-tuning, 3 paired seeds) along the budget, in example-passes (training examples "
              "× epochs); the paper's is Table 1's training set × 10 epochs. Each (dataset, budget) is read and judged "
              "as the replication is (test F1 at the epoch of best validation F1, each setting at the lr its seeds' "
              f"validation mean chose, failed runs left out). Intervals are {LEVEL:.0%}: their ends are the "
              "one-sided tests the verdicts use."), "", markdown_table(protocol_table(cells)), ""]
    lrs = lr_table(cells)
    if not lrs.empty:
        differs = lrs[~lrs["same as clean"] & (lrs["setting"] != "clean")]
        parts += ["**The lr per setting**, chosen on validation (seeds' mean F1) where a setting ran at several: "
                  + (f"{len(differs)} of {int((lrs['setting'] != 'clean').sum())} corrupted settings choose another lr "
                     f"than their clean model ({', '.join(f'{dataset_name(d)} {s}' for d, s in zip(differs['dataset'], differs['setting']))})."
                     if len(differs) else "every corrupted setting chooses its clean model's lr.")
                  + edge_sentence(lrs), "", markdown_table(lr_shown(lrs)), ""]
    if steps:
        converged = converged_at(steps)
        parts += ["**Is the clean model still learning?** Its test F1 from each budget to the next: still rising "
                  f"(the rise is above 0), flat (the rise is shown below +{recovery_margin():g}), or undecided. "
                  + ("Converged: " + ", ".join(f"{dataset_name(d)} from {b:,}" for d, b in converged.items()) + "."
                     if converged else "No dataset's clean model is shown flat at its largest budget yet, so no "
                     "budget here is converged and the replication's pooled verdicts cannot be read at a converged "
                     "one: they stay at the replication's own budget."), "", markdown_table(rise_table(steps)), ""]
    parts += [(f"**Claim 1's gap** (F1(clean) − F1(setting)) at each budget, with the engine's verdict "
              f"(boundary +{recovery_margin():g}):"), "", markdown_table(gap_rows(points)), ""]
    png = Path(plots_dir) / "budget_gaps.png"
    plot_budget_gaps(gap_points(points, "no-complete-recovery"), trend_lines(found), png, recovery_margin(),
                     LEVEL)
    parts += [f"![Claim 1's gap against the budget, each setting's line drawn on to the paper's budget]({png.as_posix()})",
              ""]
    if found:
        parts += [("**The gap against log2(budget)**: a least-squares line through each seed's gaps; slope in F1 "
                  "points per doubling (negative: the gap shrinks), and the line read at the paper's budget. The "
                  "intervals carry the seeds and the shared test set only: the straight line is an assumption, and "
                  "the further past the data it is read, the less its interval means."), "",
                  markdown_table(trend_table(found)), ""]
    parts += ["**Claims 1-3 per dataset and budget** (supported/contradicted/inconclusive comparisons):", "",
              markdown_table(by_budget.assign(dataset=by_budget["dataset"].map(dataset_name),
                                              budget=by_budget["budget"].map("{:,}".format))), "",
              ("A verdict changes with the budget: " + "; ".join(moved) + "." if moved else
               "No verdict changes with the budget on the records so far."), "",
              "**At the largest budget** each dataset reached (example-passes in brackets), claims 1-3 per dataset: "
              + "; ".join(at_largest(by_budget, claims)) + ".", ""]
    parts += [f"* {line}" for line in learned_lines(points)]
    document = read_json(Path(cost), f"run `{COST_COMMAND}` again") if cost is not None else None
    parts += ["", "**What it cost.** " + (cost_comparison_text(document) if document else
                                          f"Not compared here: `{COST_COMMAND}`."), ""]
    return "\n".join(parts)
