"""The replication at the paper's breadth (issue 22): each claim per dataset, and pooled across datasets.

**Per dataset.** Every claim's verdict on one dataset's rows alone (``harness.verdict.claims.evaluate_claims``:
the calibrated rule, Holm over that dataset's votes), and for claims 1-3 each comparison's *gap*, the
difference the claim predicts positive, with its 95% interval ``difference +- t_df(0.975) SE`` from the
rule's noise model (``harness.verdict.decision.decide``: seeds plus the shared test set, the seeds' k − 1 df):

* claim 1: F1(clean) - F1(corrupted) per setting; claim 2: the loss at each step;
* claim 3: F1(top) - F1(bottom) per level (how much more corrupting the bottom layers costs).

**Across datasets, the dataset as the unit.** Per claim and stratum (a setting, a step, a level), a
random-effects meta-analysis of the datasets' gaps (``statsmodels.stats.meta_analysis.combine_effects``):
Paule-Mandel's between-dataset variance, and the Hartung-Knapp interval on k - 1 df with its scale
floored at 1 (``PoolingRule``). Its verdict is the rule's two one-sided tests at the claim's boundary
(+the declared margin for claims 1 and 2, 0 for claim 3) on that t; a claim's pooled verdict is
``harness.verdict.decision.claim_verdict`` over its strata's pooled votes (Holm over contradictions, every
stratum for support).

**The paper beside it.** BERT-base's gap for the same comparison at the same level: Table 3 (mean
pooling, as ours), Table 2 where a dataset is not in Table 3, Table 5 for the pair tasks; with the
one-run noise the rule assumes for the paper's tables. Where they differ is read from the numbers
(``Agreement``): the difference of the two gaps over its SE.

**Did the clean model learn the task?** Per dataset, its clean test F1 beside guessing at the test set's
label rates (``chance_f1``), within what luck gives a guess on that one test set (``TaskLearned``): a
dataset near chance has nothing to heal towards, and its gaps measure noise.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects

from harness.errors import BadInput
from harness.verdict.claims import ORDERING, SPECS, Comparison, Prediction, evaluate_claims, outcome_of
from harness.verdict.convergence import diagnose, under_trained_slices
from harness.verdict.decision import DEFAULT_RULE, ClaimDecision, DecisionRule, Verdict, Vote, claim_verdict
from harness.verdict.run_noise import measured_run_sd, run_sd_for
from harness.verdict.sources import (
    PAPER_TABLES,
    REPLICATION_RECORDS,
    kept_cells,
    load_predictions,
    load_source,
    results_frame,
)
from harness.verdict.verdicts import ClaimVerdict, Judgement, aggregate

PROFILE = "replication"
ORDERING_CLAIMS = tuple(ORDERING)  # claims 1-3: comparisons with a gap
# the forest plots: claim 1 per setting, claim 3 per level
FOREST_CLAIMS = ("no-complete-recovery", "bottom-worse-than-top")
PAPER_MODEL = "base"  # BERT-base: the paper's model at MiniLM-L6's scale of the three
PAPER_TABLE_ORDER = ("T3", "T2", "T5")  # mean pooling as ours; else [CLS] (Table 2; Table 5: the pair tasks)
DATASET_NAMES = {"sst2": "SST-2", "imdb": "IMDB", "ag_news": "AG News", "emotion": "Emotion",
                 "dbpedia_14": "DBpedia", "twitter_financial_news_topic": "TFNT", "mrpc": "MRPC", "rte": "RTE"}


def dataset_name(dataset: str) -> str:
    return DATASET_NAMES.get(dataset, dataset)


@dataclass(frozen=True)
class PoolingRule:
    """How datasets are pooled, each choice with its reason."""

    # Paule-Mandel's between-dataset variance: recommended over DerSimonian-Laird for few studies (Veroniki
    # et al., 2016); statsmodels' DL estimate is not even truncated at 0.
    method_re: str = "iterated"
    # Hartung-Knapp: the pooled SE rescaled by the datasets' observed spread, t on k - 1 df (IntHout et al.,
    # 2014: the normal interval's coverage collapses with few studies). Floored at scale 1 (Roever et al., 2015)
    # so that datasets agreeing by chance never make the interval narrower than their own noise allows.
    scale_floor: float = 1.0
    # Below 3 datasets there is no between-dataset spread worth the name: on 1 df, t(0.975) = 12.7, so a
    # 2-dataset pooled interval says nothing; those strata stay per dataset.
    min_datasets: int = 3
    level: float = 0.95  # the intervals drawn and tabled (two-sided); verdicts use the rule's one-sided alpha


DEFAULT_POOLING = PoolingRule()


def _quantile(level: float, df: float) -> float:
    """The two-sided ``level`` quantile of t on ``df`` (normal where df is infinite)."""
    upper = 0.5 + level / 2
    return float(stats.norm.ppf(upper) if not math.isfinite(df) else stats.t.ppf(upper, df))


# ---------------------------------------------------------------- one dataset's gaps


@dataclass(frozen=True)
class Gap:
    """One comparison on one dataset: the difference its claim predicts positive, with the rule's noise."""

    claim: str
    source: str  # "ours" | "paper"
    table: str
    model: str
    dataset: str
    stratum: str
    comparison: str
    difference: float
    se: float  # NaN where the rule had no test (both scores at the floor)
    df: float
    boundary: float
    verdict: Verdict
    provisional: bool = False

    def interval(self, level: float = DEFAULT_POOLING.level) -> tuple[float, float]:
        if not math.isfinite(self.se):
            return math.nan, math.nan
        half = _quantile(level, self.df) * self.se
        return self.difference - half, self.difference + half

    @property
    def poolable(self) -> bool:
        return math.isfinite(self.difference) and math.isfinite(self.se) and self.se > 0


def gaps_of(comparisons: Sequence[Comparison], source: str) -> list[Gap]:
    """The gaps of claims 1-3's comparisons that the rule could score (a run missing: no gap)."""
    found = []
    for c in comparisons:
        if c.claim not in ORDERING_CLAIMS or "difference" not in c.values:
            continue
        found.append(Gap(c.claim, source, c.ids["table"], c.ids["model"], c.ids["dataset"], c.stratum,
                         c.ids["comparison"], float(c.values["difference"]), float(c.values.get("se", math.nan)),
                         float(c.values.get("df", math.inf)), float(c.values["boundary"]), c.verdict, c.provisional))
    return found


# ---------------------------------------------------------------- per dataset


@dataclass(frozen=True)
class DatasetVerdicts:
    """One dataset judged alone: its comparisons (after Holm over its own votes) and each claim's verdict."""

    dataset: str
    comparisons: tuple[Comparison, ...]
    verdicts: Mapping[str, ClaimVerdict]

    def tested(self, claim: str) -> bool:
        """Whether the dataset had anything to compare for ``claim`` (not just the 'nothing' placeholder)."""
        return any(c.claim == claim and c.ids.get("comparison") != "nothing" for c in self.comparisons)


def per_dataset(frame: pd.DataFrame, source: str, rule: DecisionRule = DEFAULT_RULE,
                under_trained: Collection[tuple] = (), predictions: Mapping[str, Prediction] | None = None,
                run_sd: Mapping[str, float] | None = None) -> list[DatasetVerdicts]:
    """Every dataset of ``frame`` (in its order), judged on its own rows; ``run_sd``: one run's SD per dataset for
    one-run slices (``verdicts.one_run_sd``), as ``judge`` passes it."""
    found = []
    for dataset in dict.fromkeys(frame["dataset"].astype(str)):
        comparisons = evaluate_claims(frame[frame["dataset"].astype(str) == dataset], source, rule, under_trained,
                                      None, predictions, run_sd=run_sd)
        # a finding that pools its frame's datasets names none ("-"); here the frame is this one dataset
        comparisons = [c if c.ids.get("dataset", "-") != "-" else replace(c, ids={**c.ids, "dataset": dataset})
                       for c in comparisons]
        found.append(DatasetVerdicts(dataset, tuple(comparisons), aggregate(comparisons, rule)))
    return found


def paper_rows(paper: pd.DataFrame, datasets: Sequence[str]) -> pd.DataFrame:
    """BERT-base's rows of the paper's tidy frame, per dataset from the first table of ``PAPER_TABLE_ORDER``
    that has it (mean pooling where the paper ran it)."""
    base = paper[paper["model"] == PAPER_MODEL]
    chosen = []
    for dataset in datasets:
        mine = base[base["dataset"] == dataset]
        table = next((t for t in PAPER_TABLE_ORDER if (mine["table"] == t).any()), None)
        if table is not None:
            chosen.append(mine[mine["table"] == table])
    return pd.concat(chosen, ignore_index=True) if chosen else base.iloc[:0]


# ---------------------------------------------------------------- did the clean model learn the task?


def chance_f1(labels: np.ndarray) -> float:
    """The weighted F1 (percent) that guessing each label at the test set's own rates scores in expectation:
    each class's precision and recall are then its share p_k, so its F1 is p_k and the weighted F1 is Σ p_k²."""
    shares = np.bincount(np.asarray(labels)) / len(labels)
    return float(100 * np.sum(shares ** 2))


@dataclass(frozen=True)
class TaskLearned:
    """Does a dataset's clean model score above guessing? Where it doesn't, every setting sits near chance and
    the gaps between settings measure noise around chance, not healing."""

    dataset: str
    mode: str
    clean_f1: float  # ours: the seeds' mean test F1 (the protocol's epoch and lr)
    chance_f1: float
    n_test: int
    paper_clean_f1: float  # BERT-base's clean F1 on full fine-tuning (NaN where the paper has none)
    z: float = 1.96  # two-sided 95%

    @property
    def margin(self) -> float:
        """What the one shared test set lets a guess score by luck: z binomial standard errors at chance (the
        seeds share the test set, so averaging them does not shrink it)."""
        share = self.chance_f1 / 100
        return float(self.z * 100 * math.sqrt(share * (1 - share) / self.n_test))

    @property
    def near_chance(self) -> bool:
        return self.clean_f1 - self.chance_f1 <= self.margin

    @property
    def paper_near_chance(self) -> bool:
        return math.isfinite(self.paper_clean_f1) and self.paper_clean_f1 - self.chance_f1 <= self.margin


def task_learned(frame: pd.DataFrame, predictions: Mapping[str, Prediction], partners: pd.DataFrame
                 ) -> list[TaskLearned]:
    """Per (dataset, mode) of our frame: the clean model's test F1 beside guessing's on the same test set, and
    beside the clean F1 of ``partners``, the paper's rows that partner ours (``paper_rows``)."""
    paper_clean = partners[partners["position"] == "none"].groupby("dataset")["f1"].first()
    found = []
    for (dataset, mode), part in frame.groupby(["dataset", "mode"], sort=False):
        clean = part[part["position"] == "none"]
        identities = part["identity"] if "identity" in part.columns else []
        labels = next((predictions[i][0] for i in identities if i in predictions), None)
        if clean.empty or labels is None:
            continue
        found.append(TaskLearned(str(dataset), str(mode), float(clean["f1"].mean()), chance_f1(labels), len(labels),
                                 float(paper_clean.get(dataset, math.nan)) if mode == "full" else math.nan))
    return found


# ---------------------------------------------------------------- across datasets


@dataclass(frozen=True)
class Pooled:
    """A random-effects pooled gap over datasets, for one claim, stratum and source."""

    claim: str
    source: str
    model: str
    stratum: str
    datasets: tuple[str, ...]
    estimate: float
    se: float  # Hartung-Knapp, scale floored
    df: int  # k - 1
    tau: float  # between-dataset SD of the true gaps
    i2: float  # share of the spread that is between datasets, not noise
    boundary: float
    p_support: float  # the claim's quantifier: every dataset (intersection-union) or the mean
    p_contradict: float
    verdict: Verdict
    quantifier: str = "average"
    mean_p_support: float = math.nan  # the random-effects mean's test ("on average"), shown beside
    mean_p_contradict: float = math.nan
    mean_verdict: Verdict = Verdict.INCONCLUSIVE
    mean_outcome: str = ""  # the mean against the claim's two boundaries, in fixed order (claims.outcome_of)

    def interval(self, level: float = DEFAULT_POOLING.level) -> tuple[float, float]:
        half = _quantile(level, self.df) * self.se
        return self.estimate - half, self.estimate + half


def pool_gaps(gaps: Sequence[Gap], rule: DecisionRule = DEFAULT_RULE, pooling: PoolingRule = DEFAULT_POOLING
              ) -> Pooled:
    """One stratum's gaps (one per dataset) pooled by random effects, with the rule's verdict at their boundary."""
    effect = np.array([g.difference for g in gaps], dtype=float)
    variance = np.array([g.se ** 2 for g in gaps], dtype=float)
    combined = combine_effects(effect, variance, method_re=pooling.method_re, use_t=True)
    df = len(gaps) - 1
    se = float(combined.sd_eff_w_re * math.sqrt(max(pooling.scale_floor, float(combined.scale_hksj_re))))
    estimate, boundary = float(combined.mean_effect_re), gaps[0].boundary
    t = (estimate - boundary) / se if se > 0 else math.copysign(math.inf, estimate - boundary)
    mean_support, mean_contradict = float(stats.t.sf(t, df)), float(stats.t.cdf(t, df))
    first = gaps[0]
    quantifier = claim_quantifier(first.claim)
    if quantifier == "every":
        # "never", "is worse": every dataset's own gap must clear the boundary (intersection-union: the largest of
        # their p-values), and one dataset shown on the other side refutes it (Bonferroni over the datasets)
        one = [_gap_p_values(g) for g in gaps]
        p_support = max(p for p, _ in one)
        p_contradict = min(1.0, len(one) * min(p for _, p in one))
    else:
        p_support, p_contradict = mean_support, mean_contradict
    return Pooled(first.claim, first.source, first.model, first.stratum, tuple(g.dataset for g in gaps), estimate, se,
                  df, math.sqrt(max(float(combined.tau2), 0.0)), max(float(combined.i2), 0.0), boundary, p_support,
                  p_contradict, rule.verdict_of(p_support, p_contradict), quantifier, mean_support, mean_contradict,
                  rule.verdict_of(mean_support, mean_contradict), _mean_outcome(first.claim, estimate, se, df, rule))


def _mean_outcome(claim: str, estimate: float, se: float, df: int, rule: DecisionRule) -> str:
    """The pooled mean against every boundary its claim declares (and -margin, the equivalence side), as a
    comparison's outcome is read (``claims.outcome_of``)."""
    spec = next((s for s in SPECS if s.name == claim), None)
    if spec is None or se <= 0:
        return ""
    values = {b.value for b in spec.boundaries} | {-b.value for b in spec.boundaries[1:]}
    t = {b: (estimate - b) / se for b in values}
    return outcome_of(spec, {b: float(stats.t.sf(v, df)) for b, v in t.items()},
                      {b: float(stats.t.cdf(v, df)) for b, v in t.items()}, rule.alpha)


def _gap_p_values(gap: Gap) -> tuple[float, float]:
    """One dataset's one-sided p-values of its gap above and below its boundary (its own SE and df)."""
    t = (gap.difference - gap.boundary) / gap.se
    distribution, shape = (stats.norm, ()) if math.isinf(gap.df) else (stats.t, (gap.df,))
    return float(distribution.sf(t, *shape)), float(distribution.cdf(t, *shape))


def claim_quantifier(claim: str) -> str:
    """The declared quantifier of ``claim`` (claims/claims.yaml); a claim not declared reads "average"."""
    return next((spec.quantifier for spec in SPECS if spec.name == claim), "average")


def strata_in_order(gaps: Sequence[Gap], claim: str) -> list[str]:
    """A claim's strata in reading order: that of the dataset with the most of them (clean, bottom 33%, top 33%,
    ...), then any others."""
    by_dataset: dict[str, list[str]] = {}
    for g in gaps:
        if g.claim == claim:
            by_dataset.setdefault(g.dataset, []).append(g.stratum)
    ordered = max(by_dataset.values(), key=len, default=[])
    return list(dict.fromkeys(ordered + [s for strata in by_dataset.values() for s in strata]))


def pool(gaps: Sequence[Gap], rule: DecisionRule = DEFAULT_RULE, pooling: PoolingRule = DEFAULT_POOLING
         ) -> list[Pooled]:
    """Every (claim, source, model, stratum) with at least ``pooling.min_datasets`` scored datasets, pooled: the
    dataset is the unit, so each dataset brings one gap (the paper's from whichever table has it)."""
    groups: dict[tuple, list[Gap]] = {}
    for g in gaps:
        if g.poolable:
            groups.setdefault((g.claim, g.source, g.model, g.stratum), []).append(g)
    for key, group in groups.items():
        repeated = sorted({g.dataset for g in group if sum(h.dataset == g.dataset for h in group) > 1})
        if repeated:  # two poolings (tables) of one dataset are not two datasets
            raise BadInput(f"pooling {'/'.join(key)}: datasets {repeated} have a gap in more than one table "
                           f"({sorted({g.table for g in group})}); pool one table (pooling) at a time")
    return [pool_gaps(group, rule, pooling) for group in groups.values() if len(group) >= pooling.min_datasets]


def pooled_claim(pooled: Sequence[Pooled], claim: str, source: str, rule: DecisionRule = DEFAULT_RULE,
                 reading: str = "quantifier") -> ClaimDecision | None:
    """A claim's verdict across datasets: its pooled strata as votes (``claim_verdict``), each as the claim's
    quantifier reads it (``reading="quantifier"``) or on the random-effects mean (``"mean"``); None if none pooled."""
    mean = reading == "mean"
    votes = [Vote(p.stratum, f"pooled/{p.model}/{p.stratum}", p.mean_verdict if mean else p.verdict,
                  p.mean_p_support if mean else p.p_support, p.mean_p_contradict if mean else p.p_contradict)
             for p in pooled if p.claim == claim and p.source == source]
    return claim_verdict(votes, rule) if votes else None


# ---------------------------------------------------------------- ours against the paper's


@dataclass(frozen=True)
class Agreement:
    """Our gap and the paper's for the same comparison: their difference over its SE (the seeds' k − 1 df)."""

    ours: Gap
    paper: Gap
    z: float
    df: float
    reading: str  # "consistent" | "smaller here" | "larger here" | "untested"


def agreement(ours: Gap, paper: Gap, level: float = DEFAULT_POOLING.level) -> Agreement:
    if not (ours.poolable and paper.poolable):
        return Agreement(ours, paper, math.nan, math.nan, "untested")
    variance = ours.se ** 2 + paper.se ** 2
    parts = [(ours.se ** 2, ours.df), (paper.se ** 2, paper.df)]
    finite = sum(v ** 2 / d for v, d in parts if math.isfinite(d) and d > 0)
    df = variance ** 2 / finite if finite else math.inf
    z = (ours.difference - paper.difference) / math.sqrt(variance)
    reading = ("consistent" if abs(z) <= _quantile(level, df) else "larger here" if z > 0 else "smaller here")
    return Agreement(ours, paper, z, df, reading)


def agreements(ours: Sequence[Gap], paper: Sequence[Gap]) -> list[Agreement]:
    """Every comparison both ran (same claim, dataset and stratum: the paper's levels are 25/50/75/100, so
    MiniLM's 2/6 and 4/6 have no partner)."""
    theirs = {(g.claim, g.dataset, g.stratum): g for g in paper}
    return [agreement(g, theirs[(g.claim, g.dataset, g.stratum)]) for g in ours
            if (g.claim, g.dataset, g.stratum) in theirs]


# ---------------------------------------------------------------- everything, from a tidy frame


@dataclass(frozen=True)
class Replication:
    """Per-dataset verdicts and gaps, ours and the paper's, pooled across datasets, and how they compare."""

    datasets: tuple[DatasetVerdicts, ...]
    gaps: tuple[Gap, ...]
    paper_gaps: tuple[Gap, ...]
    pooled: tuple[Pooled, ...]
    agreements: tuple[Agreement, ...]
    learned: tuple[TaskLearned, ...] = ()  # each dataset's clean model against guessing
    rule: DecisionRule = field(default=DEFAULT_RULE, repr=False)
    near_chance: tuple[str, ...] = ()  # datasets left out of the pooled verdicts, "dataset (source)"

    def pooled_verdict(self, claim: str, source: str = "ours", reading: str = "quantifier") -> ClaimDecision | None:
        return pooled_claim(self.pooled, claim, source, self.rule, reading)

    def rests_on(self, claim: str, source: str = "ours") -> Pooled | None:
        """The pooled stratum a claim's verdict rests on: the strongest contradiction where it is CONTRADICTED,
        else the stratum furthest from support (a claim is SUPPORTED only when every stratum is)."""
        decision = self.pooled_verdict(claim, source)
        strata = [p for p in self.pooled if p.claim == claim and p.source == source]
        if decision is None or not strata:
            return None
        if decision.verdict is Verdict.CONTRADICTED:
            return min(strata, key=lambda p: p.p_contradict)
        return max(strata, key=lambda p: p.p_support)


def replicate(frame: pd.DataFrame, predictions: Mapping[str, Prediction] | None = None, *,
              paper: pd.DataFrame | None = None, rule: DecisionRule = DEFAULT_RULE,
              pooling: PoolingRule = DEFAULT_POOLING, under_trained: Collection[tuple] = ()) -> Replication:
    """The replication's numbers from our tidy frame (``harness.verdict.sources``) and its per-example predictions,
    beside the paper's tidy frame (default: claims/paper_tables.csv)."""
    paper = load_source("paper", PAPER_TABLES) if paper is None else paper
    ours = per_dataset(frame, "results", rule, under_trained, predictions)
    partners = paper_rows(paper, [d.dataset for d in ours])
    # the paper's one-run numbers carry each dataset's measured run SD, as `pytest claims/ --source paper` judges
    # them (one judgement per source); measured on our own seeds here, the records the replication reads
    measured = measured_run_sd(frame)
    run_sd = {d: run_sd_for(d, measured).run_sd for d in partners["dataset"].astype(str).unique()} if measured else {}
    theirs = per_dataset(partners, "paper", rule, run_sd=run_sd)
    gaps = [g for d in ours for g in gaps_of(d.comparisons, "ours")]
    paper_gaps = [g for d in theirs for g in gaps_of(d.comparisons, "paper")]
    learned = task_learned(frame, predictions or {}, partners)
    # claims/README.md's rule, written before issue 33's RTE records were read: a dataset whose clean model is near
    # chance has nothing to recover towards, so it stays out of the pooled verdicts (on each side by its own clean F1)
    near = {("ours", t.dataset) for t in learned if t.mode == "full" and t.near_chance} | \
        {("paper", t.dataset) for t in learned if t.mode == "full" and t.paper_near_chance}
    poolable = [g for g in gaps + paper_gaps if (g.source, g.dataset) not in near]
    return Replication(tuple(ours), tuple(gaps), tuple(paper_gaps), tuple(pool(poolable, rule, pooling)),
                       tuple(agreements(gaps, paper_gaps)), tuple(learned), rule,
                       tuple(sorted(f"{dataset} ({source})" for source, dataset in near)))


# ---------------------------------------------------------------- the kept records


@dataclass(frozen=True)
class KeptReplication:
    """The replication read from a folder of kept records, with what it rests on."""

    replication: Replication
    cells: pd.DataFrame  # cells.csv's rows of this METHOD_VERSION's records
    diagnosis: pd.DataFrame  # the convergence diagnostic (harness.verdict.convergence) of those cells
    other_versions: int  # records of other METHOD_VERSIONs passed over


def replication_of(folder: str | Path, paper: pd.DataFrame | None = None, rule: DecisionRule = DEFAULT_RULE
                   ) -> KeptReplication | None:
    """The replication from a folder of kept records; None if it has none of this METHOD_VERSION. Verdicts read
    the held-out protocol (``selected``: epoch and lr chosen on validation)."""
    cells, other = kept_cells(folder)
    if cells.empty:
        return None
    frame = results_frame(cells, "selected", str(folder))
    diagnosis = diagnose(cells, metric="selected")
    found = replicate(frame, load_predictions(frame, folder), paper=paper, rule=rule,
                      under_trained=under_trained_slices(diagnosis))
    return KeptReplication(found, cells, diagnosis, other)


# ---------------------------------------------------------------- one verdict per claim (REPORT.md's answer, pytest)


def replication_verdicts(replication: Replication) -> dict[str, ClaimVerdict]:
    """One verdict per claim from the replication, the one REPORT.md's answer shows and ``pytest claims/ --source
    replication`` exits on: claims 1-3 pooled over datasets (near-chance datasets left out), every other claim over
    all datasets' comparisons by its quantifier (datasets that did not test it left out)."""
    comparisons = [c for d in replication.datasets for c in d.comparisons if d.tested(c.claim)]
    untested = [c for d in replication.datasets[:1] for c in d.comparisons
                if not any(x.claim == c.claim for x in comparisons)]  # keeps every claim's placeholder verdict
    found = aggregate(comparisons + untested, replication.rule)
    for claim in ORDERING_CLAIMS:
        decision, rests = replication.pooled_verdict(claim), replication.rests_on(claim)
        if decision is None or rests is None:
            continue
        counts = [sum(s.verdict is v for s in decision.strata) for v in (Verdict.SUPPORTED, Verdict.CONTRADICTED,
                                                                          Verdict.INCONCLUSIVE)]
        provisional = sorted({c.ids["dataset"] for c in comparisons
                              if c.claim == claim and c.provisional and c.ids["dataset"] in rests.datasets})
        found[claim] = ClaimVerdict(
            claim, decision.verdict, *counts,
            f"{claim_quantifier(claim)}, pooled over {len(rests.datasets)} datasets: weakest of "
            f"{len(decision.strata)} pooled strata: {rests.stratum} (p above its boundary {rests.p_support:.2g}; mean "
            f"{rests.estimate:+.2f})", decision.strata, bool(provisional),
            f"PROVISIONAL: it rests on under-trained datasets ({', '.join(provisional)})" if provisional else "")
    return found


def replication_judgement(folder: str | Path = REPLICATION_RECORDS, rule: DecisionRule = DEFAULT_RULE) -> Judgement:
    """The kept replication as one ``Judgement``: every dataset's comparisons, and ``replication_verdicts``."""
    kept = replication_of(folder, rule=rule)
    if kept is None:
        raise BadInput(f"no replication records of this METHOD_VERSION in {folder}: run `python -m harness grid "
                       f"--profile {PROFILE}`, then `python -m harness keep --profile {PROFILE}`")
    found = kept.replication
    notes = ([f"near chance, left out of the pooled verdicts: {', '.join(found.near_chance)}"]
             if found.near_chance else [])
    notes += [f"{kept.other_versions} record(s) of other METHOD_VERSIONs passed over"] if kept.other_versions else []
    comparisons = [c for d in found.datasets for c in d.comparisons if d.tested(c.claim)]
    return Judgement(PROFILE, str(folder), "selected", comparisons, replication_verdicts(found), kept.diagnosis, [],
                     notes)
