"""The paper's findings as verdicts: each claim a list of comparisons, grouped into the strata it speaks about.

Four claims (Section 4.2 and 4.3), and a fifth, the paper's reading of its Figure 1, made testable:

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
5. ``separation-order``: "the clean and top-corrupted models keep clear label clusters, the bottom and
   fully corrupted ones don't" (Figure 1), measured: the final layer's label separation after
   fine-tuning (``harness.analysis``) orders clean >= top-k > bottom-k >= 100%. Strata: the three
   steps. Separation is in percent of the clean model's (its units are the space's own); ">=" is
   SUPPORTED by a significant gap or by equivalence within ``separation_margin``. The paper prints
   only pictures, so on its source this claim has no numbers.

Claims 1-3 are stated for full fine-tuning (Tables 2, 3 and 5), so they are evaluated on ``mode ==
full``; probe slices enter claim 4. Strata pool every model, dataset and table. One comparison's
verdict, a stratum's and a claim's headline (its weakest stratum) follow ``harness.decision``.

Our grid's comparisons from a slice that the convergence diagnostic (``harness.convergence``) finds
under-trained are PROVISIONAL, and so is every claim verdict that rests on one.

Where the numbers come from is ``harness.sources``; how comparisons become a claim's verdict is
``harness.verdicts``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from harness.decision import DEFAULT_RULE, DecisionRule, Verdict, decide, resampled_p_values
from harness.sources import GROUP, POSITIONS, SLICE_KEY, TIDY


CLAIMS = ("no-complete-recovery", "monotone-degradation", "bottom-worse-than-top", "probe-instability",
          "separation-order")


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


# ---------------------------------------------------------------- claim 5: Figure 1's reading, measured

# (stratum, low, high, weak): the prediction separation(low) < separation(high), or <= where weak
SEPARATION_ORDER = (("top ≤ clean", "top", "clean", True), ("bottom < top", "bottom", "top", False),
                    ("100% ≤ bottom", "100%", "bottom", True))


def separation_order(separation: pd.DataFrame | None, source: str, rule: DecisionRule = DEFAULT_RULE) -> list[Comparison]:
    """Claim 5 on the final layer's separation (``harness.sources.load_analysis``: setting, seed, separation)."""
    ids = {"table": "analysis", "model": "-", "dataset": "-"}
    if separation is None or separation.empty:
        why = ("the paper prints only pictures (Figure 1): it gives no numbers to test" if source == "paper" else
               "no representation analysis in this source (a profile without `analysis:`, or analysis.csv missing)")
        return [Comparison(CLAIMS[4], {**ids, "comparison": "nothing"}, {}, Verdict.INCONCLUSIVE, why, source, "nothing")]
    ids = {**ids, "model": separation.attrs.get("model", "-"), "dataset": separation.attrs.get("dataset", "-")}
    runs = {setting: dict(zip(piece["seed"].astype(int), piece["separation"].astype(float)))
            for setting, piece in separation.groupby("setting")}
    clean = float(np.mean(list(runs.get("clean", {}).values()) or [math.nan]))
    found = []
    for stratum, low, high, weak in SEPARATION_ORDER:
        case = {**ids, "comparison": f"{low}<{'=' if weak else ''}{high}"}
        common = {"source": source, "stratum": stratum}
        missing = [s for s in (low, high) if s not in runs]
        paired = set(runs.get(low, {})) & set(runs.get(high, {}))
        if missing or len(paired) < 2 or not clean > 0:
            why = (f"no analysed cell for {' and '.join(missing)}" if missing else
                   f"{len(paired)} seed(s) in common: a separation verdict needs >= 2 (margins have no test-set noise "
                   "model)" if len(paired) < 2 else
                   "no label pair is linearly separable in the clean model's final layer: the measure is 0 and "
                   "cannot order the settings at this size")
            found.append(Comparison(CLAIMS[4], case, {}, Verdict.INCONCLUSIVE, why, **common))
            continue
        percent = {s: {seed: 100.0 * v / clean for seed, v in runs[s].items()} for s in (low, high)}
        decision = decide(percent[low], percent[high], math.inf, rule.for_separation(),
                          equivalence_supports=weak)
        values = {f"{low} %": decision.values.get("low", math.nan), f"{high} %": decision.values.get("high", math.nan),
                  **{k: v for k, v in decision.values.items() if k not in ("low", "high")}}
        detail = (f"final-layer separation in % of clean: {low} {values[f'{low} %']:.1f}, {high} "
                  f"{values[f'{high} %']:.1f}: {decision.detail}")
        found.append(Comparison(CLAIMS[4], case, values, decision.verdict, detail, mdd=decision.mdd, **common))
    return found


def evaluate_claims(frame: pd.DataFrame, source_kind: str, rule: DecisionRule = DEFAULT_RULE,
                    under_trained: Collection[tuple] = (), separation: pd.DataFrame | None = None) -> list[Comparison]:
    """Every comparison of the five claims; a claim with nothing to compare gets one INCONCLUSIVE
    comparison saying so (an empty claim must not look like a pass).

    ``frame``: the tidy F1 frame (``harness.sources``); ``separation``: the final layer's separation per
    setting and seed (``harness.sources.load_analysis``), for claim 5. ``under_trained``: slice keys
    (model, dataset, pooling, mode) whose comparisons are PROVISIONAL.
    """
    under_trained = {tuple(map(str, key)) for key in under_trained}
    pieces = list(slices(frame))
    found = [c for piece in pieces if piece.keys["mode"] == "full" for claim in ORDERING
             for c in ordering_comparisons(claim, piece, rule, source_kind, piece.slice_key in under_trained)]
    found += probe_instability(pieces, rule, source_kind, under_trained)
    found += separation_order(separation, source_kind, rule)
    for claim in CLAIMS:
        if not any(c.claim == claim for c in found):
            what = "linear-probe slice" if claim == CLAIMS[3] else "full fine-tuning slice with corrupted settings"
            found.append(Comparison(claim, {"table": "-", "model": "-", "dataset": "-", "comparison": "nothing"}, {},
                                    Verdict.INCONCLUSIVE, f"no {what} in this source", source_kind, "nothing"))
    return sorted(found, key=lambda c: CLAIMS.index(c.claim))  # stable: each claim's comparisons in their order
