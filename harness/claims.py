"""The paper's findings as verdicts: each claim a list of comparisons, grouped into the strata it speaks about.

Four claims (Section 4.2 and 4.3):

1. ``no-complete-recovery``: every corrupted setting scores below the clean model. Strata: the
   corruption settings (bottom 25%, top 25%, ..., 100%): the claim must hold for the mildest one
   (top 25%) as for the harshest, so the mild settings cannot hide behind the easy ones.
2. ``monotone-degradation``: F1 falls along 0 -> bottom levels -> 100% and 0 -> top levels -> 100%
   (consecutive pairs). Strata: the steps (clean -> bottom 25%, bottom 25% -> bottom 50%, ...).
3. ``bottom-worse-than-top``: at equal level, bottom corruption scores below top. Strata: the levels.
4. ``probe-instability``: the linear probe (Table 4) breaks the orderings of claims 1-3 more often
   than full fine-tuning of the same model on the same dataset (Table 2), and with seeds, varies
   more from seed to seed. Strata: the two measures. Both are tested by resampling (over seeds, or,
   with one run per value, over the test set's sampling noise), which keeps the dependence between
   comparisons that share a run (every comparison of claim 1 shares the clean run).

Claims 1-3 are stated for full fine-tuning (Tables 2, 3 and 5), so they are evaluated on ``mode ==
full``; probe slices enter claim 4. Strata pool every model, dataset and table. One comparison's
verdict, a stratum's and a claim's headline (its weakest stratum) follow ``harness.decision``.

Our grid's comparisons from a slice that the convergence diagnostic (``harness.convergence``) finds
under-trained are PROVISIONAL, and so is every claim verdict that rests on one.

Sources (``load_source``): ``paper`` (claims/paper_tables.csv, the transcribed Tables 2-5) or
``results`` (results/cells.csv, one row per cell, the lr chosen once per setting over its seeds by
``harness.aggregate.choose_lr``). Both become one tidy frame:
``table, model, dataset, pooling, mode, position, level, seed, n_test, f1``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from harness import BadInput
from harness.decision import (DEFAULT_RULE, DecisionRule, StratumVerdict, Verdict, decide, resampled_p_values,
                              stratum_verdict, weakest)
from harness.results import read_csv

if TYPE_CHECKING:
    from harness.integrity import Finding


REPO = Path(__file__).resolve().parent.parent
PAPER_TABLES = REPO / "claims" / "paper_tables.csv"
RESULTS = REPO / "results" / "cells.csv"

CLAIMS = ("no-complete-recovery", "monotone-degradation", "bottom-worse-than-top", "probe-instability")
GROUP = ["table", "model", "dataset", "pooling", "mode"]
SLICE_KEY = ["model", "dataset", "pooling", "mode"]  # what the convergence diagnostic names a slice by
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
    stratum: str = ""
    provisional: bool = False  # drawn from an under-trained slice
    mdd: float | None = None  # minimum detectable difference (INCONCLUSIVE: underpowered or equal?)

    @property
    def id(self) -> str:
        """Readable pytest id, e.g. ``T2/base/sst2/bottom25<clean``."""
        return "/".join(self.ids[key] for key in ("table", "model", "dataset", "comparison"))

    def to_dict(self) -> dict:
        return {"claim": self.claim, "id": self.id, **asdict(self), "verdict": str(self.verdict)}


Setting = tuple[str, float]  # (position, level)
CLEAN: Setting = ("none", 0.0)


def setting_label(setting: Setting) -> str:
    """Compact label for ids: clean, bottom25, top33.3, all."""
    position, level = setting
    return {"none": "clean", "all": "all"}.get(position, f"{position}{level:.3g}")


def stratum_label(setting: Setting) -> str:
    """Readable label for strata: clean, bottom 25%, top 33%, 100%."""
    position, level = setting
    return {"none": "clean", "all": "100%"}.get(position, f"{position} {level:.0f}%")


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

    @property
    def slice_key(self) -> tuple[str, ...]:
        return tuple(self.keys[k] for k in SLICE_KEY)


def slices(frame: pd.DataFrame) -> Iterator[Slice]:
    """The tidy frame's slices, in the frame's order (plain dicts: thousands of comparisons stay fast)."""
    runs: dict[tuple, dict[Setting, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    n_test: dict[tuple, float] = {}
    for row in frame[TIDY].itertuples(index=False):
        key = tuple(str(getattr(row, k)) for k in GROUP)
        runs[key][(row.position, float(row.level))][int(row.seed)] = float(row.f1)
        n_test[key] = min(n_test.get(key, math.inf), float(row.n_test))
    for key, by_setting in runs.items():
        yield Slice(dict(zip(GROUP, key)), dict(by_setting), n_test[key])


# A claim's predictions on one slice: (stratum, low, high), each meaning "F1(low) < F1(high)".
Prediction = tuple[str, Setting, Setting]


def recovery_predictions(piece: Slice) -> list[Prediction]:
    """Claim 1: every corrupted setting below clean; one stratum per setting."""
    corrupted = sorted((s for s in piece.runs if s[0] != "none"), key=_order)
    return [(stratum_label(s), s, CLEAN) for s in corrupted]


def degradation_predictions(piece: Slice) -> list[Prediction]:
    """Claim 2: consecutive steps along clean -> bottom (top) levels -> 100%; one stratum per step."""
    pairs: list[tuple[Setting, Setting]] = []
    for position in ("bottom", "top"):
        chain = piece.levels("none") + piece.levels(position) + piece.levels("all")
        pairs += [pair for pair in zip(chain, chain[1:]) if pair not in pairs]  # clean -> all only once
    return [(f"{stratum_label(less)} → {stratum_label(more)}", more, less) for less, more in pairs]


def position_predictions(piece: Slice) -> list[Prediction]:
    """Claim 3: bottom below top at each level; one stratum per level."""
    levels = sorted({level for position, level in piece.runs if position in ("bottom", "top")})
    return [(f"{level:.0f}%", ("bottom", level), ("top", level)) for level in levels]


ORDERING = {CLAIMS[0]: recovery_predictions, CLAIMS[1]: degradation_predictions, CLAIMS[2]: position_predictions}


def _compare(claim: str, piece: Slice, prediction: Prediction, rule: DecisionRule, source: str,
             provisional: bool) -> Comparison:
    stratum, low, high = prediction
    ids = {**piece.keys, "comparison": f"{setting_label(low)}<{setting_label(high)}"}
    common = {"source": source, "stratum": stratum, "provisional": provisional}
    missing = [setting_label(s) for s in (low, high) if s not in piece.runs]
    if missing:
        return Comparison(claim, ids, {}, Verdict.INCONCLUSIVE, f"no run for {' and '.join(missing)}", **common)
    decision = decide(piece.runs[low], piece.runs[high], piece.n_test, rule,
                      equivalence_refutes=claim in rule.equivalence_refutes)
    if not decision.values:
        return Comparison(claim, ids, {}, decision.verdict, decision.detail, **common)
    values = dict(decision.values)
    values = {setting_label(low): values.pop("low"), setting_label(high): values.pop("high"), **values}
    scores = ", ".join(f"{setting_label(s)} {values[setting_label(s)]:.2f}" for s in (low, high))
    return Comparison(claim, ids, values, decision.verdict, f"{scores}: {decision.detail}", mdd=decision.mdd,
                      **common)


def ordering_comparisons(claim: str, piece: Slice, rule: DecisionRule = DEFAULT_RULE, source: str = "",
                         provisional: bool = False) -> list[Comparison]:
    return [_compare(claim, piece, p, rule, source, provisional) for p in ORDERING[claim](piece)]


# ---------------------------------------------------------------- claim 4: resampled instability


def _ordering_pairs(piece: Slice) -> list[tuple[Setting, Setting]]:
    """Every (low, high) prediction of claims 1-3 on the slice whose two settings both ran."""
    return [(low, high) for predict in ORDERING.values() for _, low, high in predict(piece)
            if low in piece.runs and high in piece.runs]


def _violation_share(means: dict[Setting, np.ndarray], pairs: list[tuple[Setting, Setting]]) -> np.ndarray:
    """Share of the predictions whose mean F1 goes the wrong way, for every column of ``means``."""
    wrong = np.stack([means[high] < means[low] for low, high in pairs])
    return wrong.mean(axis=0)


def _common_seeds(*pieces: Slice) -> list[int]:
    seed_sets = [set(runs) for piece in pieces for runs in piece.runs.values()]
    return sorted(set.intersection(*seed_sets)) if seed_sets else []


def _resampled_means(piece: Slice, seeds: list[int], draws: np.ndarray) -> dict[Setting, np.ndarray]:
    """Seed-mean F1 per setting for each resample; ``draws`` (resamples x n_seeds) index ``seeds``."""
    return {s: np.array([runs[seed] for seed in seeds])[draws].mean(axis=1) for s, runs in piece.runs.items()}


def _noise_means(piece: Slice, rng: np.random.Generator, resamples: int) -> dict[Setting, np.ndarray]:
    """One run per value: each value redrawn with its test-set sampling error (a lower bound on noise)."""
    means = {}
    for s, runs in piece.runs.items():
        f1 = float(np.mean(list(runs.values())))
        p = min(max(f1 / 100.0, 0.0), 1.0)
        means[s] = f1 + 100.0 * math.sqrt(p * (1 - p) / piece.n_test) * rng.standard_normal(resamples)
    return means


def _violation_rate(probe: Slice, full: Slice, ids: dict, rule: DecisionRule, source: str,
                    provisional: bool) -> Comparison:
    pairs_probe, pairs_full = _ordering_pairs(probe), _ordering_pairs(full)
    ids = {**ids, "comparison": "violation-rate"}
    common = {"source": source, "stratum": "violation rate", "provisional": provisional}
    if not pairs_probe or not pairs_full:
        return Comparison(CLAIMS[3], ids, {}, Verdict.INCONCLUSIVE, "no ordering to test in one of the two slices",
                          **common)
    observed = {name: float(_violation_share({s: np.array([np.mean(list(r.values()))]) for s, r in piece.runs.items()},
                                             pairs)[0])
                for name, piece, pairs in (("probe", probe, pairs_probe), ("full", full, pairs_full))}
    rng = np.random.default_rng(rule.resampling_seed)
    seeds = _common_seeds(probe, full)
    if len(seeds) >= 2:
        draws = rng.integers(0, len(seeds), size=(rule.resamples, len(seeds)))
        means = [_resampled_means(piece, seeds, draws) for piece in (probe, full)]
        how = f"bootstrap over {len(seeds)} seeds, resampled jointly for both slices"
    else:
        means = [_noise_means(piece, rng, rule.resamples) for piece in (probe, full)]
        how = "one run per value: parametric bootstrap of the test-set noise, a lower bound on the real noise"
    difference = _violation_share(means[0], pairs_probe) - _violation_share(means[1], pairs_full)
    statistic = observed["probe"] - observed["full"]
    p_greater, p_less = resampled_p_values(statistic, difference)
    values = {"probe_violation_share": observed["probe"], "full_violation_share": observed["full"],
              "probe_predictions": len(pairs_probe), "full_predictions": len(pairs_full),
              "p_greater": p_greater, "p_less": p_less}
    detail = (f"orderings of claims 1-3 broken (mean F1 the wrong way): probe {observed['probe']:.0%} of "
              f"{len(pairs_probe)}, full {observed['full']:.0%} of {len(pairs_full)} ({how}, {rule.resamples} "
              f"resamples: p(probe more) = {p_greater:.3g}, p(probe fewer) = {p_less:.3g})")
    return Comparison(CLAIMS[3], ids, values, rule.verdict_of(p_greater, p_less), detail, **common)


def _spread(piece: Slice, seeds: list[int], draws: np.ndarray) -> np.ndarray:
    """Mean over settings of the seeds' standard deviation, for each resample (rows of ``draws``)."""
    per_setting = [np.array([runs[seed] for seed in seeds])[draws].std(axis=1, ddof=1) for runs in piece.runs.values()]
    return np.mean(per_setting, axis=0)


def _seed_spread(probe: Slice, full: Slice, ids: dict, rule: DecisionRule, source: str,
                 provisional: bool) -> Comparison | None:
    """Seed standard deviation per setting, probe vs full: a bootstrap over seeds, resampled jointly."""
    seeds = _common_seeds(probe, full)
    if len(seeds) < 3:
        return None  # fewer than 3 seeds: a spread from 2 values cannot be resampled (the violation rate still speaks)
    settings = [s for s in probe.runs if s in full.runs]
    probe = Slice(probe.keys, {s: probe.runs[s] for s in settings}, probe.n_test)
    full = Slice(full.keys, {s: full.runs[s] for s in settings}, full.n_test)
    everything = np.arange(len(seeds))[None, :]
    observed = float(_spread(probe, seeds, everything)[0] - _spread(full, seeds, everything)[0])
    rng = np.random.default_rng(rule.resampling_seed)
    draws = rng.integers(0, len(seeds), size=(rule.resamples, len(seeds)))
    draws = draws[np.array([len(set(row)) >= 2 for row in draws])]  # a spread needs two distinct seeds
    difference = _spread(probe, seeds, draws) - _spread(full, seeds, draws)
    p_greater, p_less = resampled_p_values(observed, difference)
    probe_std, full_std = (float(_spread(p, seeds, everything)[0]) for p in (probe, full))
    values = {"probe_seed_std": probe_std, "full_seed_std": full_std, "n_settings": len(settings),
              "n_seeds": len(seeds), "p_greater": p_greater, "p_less": p_less}
    detail = (f"mean seed std probe {probe_std:.2f} vs full {full_std:.2f} over {len(settings)} settings "
              f"(bootstrap over {len(seeds)} seeds, {len(draws)} resamples with 2+ distinct seeds: "
              f"p(probe more) = {p_greater:.3g}, p(fewer) = {p_less:.3g})")
    return Comparison(CLAIMS[3], {**ids, "comparison": "seed-std"}, values, rule.verdict_of(p_greater, p_less),
                      detail, source, "seed spread", provisional)


def probe_instability(pieces: list[Slice], rule: DecisionRule = DEFAULT_RULE, source: str = "",
                      under_trained: Collection[tuple] = ()) -> list[Comparison]:
    """Linear probe less stable than full fine-tuning on the same model and dataset (Section 4.3)."""
    full = {(p.keys["model"], p.keys["dataset"], p.keys["pooling"]): p for p in pieces if p.keys["mode"] == "full"}
    found = []
    for probe in (p for p in pieces if p.keys["mode"] == "probe"):
        key = (probe.keys["model"], probe.keys["dataset"], probe.keys["pooling"])
        partner = full.get(key)
        ids = {**probe.keys, "table": probe.keys["table"] + (f"-vs-{partner.keys['table']}" if partner else "")}
        if partner is None:
            found.append(Comparison(CLAIMS[3], {**ids, "comparison": "violation-rate"}, {}, Verdict.INCONCLUSIVE,
                                    f"no full fine-tuning slice of {'/'.join(key)} to compare with", source,
                                    "violation rate"))
            continue
        provisional = probe.slice_key in under_trained or partner.slice_key in under_trained
        found.append(_violation_rate(probe, partner, ids, rule, source, provisional))
        spread = _seed_spread(probe, partner, ids, rule, source, provisional)
        found += [spread] if spread else []
    return found


def evaluate_claims(frame: pd.DataFrame, source_kind: str, rule: DecisionRule = DEFAULT_RULE,
                    under_trained: Collection[tuple] = ()) -> list[Comparison]:
    """Every comparison of the four claims on a tidy frame; a claim with nothing to compare gets one
    INCONCLUSIVE comparison saying so (an empty claim must not look like a pass).

    ``under_trained``: slice keys (model, dataset, pooling, mode) whose comparisons are PROVISIONAL.
    """
    under_trained = {tuple(map(str, key)) for key in under_trained}
    pieces = list(slices(frame))
    found = [c for piece in pieces if piece.keys["mode"] == "full" for claim in ORDERING
             for c in ordering_comparisons(claim, piece, rule, source_kind, piece.slice_key in under_trained)]
    found += probe_instability(pieces, rule, source_kind, under_trained)
    for claim in CLAIMS:
        if not any(c.claim == claim for c in found):
            what = "linear-probe slice" if claim == CLAIMS[3] else "full fine-tuning slice with corrupted settings"
            found.append(Comparison(claim, {"table": "-", "model": "-", "dataset": "-", "comparison": "nothing"}, {},
                                    Verdict.INCONCLUSIVE, f"no {what} in this source", source_kind, "nothing"))
    return found


# ---------------------------------------------------------------- claim verdicts


@dataclass(frozen=True)
class ClaimVerdict:
    """A claim's headline (its weakest stratum), its strata, and the comparison counts."""

    claim: str
    verdict: Verdict
    supported: int
    contradicted: int
    inconclusive: int
    detail: str
    strata: tuple[StratumVerdict, ...] = ()
    provisional: bool = False
    provisional_detail: str = ""

    @property
    def total(self) -> int:
        return self.supported + self.contradicted + self.inconclusive

    def line(self) -> str:
        return (f"{self.claim}: {self.verdict} (supported {self.supported} / contradicted {self.contradicted} / "
                f"inconclusive {self.inconclusive})")

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": str(self.verdict), "line": self.line(),
                "strata": [{**asdict(s), "verdict": str(s.verdict)} for s in self.strata]}


def aggregate(comparisons: Iterable[Comparison], rule: DecisionRule = DEFAULT_RULE) -> dict[str, ClaimVerdict]:
    """One verdict per claim (in ``CLAIMS`` order; claims without comparisons left out): its weakest stratum."""
    comparisons = list(comparisons)
    verdicts = {}
    for claim in CLAIMS:
        mine = [c for c in comparisons if c.claim == claim]
        if not mine:
            continue
        by_stratum: dict[str, list[Verdict]] = defaultdict(list)
        for c in mine:
            by_stratum[c.stratum or "all comparisons"].append(c.verdict)
        strata = tuple(stratum_verdict(name, found, rule) for name, found in by_stratum.items())
        decisive = weakest(strata)
        counts = [sum(c.verdict is v for c in mine) for v in (Verdict.SUPPORTED, Verdict.CONTRADICTED,
                                                               Verdict.INCONCLUSIVE)]
        detail = f"weakest of {len(strata)} strata: {decisive.name} ({decisive.detail})"
        provisional = [c for c in mine if c.provisional]
        slices_named = sorted({"/".join(c.ids[k] for k in ("model", "dataset")) + f" {c.ids['table']}"
                               for c in provisional})
        verdicts[claim] = ClaimVerdict(
            claim, decisive.verdict, *counts, detail, strata, bool(provisional),
            f"PROVISIONAL: {len(provisional)} of {len(mine)} comparisons come from under-trained slices "
            f"({', '.join(slices_named)})" if provisional else "")
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
    """Our cells as a tidy frame, at the one lr per setting that ``aggregate.choose_lr`` picks over its seeds.

    ``best``: the paper's protocol, the best epoch's test F1, lr chosen by its seed mean.
    ``selected``: the held-out protocol, test F1 at the best validation epoch, lr chosen by the seed mean of
    validation F1. The seeds of a setting share their lr, so seed-paired comparisons stay paired.
    Rows whose F1 is NaN (diverged runs) are dropped; ``frame.attrs["notes"]`` says how many.
    """
    from harness.aggregate import SELECTION, choose_lr

    if metric not in METRICS:
        raise BadInput(f"metric must be one of {METRICS}, got {metric!r}")
    _require(cells, RESULT_COLUMNS, where)
    score = SELECTION[metric].score
    chosen = choose_lr(cells, metric)
    usable = chosen[chosen[score].notna()]
    notes = []
    if len(usable) < len(chosen):
        dropped = chosen.loc[chosen.index.difference(usable.index), "status"].value_counts()
        notes.append(f"{where}: dropped {len(chosen) - len(usable)} run(s) with NaN F1 at the chosen lr "
                     f"({', '.join(f'{status} {n}' for status, n in dropped.items())})")
    frame = usable.assign(table=usable["pooling"] + "-" + usable["mode"], f1=usable[score].astype(float),
                          level=usable["level"].astype(float))[TIDY]
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


# ---------------------------------------------------------------- machine-readable verdicts


def verdicts_document(comparisons: list[Comparison], *, source: str, path: str = "", metric: str = "",
                      findings: Iterable[Finding] = (), notes: Iterable[str] = (),
                      rule: DecisionRule = DEFAULT_RULE, convergence: list[dict] | None = None) -> dict:
    """The verdicts as JSON-ready data for the report: per claim (headline, strata), every comparison, integrity."""
    return {
        "source": source, "path": path, "metric": metric, "rule": asdict(rule),
        "claims": {claim: verdict.to_dict() for claim, verdict in aggregate(comparisons, rule).items()},
        "comparisons": [c.to_dict() for c in comparisons],
        "integrity": [asdict(f) for f in findings],
        "convergence": convergence or [],
        "notes": list(notes),
    }
