"""Healing or under-training? The replication's settings along the fine-tuning budget (profile ``budget``).

The budget is example-passes: training examples x epochs. At each (dataset, budget) the records are read the
replication's way (``harness.verdict.sources.results_frame``: test F1 at the epoch of best validation F1, each
setting at the lr its seeds' validation mean chose, failed runs left out) and judged by the same engine, claims
1-3 per dataset (``harness.verdict.replication.per_dataset``): one judgement per (dataset, budget).

Along the budget, per dataset and corrupted setting, the recovery gap (clean F1 minus the setting's, paired by
seed) is a straight line in log2(budget), fitted by least squares to the per-seed gaps. Its slope (F1 points per
doubling) and its value at the paper's budget (Table 1's training set x the paper's 10 epochs) are each a linear
contrast of the runs, so their noise is the engine's (``decision.contrast_noise``: seeds on k - 1 df plus the
test-set part the seeds share, every budget scored on the same test set). The interval covers that noise only:
the line itself is an assumption, and an extrapolation says how many doublings it reaches past the data.

Convergence is read on the clean model between consecutive budgets: "still rising" when the larger budget
scores higher (one-sided test at 0), "flat" when the rise is shown below the equivalence margin, undecided
otherwise. A flat last epoch under linear decay says little (its lr is near 0), so epochs are not read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from harness.errors import BadResults
from harness.grid.aggregate import choose_lr
from harness.method.data import dataset_spec
from harness.verdict.claims import Prediction, recovery_margin, stratum_label
from harness.verdict.decision import DEFAULT_RULE, DecisionRule, Runs, Verdict, contrast_noise, decide
from harness.verdict.replication import DatasetVerdicts, dataset_name, per_dataset
from harness.verdict.sources import kept_cells, load_predictions, results_frame

PROFILE = "budget"
PAPER_EPOCHS = 10  # Section 4: "training over 10 epochs for each dataset"
GLUE_TRAIN = {"rte": 2490, "mrpc": 3668}  # the pair tasks are not in Table 1: the paper trained on GLUE's train
# The intervals shown are the ones the verdicts use: the ends of the 1 - 2 alpha interval are the rule's one-sided
# tests at alpha, so an interval clear of a boundary is a decided test (harness.verdict.decision).
LEVEL = 1 - 2 * DEFAULT_RULE.alpha


def paper_budget(dataset: str) -> int:
    """The paper's example-passes on ``dataset``: Table 1's training set (GLUE's for the pair tasks) x 10 epochs."""
    train = dataset_spec(dataset).paper_train or GLUE_TRAIN.get(dataset)
    if train is None:
        raise BadResults(f"no paper training size for {dataset!r}")
    return int(train) * PAPER_EPOCHS


def budget_cells(folder: str | Path) -> pd.DataFrame:
    """The kept records of ``folder`` (this METHOD_VERSION's) with their budget, ``n_train x epochs``."""
    cells, _ = kept_cells(folder)
    return cells.assign(budget=(cells["n_train"] * cells["epochs"]).astype(int))


# ---------------------------------------------------------------- the lr per setting


def lr_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Where a setting ran at several lrs (each dataset's scan budget): the seeds' mean validation F1 per lr, the
    lr chosen (``choose_lr``, protocol ``selected``), whether it differs from the clean model's, and whether it is
    the smallest or largest lr scanned (``at the edge``: the best lr may then lie outside the scan)."""
    rows = []
    for (dataset, budget), part in cells.groupby(["dataset", "budget"], sort=False):
        scanned = part.groupby(["position", "level"])["lr"].transform("nunique") > 1
        if not scanned.any():
            continue
        part = part[scanned]
        chosen = choose_lr(part, "selected").drop_duplicates(["position", "level"]).set_index(["position", "level"])
        means = part.groupby(["position", "level", "lr"])["selected_val_f1"].agg(["mean", "count"])
        clean_lr = chosen["lr"].get(("none", 0.0), math.nan)  # NaN: the clean model not scanned (never "same")
        for (position, level), lr in chosen["lr"].items():
            row = {"dataset": dataset, "budget": int(budget), "setting": stratum_label((position, float(level)))}
            row.update({f"val F1 at {x:g}": float(means.loc[(position, level, x), "mean"])
                        for x in sorted(part["lr"].unique()) if (position, level, x) in means.index})
            scan = sorted(part.loc[(part["position"] == position) & (part["level"] == level), "lr"].unique())
            edge = "largest" if lr == scan[-1] else "smallest" if lr == scan[0] else ""
            rows.append({**row, "chosen lr": float(lr), "same as clean": bool(lr == clean_lr), "at the edge": edge})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- one judgement per (dataset, budget)


@dataclass(frozen=True)
class AtBudget:
    """One dataset at one budget, read and judged the replication's way."""

    dataset: str
    budget: int
    frame: pd.DataFrame  # the tidy frame (harness.verdict.sources): one row per setting and seed
    predictions: Mapping[str, Prediction]
    verdicts: DatasetVerdicts

    def runs(self, position: str, level: float) -> Runs:
        """One setting's runs that trained (failed runs are their own outcome), with their test predictions."""
        rows = self.frame[(self.frame["position"] == position) & (self.frame["level"] == level)
                          & ~self.frame["failed"].astype(bool)]
        predicted = {int(s): self.predictions[i][1] for s, i in zip(rows["seed"], rows["identity"])
                     if i in self.predictions}
        return Runs(dict(zip(rows["seed"].astype(int), rows["f1"].astype(float))), predicted or None)

    @property
    def labels(self) -> np.ndarray | None:
        return next((labels for labels, _ in self.predictions.values()), None)


def at_budgets(cells: pd.DataFrame, folder: str | Path, rule: DecisionRule = DEFAULT_RULE) -> list[AtBudget]:
    """Every (dataset, budget) of ``cells``, in the records' dataset order and rising budget."""
    found = []
    for dataset in dict.fromkeys(cells["dataset"]):
        mine = cells[cells["dataset"] == dataset]
        for budget in sorted(mine["budget"].unique()):
            frame = results_frame(mine[mine["budget"] == budget], "selected", f"{folder} ({dataset}, {budget})")
            predictions = load_predictions(frame, folder)
            [verdicts] = per_dataset(frame, "results", rule, predictions=predictions)
            found.append(AtBudget(str(dataset), int(budget), frame, predictions, verdicts))
    return found


# ---------------------------------------------------------------- the clean model along the budget


@dataclass(frozen=True)
class Rise:
    """The clean model from one budget to the next: is it still learning?"""

    dataset: str
    smaller: int
    larger: int
    f1_smaller: float
    f1_larger: float
    rise: float
    low: float
    high: float
    state: str  # "still rising" | "flat (rise below the margin)" | "undecided"


def rises(points: Sequence[AtBudget], rule: DecisionRule = DEFAULT_RULE) -> list[Rise]:
    """Per dataset, the clean model's test F1 between each pair of consecutive budgets."""
    found = []
    for before, after in pairwise(points):
        if before.dataset != after.dataset:
            continue
        low, high = before.runs("none", 0.0), after.runs("none", 0.0)
        if not low.f1 or not high.f1:
            continue
        labels = after.labels
        up = decide(low, high, math.inf if labels is None else len(labels), rule, labels=labels)
        within = decide(low, high, math.inf if labels is None else len(labels), rule,
                        boundary=recovery_margin(), labels=labels)
        state = ("still rising" if up.verdict is Verdict.SUPPORTED else
                 f"flat (rise below +{recovery_margin():g})" if within.verdict is Verdict.CONTRADICTED
                 else "undecided")
        lo, hi = interval(up.values["difference"], up.values.get("se", math.nan), up.values.get("df", math.inf))
        found.append(Rise(before.dataset, before.budget, after.budget, up.values["low"], up.values["high"],
                          up.values["difference"], lo, hi, state))
    return found


# ---------------------------------------------------------------- the gap along the budget


@dataclass(frozen=True)
class Trend:
    """One corrupted setting's recovery gap on one dataset against log2(budget): a line through the per-seed gaps."""

    dataset: str
    setting: str
    budgets: tuple[int, ...]
    seeds: int
    slope: float  # F1 points per doubling of the budget; negative: the gap shrinks
    slope_low: float
    slope_high: float
    slope_verdict: Verdict  # the prediction "the gap shrinks": SUPPORTED when the slope is below 0
    paper_budget: int
    at_paper: float  # the line's gap at the paper's budget
    at_paper_low: float
    at_paper_high: float
    doublings_beyond: float  # how far past the largest measured budget the line is read

    @property
    def closes_by(self) -> float:
        """The budget where the line reaches a zero gap (NaN where it does not shrink)."""
        if not self.slope < 0:
            return math.nan
        intercept = self.at_paper - self.slope * math.log2(self.paper_budget)  # the line's gap at log2(budget) = 0
        return float(2 ** (-intercept / self.slope))


def interval(estimate: float, se: float, df: float, level: float = LEVEL) -> tuple[float, float]:
    if not math.isfinite(se):
        return math.nan, math.nan
    half = (stats.norm if math.isinf(df) else stats.t(df)).ppf(0.5 + level / 2) * se
    return estimate - half, estimate + half


def _contrast(coefficients: np.ndarray, clean: Sequence[Runs], corrupted: Sequence[Runs], seeds: list[int],
              labels: np.ndarray | None, rule: DecisionRule) -> tuple[float, float, float, float]:
    """sum_b c_b (clean_b - corrupted_b), seed-averaged: estimate, SE, df and the one-sided p of "below 0"."""
    terms = [(float(c), runs) for c, runs in zip(coefficients, clean)] + \
            [(-float(c), runs) for c, runs in zip(coefficients, corrupted)]
    estimate = float(np.mean([sum(c * r.f1[s] for c, r in terms) for s in seeds]))
    noise = contrast_noise(terms, seeds, labels, rule)
    if not math.isfinite(noise.se) or noise.se == 0:
        return estimate, noise.se, noise.df, math.nan
    dist = stats.norm if math.isinf(noise.df) else stats.t(noise.df)
    return estimate, noise.se, noise.df, float(dist.cdf(estimate / noise.se))


def trends(points: Sequence[AtBudget], rule: DecisionRule = DEFAULT_RULE) -> list[Trend]:
    """Per dataset and corrupted setting run at >= 2 budgets: the gap's slope per doubling and its value at the
    paper's budget, each with its interval. Seeds that trained at every budget, on both sides, only."""
    found = []
    for dataset in dict.fromkeys(p.dataset for p in points):
        mine = [p for p in points if p.dataset == dataset]
        settings = dict.fromkeys((str(r.position), float(r.level)) for p in mine for r in p.frame.itertuples()
                                 if r.position != "none")
        labels = next((p.labels for p in mine if p.labels is not None), None)
        if labels is not None and any(p.labels is not None and not np.array_equal(p.labels, labels) for p in mine):
            raise BadResults(f"{dataset}: the budgets' records were scored on different test sets")
        for setting in settings:
            along = [(p.budget, p.runs("none", 0.0), p.runs(*setting)) for p in mine]
            along = [(b, c, r) for b, c, r in along if c.f1 and r.f1]
            seeds = sorted(set.intersection(*(set(c.f1) & set(r.f1) for _, c, r in along))) if along else []
            if len(along) < 2 or len(seeds) < 2:
                continue
            budgets = tuple(b for b, _, _ in along)
            x = np.log2(np.array(budgets, dtype=float))
            centred = x - x.mean()
            slope_c = centred / np.sum(centred ** 2)
            target = math.log2(paper_budget(dataset))
            at_paper_c = 1 / len(x) + (target - x.mean()) * slope_c
            clean = [c for _, c, _ in along]
            corrupted = [r for _, _, r in along]
            slope, slope_se, slope_df, p_shrinks = _contrast(slope_c, clean, corrupted, seeds, labels, rule)
            gap, gap_se, gap_df, _ = _contrast(at_paper_c, clean, corrupted, seeds, labels, rule)
            p_grows = 1 - p_shrinks if math.isfinite(p_shrinks) else math.nan
            verdict = rule.verdict_of(p_shrinks, p_grows) if math.isfinite(p_shrinks) else Verdict.INCONCLUSIVE
            found.append(Trend(dataset, stratum_label(setting), budgets, len(seeds), slope,
                               *interval(slope, slope_se, slope_df), verdict, paper_budget(dataset), gap,
                               *interval(gap, gap_se, gap_df), float(target - x.max())))
    return found


def gap_points(points: Sequence[AtBudget], claim: str) -> pd.DataFrame:
    """Claim 1's gap per dataset, setting and budget, numeric, from each (dataset, budget)'s own judgement."""
    rows = []
    for p in points:
        for c in p.verdicts.comparisons:
            if c.claim != claim or "difference" not in c.values:
                continue
            gap = float(c.values["difference"])
            low, high = interval(gap, float(c.values.get("se", math.nan)), float(c.values.get("df", math.inf)))
            rows.append({"dataset": dataset_name(p.dataset), "setting": c.stratum, "budget": p.budget, "gap": gap,
                         "low": low, "high": high, "verdict": str(c.verdict), "outcome": c.outcome or "–"})
    return pd.DataFrame(rows, columns=["dataset", "setting", "budget", "gap", "low", "high", "verdict", "outcome"])


def trend_lines(found: Sequence[Trend]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": dataset_name(t.dataset), "setting": t.setting, "slope": t.slope,
                          "at_paper": t.at_paper, "paper_budget": t.paper_budget} for t in found],
                        columns=["dataset", "setting", "slope", "at_paper", "paper_budget"])


# ---------------------------------------------------------------- does a verdict change with the budget?


def verdicts_by_budget(points: Sequence[AtBudget], claims: Sequence[str]) -> pd.DataFrame:
    """One row per (dataset, budget): each claim's verdict on that dataset at that budget, with its counts."""
    rows = []
    for p in points:
        row = {"dataset": p.dataset, "budget": p.budget}
        for claim in claims:
            v = p.verdicts.verdicts.get(claim)
            row[claim] = (f"{v.verdict} ({v.supported}/{v.contradicted}/{v.inconclusive})"
                          if v is not None and p.verdicts.tested(claim) else "–")
        rows.append(row)
    return pd.DataFrame(rows, columns=["dataset", "budget", *claims])


def changes(table: pd.DataFrame, claims: Sequence[str]) -> list[str]:
    """Per dataset and claim tested at >= 2 budgets: the budgets where its verdict differs from the smallest's."""
    lines = []
    for dataset, part in table.groupby("dataset", sort=False):
        for claim in claims:
            tested = part[part[claim] != "–"]
            words = [str(v).split(" (")[0] for v in tested[claim]]
            if len(words) >= 2 and len(set(words)) > 1:
                steps = ", ".join(f"{w} at {b:,}" for w, b in zip(words, tested["budget"]))
                lines.append(f"{dataset_name(str(dataset))}, {claim}: {steps}")
    return lines


def at_largest(table: pd.DataFrame, claims: Sequence[str]) -> list[str]:
    """Per claim: its verdict on each dataset at the largest budget where that dataset tested it (the question the
    budget axis asks: does the claim still hold with the most fine-tuning we gave it?)."""
    lines = []
    for claim in claims:
        tested = table[table[claim] != "–"]
        if tested.empty:
            continue
        largest = tested.loc[tested.groupby("dataset", sort=False)["budget"].idxmax()]
        words = [f"{str(v).split(' (')[0]} on {dataset_name(str(d))} ({b:,})"
                 for d, b, v in zip(largest["dataset"], largest["budget"], largest[claim])]
        lines.append(f"{claim}: " + ", ".join(words))
    return lines
