"""The replication at the paper's breadth (issue 22): each claim per dataset, and pooled across datasets.

**Per dataset.** Every claim's verdict on one dataset's rows alone (``harness.claims.evaluate_claims``:
the calibrated rule, Holm over that dataset's votes), and for claims 1-3 each comparison's *gap*, the
difference the claim predicts positive, with its 95% interval ``difference +- t_df(0.975) SE`` from the
rule's noise model (``harness.decision.decide``: seeds plus the shared test set, Satterthwaite's df):

* claim 1: F1(clean) - F1(corrupted) per setting; claim 2: the loss at each step;
* claim 3: F1(top) - F1(bottom) per level (how much more corrupting the bottom layers costs).

**Across datasets, the dataset as the unit.** Per claim and stratum (a setting, a step, a level), a
random-effects meta-analysis of the datasets' gaps (``statsmodels.stats.meta_analysis.combine_effects``):
Paule-Mandel's between-dataset variance, and the Hartung-Knapp interval on k - 1 df with its scale
floored at 1 (``PoolingRule``). Its verdict is the rule's two one-sided tests at the claim's boundary
(+``equivalence_margin`` for claims 1 and 2, 0 for claim 3) on that t; a claim's pooled verdict is
``harness.decision.claim_verdict`` over its strata's pooled votes (Holm over contradictions, every
stratum for support).

**The paper beside it.** BERT-base's gap for the same comparison at the same level: Table 3 (mean
pooling, as ours), Table 2 where a dataset is not in Table 3, Table 5 for the pair tasks; with the
one-run noise the rule assumes for the paper's tables. Where they differ is read from the numbers
(``Agreement``): the difference of the two gaps over its SE.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects

from harness import BadInput
from harness.aggregate import CELL_COLUMNS, cell_row, choose_lr
from harness.claims import CLAIMS, ORDERING, Comparison, Prediction, evaluate_claims
from harness.config import METHOD_VERSION
from harness.convergence import diagnose, under_trained_slices
from harness.decision import DEFAULT_RULE, ClaimDecision, DecisionRule, Verdict, Vote, claim_verdict
from harness.results import read_record
from harness.sources import PAPER_TABLES, load_predictions, load_source, results_frame
from harness.verdicts import ClaimVerdict, aggregate

PROFILE = "replication"
ORDERING_CLAIMS = tuple(ORDERING)  # claims 1-3: comparisons with a gap
FOREST_CLAIMS = (CLAIMS[0], CLAIMS[2])  # the forest plots: claim 1 per setting, claim 3 per level
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
                under_trained: Collection[tuple] = (), predictions: Mapping[str, Prediction] | None = None
                ) -> list[DatasetVerdicts]:
    """Every dataset of ``frame`` (in its order), judged on its own rows."""
    found = []
    for dataset in dict.fromkeys(frame["dataset"].astype(str)):
        comparisons = evaluate_claims(frame[frame["dataset"].astype(str) == dataset], source, rule, under_trained,
                                      None, predictions)
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
    p_support: float
    p_contradict: float
    verdict: Verdict

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
    p_support, p_contradict = float(stats.t.sf(t, df)), float(stats.t.cdf(t, df))
    first = gaps[0]
    return Pooled(first.claim, first.source, first.model, first.stratum, tuple(g.dataset for g in gaps), estimate, se,
                  df, math.sqrt(max(float(combined.tau2), 0.0)), max(float(combined.i2), 0.0), boundary, p_support,
                  p_contradict, rule.verdict_of(p_support, p_contradict))


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


def pooled_claim(pooled: Sequence[Pooled], claim: str, source: str, rule: DecisionRule = DEFAULT_RULE
                 ) -> ClaimDecision | None:
    """A claim's verdict across datasets: its pooled strata as votes (``claim_verdict``); None if none pooled."""
    votes = [Vote(p.stratum, f"pooled/{p.model}/{p.stratum}", p.verdict, p.p_support, p.p_contradict)
             for p in pooled if p.claim == claim and p.source == source]
    return claim_verdict(votes, rule) if votes else None


# ---------------------------------------------------------------- ours against the paper's


@dataclass(frozen=True)
class Agreement:
    """Our gap and the paper's for the same comparison: their difference over its SE (Satterthwaite's df)."""

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
    rule: DecisionRule = field(default=DEFAULT_RULE, repr=False)

    def pooled_verdict(self, claim: str, source: str = "ours") -> ClaimDecision | None:
        return pooled_claim(self.pooled, claim, source, self.rule)


def replicate(frame: pd.DataFrame, predictions: Mapping[str, Prediction] | None = None, *,
              paper: pd.DataFrame | None = None, rule: DecisionRule = DEFAULT_RULE,
              pooling: PoolingRule = DEFAULT_POOLING, under_trained: Collection[tuple] = ()) -> Replication:
    """The replication's numbers from our tidy frame (``harness.sources``) and its per-example predictions,
    beside the paper's tidy frame (default: claims/paper_tables.csv)."""
    paper = load_source("paper", PAPER_TABLES) if paper is None else paper
    ours = per_dataset(frame, "results", rule, under_trained, predictions)
    theirs = per_dataset(paper_rows(paper, [d.dataset for d in ours]), "paper", rule)
    gaps = [g for d in ours for g in gaps_of(d.comparisons, "ours")]
    paper_gaps = [g for d in theirs for g in gaps_of(d.comparisons, "paper")]
    return Replication(tuple(ours), tuple(gaps), tuple(paper_gaps), tuple(pool(gaps + paper_gaps, rule, pooling)),
                       tuple(agreements(gaps, paper_gaps)), rule)


# ---------------------------------------------------------------- the kept records


def kept_cells(folder: str | Path) -> tuple[pd.DataFrame, int]:
    """cells.csv's rows of the records in ``folder`` made by this METHOD_VERSION, and how many records of other
    versions were passed over (a method change makes them another method's numbers)."""
    rows, other = [], 0
    for path in sorted(Path(folder).glob("*.json")):
        record = read_record(path)
        if record is None or "config" not in record or "epochs" not in record:
            continue
        if str(record.get("method_version")) != METHOD_VERSION:
            other += 1
            continue
        try:
            rows.append({**cell_row(record), "revision": record.get("versions", {}).get("revision")})
        except (KeyError, TypeError):  # a record of another layout: as missing as a torn one
            other += 1
    return pd.DataFrame(rows, columns=CELL_COLUMNS + ["revision"]), other


@dataclass(frozen=True)
class KeptReplication:
    """The replication read from a folder of kept records, with what it rests on."""

    replication: Replication
    cells: pd.DataFrame  # cells.csv's rows of this METHOD_VERSION's records
    diagnosis: pd.DataFrame  # the convergence diagnostic (harness.convergence) of those cells
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


# ---------------------------------------------------------------- tables, words and the forest plot


def _interval_text(estimate: float, low: float, high: float) -> str:
    if not math.isfinite(estimate):
        return "–"
    return f"{estimate:+.2f} [{low:+.2f}, {high:+.2f}]" if math.isfinite(low) else f"{estimate:+.2f} (no test)"


def gap_text(item: Gap | Pooled) -> str:
    value = item.difference if isinstance(item, Gap) else item.estimate
    return _interval_text(value, *item.interval())


GAP_LABELS = {CLAIMS[0]: "F1(clean) − F1(corrupted)", CLAIMS[1]: "F1 lost at the step",
              CLAIMS[2]: "F1(top) − F1(bottom)"}


def forest_rows(replication: Replication, claim: str) -> pd.DataFrame:
    """The forest plot's rows for ``claim``: per stratum, each dataset's gap (ours and the paper's at the same
    level) and the pooled ones, with their 95% intervals."""
    rows = []
    for stratum in strata_in_order(replication.gaps, claim):
        for source, gaps in (("ours", replication.gaps), ("paper", replication.paper_gaps)):
            for g in gaps:
                if g.claim == claim and g.stratum == stratum:
                    low, high = g.interval()
                    rows.append({"stratum": stratum, "row": dataset_name(g.dataset), "source": source, "pooled": False,
                                 "estimate": g.difference, "low": low, "high": high, "boundary": g.boundary})
        for p in replication.pooled:
            if p.claim == claim and p.stratum == stratum:
                low, high = p.interval()
                rows.append({"stratum": stratum, "row": "pooled", "source": p.source,
                             "pooled": True, "estimate": p.estimate, "low": low, "high": high, "boundary": p.boundary})
    return pd.DataFrame(rows, columns=["stratum", "row", "source", "pooled", "estimate", "low", "high", "boundary"])


def gap_table(replication: Replication, claim: str) -> pd.DataFrame:
    """One row per dataset and stratum of ``claim``: our gap and verdict, the paper's, and how they compare."""
    theirs = {(g.dataset, g.stratum): g for g in replication.paper_gaps if g.claim == claim}
    readings = {(a.ours.dataset, a.ours.stratum): a for a in replication.agreements if a.ours.claim == claim}
    order = {s: i for i, s in enumerate(strata_in_order(replication.gaps, claim))}
    rows = []
    for g in sorted((g for g in replication.gaps if g.claim == claim), key=lambda g: order[g.stratum]):
        paper = theirs.get((g.dataset, g.stratum))
        found = readings.get((g.dataset, g.stratum))
        rows.append({"stratum": g.stratum, "dataset": dataset_name(g.dataset),
                     "ours (MiniLM-L6), 95% CI": gap_text(g),
                     "ours": f"**{g.verdict}**" + (" (provisional)" if g.provisional else ""),
                     "paper (BERT-base)": f"{gap_text(paper)} ({paper.table})" if paper else "–",
                     "paper": f"**{paper.verdict}**" if paper else "–",
                     "ours − paper": (f"{found.reading} (z = {found.z:+.1f})" if found and found.reading != "untested"
                                      else "–")})
    return pd.DataFrame(rows)


def pooled_table(replication: Replication) -> pd.DataFrame:
    rows = []
    for claim in ORDERING_CLAIMS:
        for stratum in strata_in_order(replication.gaps, claim):
            found = {p.source: p for p in replication.pooled if p.claim == claim and p.stratum == stratum}
            if "ours" not in found:
                continue
            ours, paper = found["ours"], found.get("paper")
            rows.append({"claim": claim, "stratum": stratum, "datasets": len(ours.datasets),
                         "pooled gap, 95% CI": gap_text(ours), "τ (between datasets)": f"{ours.tau:.2f}",
                         "boundary": f"{ours.boundary:+g}", "verdict": f"**{ours.verdict}**",
                         "p(above) / p(below)": f"{ours.p_support:.3g} / {ours.p_contradict:.3g}",
                         "paper pooled": f"{gap_text(paper)} **{paper.verdict}**" if paper else "–"})
    return pd.DataFrame(rows)


def dataset_table(replication: Replication) -> pd.DataFrame:
    """Each claim's verdict on each dataset alone ("–": nothing to compare there, e.g. claim 4 without a probe)."""
    rows = []
    for d in replication.datasets:
        row = {"dataset": dataset_name(d.dataset)}
        for claim in CLAIMS[:4]:
            verdict = d.verdicts.get(claim)
            row[claim] = ("–" if verdict is None or not d.tested(claim) else
                          f"**{verdict.verdict}**" + (" (provisional)" if verdict.provisional else "")
                          + f" ({verdict.supported}/{verdict.contradicted}/{verdict.inconclusive})")
        rows.append(row)
    return pd.DataFrame(rows)


def _listing(items: Sequence[Agreement]) -> str:
    return "; ".join(f"{dataset_name(a.ours.dataset)} {a.ours.stratum} ({a.ours.difference:+.1f} vs "
                     f"{a.paper.difference:+.1f})" for a in items)


def agreement_sentences(replication: Replication, claim: str) -> list[str]:
    """Where the replication agrees with the paper on ``claim`` and where it doesn't, from the numbers."""
    found = [a for a in replication.agreements if a.ours.claim == claim and a.reading != "untested"]
    sentences = []
    if found:
        same = [a for a in found if a.reading == "consistent"]
        smaller = [a for a in found if a.reading == "smaller here"]
        larger = [a for a in found if a.reading == "larger here"]
        sentences.append(f"Gap size: on {len(same)} of {len(found)} (dataset, {'setting' if claim == CLAIMS[0] else 'level'}) "
                         f"pairs with a paper value at the same level, the paper's BERT-base gap is within what the two "
                         f"gaps' noise allows (|z| below the 95% point)." +
                         (f" Ours is smaller on {len(smaller)}: {_listing(smaller)}." if smaller else "") +
                         (f" Ours is larger on {len(larger)}: {_listing(larger)}." if larger else ""))
        verdicts_agree = [a for a in found if a.ours.verdict is a.paper.verdict]
        differ = [a for a in found if a.ours.verdict is not a.paper.verdict]
        sentences.append(f"Verdicts: the same on {len(verdicts_agree)} of {len(found)} pairs" +
                         (": " + "; ".join(f"{dataset_name(a.ours.dataset)} {a.ours.stratum} ours {a.ours.verdict}, "
                                           f"paper {a.paper.verdict}" for a in differ) + " differ." if differ else "."))
    for stratum in strata_in_order(replication.gaps, claim):
        pooled = {p.source: p for p in replication.pooled if p.claim == claim and p.stratum == stratum}
        if "ours" not in pooled:
            continue
        ours, paper = pooled["ours"], pooled.get("paper")
        text = (f"Pooled over {len(ours.datasets)} datasets, {stratum}: {gap_text(ours)} "
                f"(τ {ours.tau:.2f}), {ours.verdict} against the boundary {ours.boundary:+g}")
        if paper is not None:
            text += (f"; the paper's pooled over its {len(paper.datasets)}: {gap_text(paper)}, {paper.verdict}"
                     + (" (the same verdict)" if paper.verdict is ours.verdict else " (a different verdict)"))
        sentences.append(text + ".")
    return sentences


def lr_choices(cells: pd.DataFrame) -> list[str]:
    """Where a setting ran at several lrs: which one validation chose (``choose_lr``, protocol ``selected``)."""
    several = cells.groupby(["dataset", "mode"])["lr"].nunique()
    lines = []
    for dataset, mode in several[several > 1].index:
        mine = cells[(cells["dataset"] == dataset) & (cells["mode"] == mode)]
        contested = mine.groupby(["position", "level"])["lr"].nunique()
        contested = set(contested[contested > 1].index)
        chosen = choose_lr(mine, "selected")
        picks = (chosen.drop_duplicates(["position", "level"])
                 .loc[lambda f: [(p, lv) in contested for p, lv in zip(f["position"], f["level"])]])
        names = ", ".join(f"{'clean' if p == 'none' else '100%' if p == 'all' else f'{p} {lv:.0f}%'} {lr:g}"
                          for p, lv, lr in zip(picks["position"], picks["level"], picks["lr"]))
        lrs = ", ".join(f"{lr:g}" for lr in sorted(mine["lr"].unique()))
        lines.append(f"{dataset_name(dataset)} ({mode}): lr chosen on validation from {lrs}: {names}.")
    return lines


def _expected_cells(params: Path | None) -> int | None:
    if params is None or not Path(params).is_file():
        return None
    from harness.expand import expand
    from harness.profiles import load_profile

    try:
        return len(expand(load_profile(PROFILE, params)))
    except BadInput:
        return None


def replication_section(records_dir: str | Path, plots_dir: str | Path, *, paper_tables: str | Path = PAPER_TABLES,
                        params: str | Path | None = "params.yaml", rule: DecisionRule = DEFAULT_RULE) -> str:
    """REPORT.md's replication section from ``<records_dir>/replication`` (the kept records of the profile), with
    the forest plots written to ``<plots_dir>/forest_<claim>.png``; says plainly when nothing has run yet."""
    from harness.beyond import _markdown, _provenance
    from harness.plots import plot_forest, plot_placeholder

    folder, plots = Path(records_dir) / PROFILE, Path(plots_dir)
    pngs = {claim: plots / f"forest_{claim}.png" for claim in FOREST_CLAIMS}
    found = replication_of(folder, load_source("paper", paper_tables), rule) if folder.is_dir() else None
    parts = ["## The replication at the paper's breadth (MiniLM-L6, eight datasets)", ""]
    if found is None:
        why = (f"Not yet run: no records of profile `{PROFILE}` (METHOD_VERSION {METHOD_VERSION}) are kept in "
               f"`{folder.as_posix()}`. Run `python -m harness grid --profile {PROFILE}` (it resumes), then "
               f"`python -m harness keep --profile {PROFILE}`.")
        for png in pngs.values():
            plot_placeholder(png, why.replace("`", ""))
        return "\n".join(parts + [why, ""])
    replication, cells, diagnosis, other = found.replication, found.cells, found.diagnosis, found.other_versions
    expected = _expected_cells(Path(params) if params is not None else None)
    coverage = f"{len(cells)} of {expected} cells" if expected else f"{len(cells)} cells"
    parts += [f"From {_provenance(cells, folder)} ({coverage} of the profile{'; PARTIAL' if expected and len(cells) < expected else ''}"
              f"{f'; {other} records of other method versions passed over' if other else ''}). Test F1 at the epoch of "
              "best validation F1, lr chosen on validation; every verdict is the calibrated rule's "
              "(`harness/decision.py`). Gaps are F1 points with 95% intervals (ours: seeds and the shared test set, "
              "t on Satterthwaite's df; the paper's: one run each, the rule's assumed run-to-run SD); pooled: "
              "random effects over datasets (Paule-Mandel τ², Hartung-Knapp interval on k − 1 df), strata run on "
              f"≥ {DEFAULT_POOLING.min_datasets} datasets only. Verdicts are the rule's one-sided tests at "
              f"{rule.alpha:g} (the ends of the {1 - 2 * rule.alpha:.0%} interval), so a 95% interval that touches a "
              "boundary can still be decided.", ""]
    parts += [f"* {line}" for line in lr_choices(cells)]
    flagged = diagnosis[diagnosis["under_trained"].astype(bool)] if len(diagnosis) else diagnosis
    parts += [f"* PROVISIONAL: {dataset_name(r['dataset'])} ({r['mode']}) is under-trained: {r['reason']}."
              for _, r in flagged.iterrows()]
    parts += ["", "Each claim on each dataset alone (supported/contradicted/inconclusive comparisons; Holm over "
              "the dataset's votes). Claim 5 needs the representation analysis, which this profile does not run.", "",
              _markdown(dataset_table(replication)), ""]
    decided = {claim: d for claim in ORDERING_CLAIMS if (d := replication.pooled_verdict(claim)) is not None}
    if decided:
        parts += ["Across datasets (the dataset as the unit): "
                  + "; ".join(f"{claim} **{d.verdict}**" + (f" (weakest stratum: {d.decisive.name})" if d.decisive
                                                           else "") for claim, d in decided.items()) + ".", "",
                  _markdown(pooled_table(replication)), ""]
    else:
        parts += [f"Across datasets: nothing pooled yet (a stratum needs records on ≥ {DEFAULT_POOLING.min_datasets} "
                  "datasets).", ""]
    for claim, png in pngs.items():
        rows = forest_rows(replication, claim)
        plot_forest(rows, png, title=f"{claim}: {GAP_LABELS[claim]}, MiniLM-L6 (ours) vs BERT-base (paper)",
                    xlabel="gap (F1 points)", row_order=[dataset_name(d.dataset) for d in replication.datasets])
        words = agreement_sentences(replication, claim) or [
            "No comparison of this claim has a paper value at the same level, nor a pooled estimate, yet."]
        parts += [f"### {claim}: {GAP_LABELS[claim]}", "", f"![Forest plot of {claim}]({png.as_posix()})", "",
                  *words, "", _markdown(gap_table(replication, claim)), ""]
    return "\n".join(parts)

