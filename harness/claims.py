"""The paper's findings as verdicts: SUPPORTED, CONTRADICTED or INCONCLUSIVE.

Four claims (Section 4.2 and 4.3), each tested as a list of pairwise comparisons:

* ``no-complete-recovery``: every corrupted setting scores below the clean model;
* ``monotone-degradation``: F1 does not rise with the corruption level, along the bottom chain
  0 -> bottom levels -> 100% and the top chain 0 -> top levels -> 100% (consecutive pairs);
* ``bottom-worse-than-top``: at equal level, bottom corruption scores no higher than top;
* ``probe-instability``: the linear probe (Table 4) violates those orderings more often than full
  fine-tuning of the same model on the same dataset (Table 2), and, with seeds, varies more.

Claims 1-3 are stated for full fine-tuning (Tables 2, 3 and 5: "the overall trends ... are also
present" in Table 5), so they are evaluated on ``mode == full`` only; probe slices enter claim 4.

A comparison "F1(low) < F1(high)" gets its verdict from ``decide``: with 2+ seeds a one-sided paired
t-test over seeds (same seed = same data order and head init), with one run per value (the paper,
or a one-seed grid) a tolerance set by the test set's sampling noise. ``DecisionRule`` holds every
tolerance and threshold, with its reason: it is the one place to change them.

Sources (``load_source``): ``paper`` (claims/paper_tables.csv, the transcribed Tables 2-5) or
``results`` (results/cells.csv, one row per cell). Both become one tidy frame:
``table, model, dataset, pooling, mode, position, level, seed, n_test, f1``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from itertools import combinations
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
from scipy import stats

from harness import BadInput
from harness.results import read_csv

REPO = Path(__file__).resolve().parent.parent
PAPER_TABLES = REPO / "claims" / "paper_tables.csv"
RESULTS = REPO / "results" / "cells.csv"

CLAIMS = ("no-complete-recovery", "monotone-degradation", "bottom-worse-than-top", "probe-instability")
GROUP = ["table", "model", "dataset", "pooling", "mode"]
TIDY = GROUP + ["position", "level", "seed", "n_test", "f1"]
POSITIONS = ("none", "bottom", "top", "all")
METRICS = ("best", "selected")
SOURCES = ("paper", "results")

# Which training protocol each paper table reports (Sections 4.2-4.3); Table 5 = pair tasks, [CLS], full.
PAPER_PROTOCOL = {2: ("cls", "full"), 3: ("mean", "full"), 4: ("cls", "probe"), 5: ("cls", "full")}
PAPER_LEVELS = (0, 25, 50, 75, 100)
# Test-set sizes behind each paper value: Table 1 for the six classification datasets; the pair tasks
# are scored on GLUE's validation split (their test labels are hidden), as harness/data.py does.
PAPER_TEST_SIZES = {"sst2": 12_000, "imdb": 5_000, "ag_news": 6_000, "emotion": 4_000, "dbpedia_14": 12_000,
                    "twitter_financial_news_topic": 4_000, "mrpc": 408, "rte": 277}


# ---------------------------------------------------------------- the decision rule


class Verdict(StrEnum):
    SUPPORTED = "SUPPORTED"
    CONTRADICTED = "CONTRADICTED"
    INCONCLUSIVE = "INCONCLUSIVE"


@dataclass(frozen=True)
class DecisionRule:
    """Every tolerance and threshold of the verdicts, each with its reason."""

    # A difference counts when it is unlikely under "no difference": one-sided tests at 5%, the
    # conventional level; with the handful of seeds a CPU grid affords, weaker evidence is noise.
    alpha: float = 0.05
    # One run per value (the paper; a one-seed grid): the noise we can still quantify is the test
    # set's own sampling error. Weighted F1 behaves like an accuracy p measured on n examples, whose
    # standard error is sqrt(p(1-p)/n); the tolerance is the one-sided critical difference of two
    # such scores, z_(1-alpha) * sqrt(p1(1-p1)/n + p2(1-p2)/n). It is a lower bound on the true noise
    # (seeds add more; two models on one test set correlate, which the formula ignores, so it errs
    # on the cautious side): ~0.6 points on SST-2 (12k test examples), ~0.25 on DBpedia (98%
    # accurate, 12k), ~5 on MRPC (408) and ~7 on RTE (277), where the paper itself sees volatility.
    # Values printed to two decimals carry at most 0.005 of rounding: never a tolerance below 0.01.
    min_tolerance: float = 0.01
    # The claims are trends "generally" observed, with outliers marked by the paper itself, so one
    # contradiction does not overturn a claim. Aggregate: SUPPORTED when at least half of all
    # comparisons support it (so a claim cannot win on a few decisive cases among many undecided
    # ones) and at most one in ten contradicts it; CONTRADICTED when contradictions outnumber
    # supports; anything between (mixed or underpowered evidence) is INCONCLUSIVE.
    aggregate_min_supported: float = 0.5
    aggregate_max_contradicted: float = 0.1

    def single_run_tolerance(self, f1_a: float, f1_b: float, n_test: float) -> float:
        """Critical difference (F1 points) of two single scores on ``n_test`` examples."""
        p = np.clip(np.array([f1_a, f1_b]) / 100.0, 0.0, 1.0)
        standard_error = 100.0 * math.sqrt(float(np.sum(p * (1 - p))) / n_test)
        return max(NormalDist().inv_cdf(1 - self.alpha) * standard_error, self.min_tolerance)

    def verdict_of(self, p_greater: float, p_less: float) -> Verdict:
        if p_greater < self.alpha:
            return Verdict.SUPPORTED
        if p_less < self.alpha:
            return Verdict.CONTRADICTED
        return Verdict.INCONCLUSIVE


DEFAULT_RULE = DecisionRule()


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    values: dict[str, float]
    detail: str


def decide(low: Mapping[int, float], high: Mapping[int, float], n_test: float,
           rule: DecisionRule = DEFAULT_RULE) -> Decision:
    """Verdict on the prediction F1(low) < F1(high); ``low``/``high`` map seed -> F1."""
    seeds = sorted(set(low) & set(high))
    if not seeds:
        return Decision(Verdict.INCONCLUSIVE, {}, "no seed in common: nothing to pair")
    low, high = np.array([low[s] for s in seeds], dtype=float), np.array([high[s] for s in seeds], dtype=float)
    diff = high - low
    mean = float(diff.mean())
    values = {"low": float(low.mean()), "high": float(high.mean()), "difference": mean, "n_seeds": len(seeds)}
    if len(seeds) == 1:
        tolerance = rule.single_run_tolerance(values["low"], values["high"], n_test)
        values["tolerance"] = tolerance
        verdict = (Verdict.SUPPORTED if mean > tolerance else
                   Verdict.CONTRADICTED if mean < -tolerance else Verdict.INCONCLUSIVE)
        return Decision(verdict, values, f"difference {mean:+.2f} vs tolerance ±{tolerance:.2f} "
                                         f"(one run; test-set noise at n_test={n_test:g})")
    if np.allclose(diff, mean, rtol=0, atol=1e-9):  # the same difference in every seed: no noise, the sign decides
        p_greater, p_less = (0.0, 1.0) if mean > 0 else (1.0, 0.0) if mean < 0 else (1.0, 1.0)
    else:
        p_greater = float(stats.ttest_rel(high, low, alternative="greater").pvalue)
        p_less = float(stats.ttest_rel(high, low, alternative="less").pvalue)
    values.update(p_greater=p_greater, p_less=p_less)
    return Decision(rule.verdict_of(p_greater, p_less), values,
                    f"difference {mean:+.2f} over {len(seeds)} paired seeds (one-sided paired t-test: "
                    f"p(higher) = {p_greater:.3g}, p(lower) = {p_less:.3g}, alpha = {rule.alpha})")


# ---------------------------------------------------------------- comparisons


@dataclass(frozen=True)
class Comparison:
    """One tested prediction: ``ids`` name it, ``values`` hold its numbers, ``detail`` says why."""

    claim: str
    ids: dict[str, str]
    values: dict[str, float]
    verdict: Verdict
    detail: str
    source: str = ""

    @property
    def id(self) -> str:
        """Readable pytest id, e.g. ``T2/base/sst2/bottom25<clean``."""
        return "/".join(self.ids[key] for key in ("table", "model", "dataset", "comparison"))

    def to_dict(self) -> dict:
        return {"claim": self.claim, "id": self.id, **asdict(self), "verdict": str(self.verdict)}


Setting = tuple[str, float]  # (position, level)


CLEAN: Setting = ("none", 0.0)


def setting_label(setting: Setting) -> str:
    position, level = setting
    return {"none": "clean", "all": "all"}.get(position, f"{position}{level:.3g}")


def _order(setting: Setting) -> tuple[float, int]:
    """Reading order of the paper's tables: clean, bottom 25, top 25, bottom 50, ..., 100%."""
    return setting[1], POSITIONS.index(setting[0])


@dataclass(frozen=True)
class Slice:
    """One (table, model, dataset, pooling, mode): F1 by seed for each corruption setting."""

    keys: dict[str, str]
    runs: dict[Setting, dict[int, float]] = field(repr=False)  # setting -> seed -> F1
    n_test: float

    def levels(self, position: str) -> list[Setting]:
        return sorted((s for s in self.runs if s[0] == position), key=lambda s: s[1])


def slices(frame: pd.DataFrame) -> Iterator[Slice]:
    """The tidy frame's slices, in the frame's order (plain dicts: thousands of comparisons stay fast)."""
    runs: dict[tuple, dict[Setting, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    n_test: dict[tuple, float] = {}
    for row in frame[TIDY].itertuples(index=False):
        key = tuple(str(getattr(row, k)) for k in GROUP)
        runs[key][(row.position, float(row.level))][row.seed] = float(row.f1)
        n_test[key] = min(n_test.get(key, math.inf), float(row.n_test))
    for key, by_setting in runs.items():
        yield Slice(dict(zip(GROUP, key)), dict(by_setting), n_test[key])


def _compare(claim: str, piece: Slice, low: Setting, high: Setting, rule: DecisionRule, source: str) -> Comparison:
    ids = {**piece.keys, "comparison": f"{setting_label(low)}<{setting_label(high)}"}
    missing = [setting_label(s) for s in (low, high) if s not in piece.runs]
    if missing:
        return Comparison(claim, ids, {}, Verdict.INCONCLUSIVE, f"no run for {' and '.join(missing)}", source)
    decision = decide(piece.runs[low], piece.runs[high], piece.n_test, rule)
    if not decision.values:
        return Comparison(claim, ids, {}, decision.verdict, decision.detail, source)
    values = dict(decision.values)
    values = {setting_label(low): values.pop("low"), setting_label(high): values.pop("high"), **values}
    scores = ", ".join(f"{setting_label(s)} {values[setting_label(s)]:.2f}" for s in (low, high))
    return Comparison(claim, ids, values, decision.verdict, f"{scores}: {decision.detail}", source)


def no_complete_recovery(piece: Slice, rule: DecisionRule = DEFAULT_RULE, source: str = "") -> list[Comparison]:
    """Every corrupted setting below clean (Section 4.2, finding 1)."""
    corrupted = [s for s in piece.runs if s[0] != "none"]
    return [_compare(CLAIMS[0], piece, s, CLEAN, rule, source) for s in sorted(corrupted, key=_order)]


def monotone_degradation(piece: Slice, rule: DecisionRule = DEFAULT_RULE, source: str = "") -> list[Comparison]:
    """F1 does not rise along 0 -> bottom (or top) levels -> 100%, consecutive pairs (finding 2)."""
    pairs: list[tuple[Setting, Setting]] = []
    for position in ("bottom", "top"):
        chain = piece.levels("none") + piece.levels(position) + piece.levels("all")
        pairs += [pair for pair in zip(chain, chain[1:]) if pair not in pairs]  # clean -> all only once
    return [_compare(CLAIMS[1], piece, more, less, rule, source) for less, more in pairs]  # more corrupted: lower


def bottom_worse_than_top(piece: Slice, rule: DecisionRule = DEFAULT_RULE, source: str = "") -> list[Comparison]:
    """Bottom corruption scores below top corruption at the same level (finding 3)."""
    levels = sorted({level for position, level in piece.runs if position in ("bottom", "top")})
    return [_compare(CLAIMS[2], piece, ("bottom", level), ("top", level), rule, source) for level in levels]


ORDERING_CLAIMS = (no_complete_recovery, monotone_degradation, bottom_worse_than_top)


def _violations(piece: Slice, rule: DecisionRule) -> tuple[int, int]:
    """(contradicted, total) comparisons of claims 1-3 on one slice."""
    found = [c for claim in ORDERING_CLAIMS for c in claim(piece, rule)]
    return sum(c.verdict is Verdict.CONTRADICTED for c in found), len(found)


def _violation_rate(probe: Slice, full: Slice, ids: dict, rule: DecisionRule, source: str) -> Comparison:
    (k_probe, n_probe), (k_full, n_full) = _violations(probe, rule), _violations(full, rule)
    table = [[k_probe, n_probe - k_probe], [k_full, n_full - k_full]]
    p_greater = float(stats.fisher_exact(table, alternative="greater").pvalue)
    p_less = float(stats.fisher_exact(table, alternative="less").pvalue)
    values = {"probe_violations": k_probe, "probe_comparisons": n_probe, "full_violations": k_full,
              "full_comparisons": n_full, "p_greater": p_greater, "p_less": p_less}
    detail = (f"ordering violations (claims 1-3 CONTRADICTED): probe {k_probe}/{n_probe}, full {k_full}/{n_full} "
              f"(one-sided Fisher exact: p(probe more) = {p_greater:.3g}, p(probe fewer) = {p_less:.3g})")
    return Comparison(CLAIMS[3], {**ids, "comparison": "violation-rate"}, values, rule.verdict_of(p_greater, p_less),
                      detail, source)


def _seed_spread(probe: Slice, full: Slice, ids: dict, rule: DecisionRule, source: str) -> Comparison | None:
    """Seed standard deviation per setting, probe vs full, paired over settings (Wilcoxon signed-rank)."""
    common = [s for s in probe.runs if s in full.runs and len(probe.runs[s]) > 1 and len(full.runs[s]) > 1]
    if not common:
        return None  # one seed: no spread to compare (the violation rate still speaks)
    spread = np.array([[np.std(list(piece.runs[s].values()), ddof=1) for piece in (probe, full)] for s in common])
    diff = spread[:, 0] - spread[:, 1]
    if np.allclose(diff, 0, rtol=0, atol=1e-9):
        p_greater = p_less = 1.0
    else:
        p_greater = float(stats.wilcoxon(diff, alternative="greater").pvalue)
        p_less = float(stats.wilcoxon(diff, alternative="less").pvalue)
    (probe_std, full_std) = spread.mean(axis=0)
    values = {"probe_seed_std": float(probe_std), "full_seed_std": float(full_std), "n_settings": len(common),
              "p_greater": p_greater, "p_less": p_less}
    detail = (f"mean seed std probe {probe_std:.2f} vs full {full_std:.2f} over {len(common)} settings "
              f"(one-sided Wilcoxon signed-rank: p(probe more) = {p_greater:.3g}, p(fewer) = {p_less:.3g})")
    return Comparison(CLAIMS[3], {**ids, "comparison": "seed-std"}, values, rule.verdict_of(p_greater, p_less),
                      detail, source)


def probe_instability(pieces: list[Slice], rule: DecisionRule = DEFAULT_RULE, source: str = "") -> list[Comparison]:
    """Linear probe less stable than full fine-tuning on the same model and dataset (Section 4.3)."""
    full = {(p.keys["model"], p.keys["dataset"], p.keys["pooling"]): p for p in pieces if p.keys["mode"] == "full"}
    found = []
    for probe in (p for p in pieces if p.keys["mode"] == "probe"):
        key = (probe.keys["model"], probe.keys["dataset"], probe.keys["pooling"])
        partner = full.get(key)
        ids = {**probe.keys, "table": probe.keys["table"] + (f"-vs-{partner.keys['table']}" if partner else "")}
        if partner is None:
            found.append(Comparison(CLAIMS[3], {**ids, "comparison": "violation-rate"}, {}, Verdict.INCONCLUSIVE,
                                    f"no full fine-tuning slice of {'/'.join(key)} to compare with", source))
            continue
        found.append(_violation_rate(probe, partner, ids, rule, source))
        spread = _seed_spread(probe, partner, ids, rule, source)
        found += [spread] if spread else []
    return found


def evaluate_claims(frame: pd.DataFrame, source_kind: str, rule: DecisionRule = DEFAULT_RULE) -> list[Comparison]:
    """Every comparison of the four claims on a tidy frame; a claim with nothing to compare gets one
    INCONCLUSIVE comparison saying so (an empty claim must not look like a pass)."""
    pieces = list(slices(frame))
    found = [c for piece in pieces if piece.keys["mode"] == "full"
             for claim in ORDERING_CLAIMS for c in claim(piece, rule, source_kind)]
    found += probe_instability(pieces, rule, source_kind)
    for claim in CLAIMS:
        if not any(c.claim == claim for c in found):
            what = "linear-probe slice" if claim == CLAIMS[3] else "full fine-tuning slice with corrupted settings"
            found.append(Comparison(claim, {"table": "-", "model": "-", "dataset": "-", "comparison": "nothing"}, {},
                                    Verdict.INCONCLUSIVE, f"no {what} in this source", source_kind))
    return found


# ---------------------------------------------------------------- aggregate verdicts


@dataclass(frozen=True)
class AggregateVerdict:
    claim: str
    verdict: Verdict
    supported: int
    contradicted: int
    inconclusive: int
    detail: str

    @property
    def total(self) -> int:
        return self.supported + self.contradicted + self.inconclusive

    def line(self) -> str:
        return (f"{self.claim}: {self.verdict} (supported {self.supported} / contradicted {self.contradicted} / "
                f"inconclusive {self.inconclusive})")


def aggregate(comparisons: Iterable[Comparison], rule: DecisionRule = DEFAULT_RULE) -> dict[str, AggregateVerdict]:
    """One verdict per claim (in ``CLAIMS`` order, claims without comparisons left out)."""
    comparisons = list(comparisons)
    verdicts = {}
    for claim in CLAIMS:
        mine = [c.verdict for c in comparisons if c.claim == claim]
        if not mine:
            continue
        s, c, i = (mine.count(v) for v in (Verdict.SUPPORTED, Verdict.CONTRADICTED, Verdict.INCONCLUSIVE))
        n = len(mine)
        if s >= rule.aggregate_min_supported * n and c <= rule.aggregate_max_contradicted * n:
            verdict, why = Verdict.SUPPORTED, (f"{s}/{n} support (>= {rule.aggregate_min_supported:.0%}) and {c}/{n} "
                                               f"contradict (<= {rule.aggregate_max_contradicted:.0%})")
        elif c > s:
            verdict, why = Verdict.CONTRADICTED, f"contradictions outnumber supports ({c} > {s})"
        else:
            verdict, why = Verdict.INCONCLUSIVE, (f"mixed or underpowered: {s}/{n} support, {c}/{n} contradict "
                                                  f"(SUPPORTED needs >= {rule.aggregate_min_supported:.0%} and <= "
                                                  f"{rule.aggregate_max_contradicted:.0%})")
        verdicts[claim] = AggregateVerdict(claim, verdict, s, c, i, why)
    return verdicts


# ---------------------------------------------------------------- sources


def _require(frame: pd.DataFrame, columns: Iterable[str], where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BadInput(f"{where} lacks column(s) {missing}; it has {list(frame.columns)}")


def paper_frame(tables: pd.DataFrame, where: str = "paper tables") -> pd.DataFrame:
    """The transcribed Tables 2-5 (``table,model,dataset,position,level,f1``) as a tidy frame."""
    _require(tables, ["table", "model", "dataset", "position", "level", "f1"], where)
    bad_table = sorted(set(tables["table"].tolist()) - set(PAPER_PROTOCOL))
    bad_position = sorted(set(tables["position"].tolist()) - set(POSITIONS))
    bad_level = sorted(set(tables["level"].tolist()) - set(PAPER_LEVELS))
    bad_dataset = sorted(set(tables["dataset"].tolist()) - set(PAPER_TEST_SIZES))
    for name, bad, valid in (("table", bad_table, list(PAPER_PROTOCOL)), ("position", bad_position, POSITIONS),
                             ("level", bad_level, PAPER_LEVELS), ("dataset", bad_dataset, list(PAPER_TEST_SIZES))):
        if bad:
            raise BadInput(f"{where}: unknown {name} {bad}; valid: {list(valid)}")
    ends = tables[tables["position"].isin(["none", "all"])]
    inconsistent = ends[ends["level"] != ends["position"].map({"none": 0, "all": 100})]
    if not inconsistent.empty:
        raise BadInput(f"{where}: position 'none' needs level 0 and 'all' level 100; rows {list(inconsistent.index)}")
    protocol = tables["table"].map(PAPER_PROTOCOL)
    frame = tables.assign(table="T" + tables["table"].astype(str), pooling=protocol.str[0], mode=protocol.str[1],
                          level=tables["level"].astype(float), seed=0, n_test=tables["dataset"].map(PAPER_TEST_SIZES),
                          f1=tables["f1"].astype(float))
    return frame[TIDY].reset_index(drop=True)


RESULT_COLUMNS = ["model", "dataset", "position", "level", "pooling", "mode", "lr", "seed", "n_test", "status",
                  "best_test_f1", "selected_test_f1", "selected_val_f1"]


def results_frame(cells: pd.DataFrame, metric: str = "best", where: str = "results") -> pd.DataFrame:
    """Our cells as a tidy frame: per (slice, setting, seed) the lr with the best score.

    ``best``: the paper's protocol, the best epoch's test F1, lr chosen by that same number.
    ``selected``: the held-out protocol, test F1 at the best validation epoch, lr chosen by validation F1.
    Rows whose F1 is NaN (diverged runs) are dropped; ``frame.attrs["notes"]`` says how many.
    """
    if metric not in METRICS:
        raise BadInput(f"metric must be one of {METRICS}, got {metric!r}")
    _require(cells, RESULT_COLUMNS, where)
    score, chooser = ("best_test_f1", "best_test_f1") if metric == "best" else ("selected_test_f1", "selected_val_f1")
    usable = cells[cells[score].notna() & cells[chooser].notna()]
    notes = []
    if len(usable) < len(cells):
        dropped = cells.loc[cells.index.difference(usable.index), "status"].value_counts()
        notes.append(f"{where}: dropped {len(cells) - len(usable)} row(s) with NaN F1 "
                     f"({', '.join(f'{status} {n}' for status, n in dropped.items())})")
    keys = ["model", "dataset", "pooling", "mode", "position", "level", "seed"]
    chosen = (usable.sort_values("lr").sort_values(chooser, ascending=False, kind="stable")  # ties: smallest lr
              .drop_duplicates(keys))
    frame = chosen.assign(table=chosen["pooling"] + "-" + chosen["mode"], f1=chosen[score].astype(float),
                          level=chosen["level"].astype(float))[TIDY]
    frame = frame.sort_values(GROUP + ["seed", "level"], kind="stable").reset_index(drop=True)
    frame.attrs["notes"] = notes
    return frame


def load_source(kind: str, path: str | Path | None = None, metric: str = "best") -> pd.DataFrame:
    """The tidy frame of the paper's tables (``paper``) or of our results (``results``)."""
    if kind not in SOURCES:
        raise BadInput(f"source must be one of {SOURCES}, got {kind!r}")
    path = Path(path) if path is not None else (PAPER_TABLES if kind == "paper" else RESULTS)
    hint = ("run `dvc repro` first (or give --results PATH)" if kind == "results"
            else "restore claims/paper_tables.csv")
    numeric = ("level", "lr", "seed", "n_test", "best_test_f1", "selected_test_f1", "selected_val_f1", "table", "f1")
    table = read_csv(path, f"{kind} file", hint, numeric=numeric)  # missing, empty, not a CSV: one BadResults
    frame = paper_frame(table, str(path)) if kind == "paper" else results_frame(table, metric, str(path))
    frame.attrs.setdefault("notes", [])
    frame.attrs.update(source=kind, path=str(path), metric=metric)
    return frame


# ---------------------------------------------------------------- data integrity


@dataclass(frozen=True)
class Finding:
    """A suspected transcription or copy error (or a degenerate run) in a table of F1 values."""

    kind: str  # out_of_range | copied_run | repeated_value
    where: str
    values: tuple[float, ...]
    message: str


def _series(tables: pd.DataFrame) -> dict[str, dict[str, float]]:
    """F1 per series (a table's column pair for one model and dataset) by setting, in reading order."""
    keys = [k for k in ("table", "model", "dataset") if k in tables.columns]
    keys += ["seed"] if "seed" in tables.columns and tables["seed"].nunique() > 1 else []
    rows = defaultdict(list)
    for row in tables.itertuples(index=False):
        name = " ".join(f"{k}={getattr(row, k)}" for k in keys)
        rows[name].append(((row.position, float(row.level)), float(row.f1)))
    return {name: {setting_label(s): f1 for s, f1 in sorted(found, key=lambda r: _order(r[0]))}
            for name, found in rows.items()}


def _runs(equal: list[bool], min_run: int) -> list[tuple[int, int]]:
    """(start, stop) of every stretch of at least ``min_run`` consecutive True values."""
    edges = np.diff(np.concatenate([[0], np.array(equal, dtype=int), [0]]))
    return [(int(a), int(b)) for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))
            if b - a >= min_run]


def integrity_findings(tables: pd.DataFrame, min_run: int = 3) -> list[Finding]:
    """Values outside 0-100; runs of >= ``min_run`` identical values in the same positions of two series
    (two models, tables or datasets); a value repeated >= ``min_run`` times within one series."""
    _require(tables, ["position", "level", "f1"], "integrity check")
    findings = []
    series = _series(tables)
    for name, values in series.items():
        findings += [Finding("out_of_range", f"{name} {label}", (v,), f"F1 {v} is outside 0-100 (or missing)")
                     for label, v in values.items() if not 0 <= v <= 100]
        for value in sorted({v for v in values.values() if not math.isnan(v)}):
            labels = [label for label, v in values.items() if v == value]
            if len(labels) >= min_run:
                findings.append(Finding("repeated_value", f"{name}: {', '.join(labels)}", (value,) * len(labels),
                                        f"{value:g} appears {len(labels)} times in one series: a copied value, or a "
                                        "degenerate run (e.g. constant predictions) reported for several settings"))
    for (name_a, a), (name_b, b) in combinations(series.items(), 2):
        common = [label for label in a if label in b]
        equal = [a[label] == b[label] for label in common]
        for start, stop in _runs(equal, min_run):
            labels = common[start:stop]
            findings.append(Finding("copied_run", f"{name_a} vs {name_b}: {labels[0]}..{labels[-1]}",
                                    tuple(a[label] for label in labels),
                                    f"{stop - start} consecutive identical values ({sum(equal)} of {len(common)} "
                                    "shared settings equal): likely copied from one series into the other"))
    return findings


# ---------------------------------------------------------------- machine-readable verdicts


def verdicts_document(comparisons: list[Comparison], *, source: str, path: str = "", metric: str = "",
                      findings: Iterable[Finding] = (), notes: Iterable[str] = (),
                      rule: DecisionRule = DEFAULT_RULE) -> dict:
    """The verdicts as JSON-ready data for the report: aggregate per claim, every comparison, integrity."""
    return {
        "source": source, "path": path, "metric": metric, "rule": asdict(rule),
        "claims": {claim: {**asdict(a), "verdict": str(a.verdict), "line": a.line()}
                   for claim, a in aggregate(comparisons, rule).items()},
        "comparisons": [c.to_dict() for c in comparisons],
        "integrity": [asdict(f) for f in findings],
        "notes": list(notes),
    }
