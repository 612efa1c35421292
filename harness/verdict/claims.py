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
   fine-tuning (``harness.beyond.analysis``) orders clean >= top-k > bottom-k >= 100%. Strata: the three
   steps. Separation is in percent of the clean model's (its units are the space's own); ">=" is
   SUPPORTED by a significant gap or by equivalence within ``separation_margin``. The paper prints
   only pictures, so on its source this claim has no numbers.

Claims 1-3 are stated for full fine-tuning (Tables 2, 3 and 5), so they are evaluated on ``mode ==
full``; probe slices enter claim 4. Strata pool every model, dataset and table. One comparison's
verdict, a stratum's and a claim's headline (its weakest stratum) follow ``harness.verdict.decision``.

Our grid's comparisons from a slice that the convergence diagnostic (``harness.verdict.convergence``) finds
under-trained are PROVISIONAL, and so is every claim verdict that rests on one.

Where the numbers come from is ``harness.verdict.sources``; how comparisons become a claim's verdict is
``harness.verdict.verdicts``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from harness.verdict.decision import (
    DEFAULT_RULE,
    DecisionRule,
    Runs,
    Verdict,
    Vote,
    claim_verdict,
    decide,
    resampled_p_values,
)
from harness.verdict.sources import GROUP, POSITIONS, SLICE_KEY

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
    p_support: float = 1.0
    p_contradict: float = 1.0

    @property
    def id(self) -> str:
        """Readable pytest id, e.g. ``T2/base/sst2/bottom25<clean``."""
        return "/".join(self.ids[key] for key in ("table", "model", "dataset", "comparison"))

    @property
    def unit(self) -> str:
        """What votes once: the same model, dataset and comparison read from two poolings or two copies of
        a table is one piece of evidence (``harness.verdict.decision.claim_verdict``)."""
        return "/".join(self.ids[key] for key in ("model", "dataset", "comparison"))

    def vote(self) -> Vote:
        return Vote(self.stratum, self.unit, self.verdict, self.p_support, self.p_contradict, bool(self.values))

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
    """One (table, model, dataset, pooling, mode): F1 by seed for each corruption setting, and where the
    records hold them, each run's test predictions on the slice's one shared test set (``labels``)."""

    keys: dict[str, str]
    runs: dict[Setting, dict[int, float]] = field(repr=False)  # setting -> seed -> F1
    n_test: float
    predictions: dict[Setting, dict[int, np.ndarray]] | None = field(default=None, repr=False)
    labels: np.ndarray | None = field(default=None, repr=False)
    floor: float | None = None  # the majority-class F1, where known

    def evidence(self, setting: Setting) -> Runs:
        return Runs(self.runs[setting], self.predictions.get(setting) if self.predictions else None)

    def levels(self, position: str) -> list[Setting]:
        return sorted((s for s in self.runs if s[0] == position), key=lambda s: s[1])

    @property
    def slice_key(self) -> tuple[str, ...]:
        return tuple(self.keys[k] for k in SLICE_KEY)


def slices(frame: pd.DataFrame, predictions: Mapping[str, Prediction] | None = None) -> Iterator[Slice]:
    """The tidy frame's slices, in the frame's order (plain dicts: thousands of comparisons stay fast).

    ``predictions``: identity -> (test labels, predicted labels) of the frame's rows
    (``harness.verdict.sources.load_predictions``); a slice gets them only when every one of its runs has them
    on one and the same test set, else its test-set term is approximated from ``n_test``.
    """
    predictions = predictions or {}
    runs: dict[tuple, dict[Setting, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    predicted: dict[tuple, dict[Setting, dict[int, np.ndarray]]] = defaultdict(lambda: defaultdict(dict))
    labels: dict[tuple, list[np.ndarray]] = defaultdict(list)
    n_test: dict[tuple, float] = {}
    floor: dict[tuple, list[float]] = defaultdict(list)
    has_identity, has_floor = "identity" in frame.columns, "majority_f1" in frame.columns
    for row in frame.itertuples(index=False):
        key = tuple(str(getattr(row, k)) for k in GROUP)
        setting, seed = (row.position, float(row.level)), int(row.seed)
        runs[key][setting][seed] = float(row.f1)
        n_test[key] = min(n_test.get(key, math.inf), float(row.n_test))
        if has_floor and math.isfinite(float(row.majority_f1)):
            floor[key].append(float(row.majority_f1))
        found = predictions.get(str(row.identity)) if has_identity else None
        if found is not None:
            labels[key].append(found[0])
            predicted[key][setting][seed] = found[1]
    for key, by_setting in runs.items():
        n_runs = sum(len(seeds) for seeds in by_setting.values())
        shared = labels[key][0] if labels[key] else None
        complete = (len(labels[key]) == n_runs and shared is not None
                    and all(np.array_equal(shared, other) for other in labels[key]))
        yield Slice(dict(zip(GROUP, key)), dict(by_setting), n_test[key],
                    {s: dict(p) for s, p in predicted[key].items()} if complete else None,
                    shared if complete else None, max(floor[key]) if floor[key] else None)


# A run's evidence: (the test set's true labels, the run's predicted labels).
Prediction = tuple[np.ndarray, np.ndarray]
# A claim's predictions on one slice: (stratum, low, high), each meaning "F1(low) < F1(high)".
Ordering = tuple[str, Setting, Setting]


def recovery_predictions(piece: Slice) -> list[Ordering]:
    """Claim 1: every corrupted setting below clean; one stratum per setting."""
    corrupted = sorted((s for s in piece.runs if s[0] != "none"), key=_order)
    return [(stratum_label(s), s, CLEAN) for s in corrupted]


def degradation_predictions(piece: Slice) -> list[Ordering]:
    """Claim 2: consecutive steps along clean -> bottom (top) levels -> 100%; one stratum per step."""
    pairs: list[tuple[Setting, Setting]] = []
    for position in ("bottom", "top"):
        chain = piece.levels("none") + piece.levels(position) + piece.levels("all")
        pairs += [pair for pair in zip(chain, chain[1:]) if pair not in pairs]  # clean -> all only once
    return [(f"{stratum_label(less)} → {stratum_label(more)}", more, less) for less, more in pairs]


def position_predictions(piece: Slice) -> list[Ordering]:
    """Claim 3: bottom below top at each level; one stratum per level."""
    levels = sorted({level for position, level in piece.runs if position in ("bottom", "top")})
    return [(f"{level:.0f}%", ("bottom", level), ("top", level)) for level in levels]


ORDERING = {CLAIMS[0]: recovery_predictions, CLAIMS[1]: degradation_predictions, CLAIMS[2]: position_predictions}


def _compare(claim: str, piece: Slice, prediction: Ordering, rule: DecisionRule, source: str,
             provisional: bool) -> Comparison:
    stratum, low, high = prediction
    ids = {**piece.keys, "comparison": f"{setting_label(low)}<{setting_label(high)}"}
    common = {"source": source, "stratum": stratum, "provisional": provisional}
    missing = [setting_label(s) for s in (low, high) if s not in piece.runs]
    if missing:
        return Comparison(claim, ids, {}, Verdict.INCONCLUSIVE, f"no run for {' and '.join(missing)}", **common)
    # claims 1 and 2 predict a loss beyond the margin; claim 3 an order (``harness.verdict.decision``)
    boundary = rule.equivalence_margin if claim in rule.equivalence_refutes else 0.0
    decision = decide(piece.evidence(low), piece.evidence(high), piece.n_test, rule, boundary=boundary,
                      labels=piece.labels, floor=piece.floor)
    if not decision.values:
        return Comparison(claim, ids, {}, decision.verdict, decision.detail, **common)
    values = dict(decision.values)
    values = {setting_label(low): values.pop("low"), setting_label(high): values.pop("high"), **values}
    scores = ", ".join(f"{setting_label(s)} {values[setting_label(s)]:.2f}" for s in (low, high))
    return Comparison(claim, ids, values, decision.verdict, f"{scores}: {decision.detail}", mdd=decision.mdd,
                      p_support=decision.p_support, p_contradict=decision.p_contradict, **common)


def ordering_comparisons(claim: str, piece: Slice, rule: DecisionRule = DEFAULT_RULE, source: str = "",
                         provisional: bool = False) -> list[Comparison]:
    return [_compare(claim, piece, p, rule, source, provisional) for p in ORDERING[claim](piece)]


# ---------------------------------------------------------------- claim 4: tests valid at 3 seeds


def _ordering_pairs(piece: Slice) -> list[tuple[Setting, Setting]]:
    """Every (low, high) prediction of claims 1-3 on the slice whose two settings both ran, each once
    (claims 1 and 2 both predict clean above the first level: one ordering, one vote)."""
    pairs = [(low, high) for predict in ORDERING.values() for _, low, high in predict(piece)
             if low in piece.runs and high in piece.runs]
    return list(dict.fromkeys(pairs))


def _violation_share(means: dict[Setting, np.ndarray], pairs: list[tuple[Setting, Setting]]) -> np.ndarray:
    """Share of the predictions whose F1 goes the wrong way, for every column of ``means``."""
    wrong = np.stack([means[high] < means[low] for low, high in pairs])
    return wrong.mean(axis=0)


def _common_seeds(*pieces: Slice) -> list[int]:
    seed_sets = [set(runs) for piece in pieces for runs in piece.runs.values()]
    return sorted(set.intersection(*seed_sets)) if seed_sets else []


def sign_flip_p_values(differences: np.ndarray) -> tuple[float, float]:
    """Exact one-sided p-values of 'mean > 0' and 'mean < 0' over every sign pattern of paired differences
    (2^k patterns for k seeds: with 3 seeds no p-value goes below 1/8)."""
    k = len(differences)
    signs = np.array(np.meshgrid(*[[1.0, -1.0]] * k)).reshape(k, -1).T  # (2^k, k)
    flipped = (signs * differences).mean(axis=1)
    observed = float(differences.mean())
    eps = 1e-12  # ties count on both sides
    return float(np.mean(flipped >= observed - eps)), float(np.mean(flipped <= observed + eps))


def _noise_means(piece: Slice, rng: np.random.Generator, resamples: int, run_sd: float) -> dict[Setting, np.ndarray]:
    """One run per value: each value redrawn with the assumed run-to-run SD and its test-set error."""
    means = {}
    for s, runs in piece.runs.items():
        f1 = float(np.mean(list(runs.values())))
        p = min(max(f1 / 100.0, 0.0), 1.0)
        sd = math.sqrt(run_sd ** 2 + 1e4 * p * (1 - p) / piece.n_test)
        means[s] = f1 + sd * rng.standard_normal(resamples)
    return means


def _violation_rate(probe: Slice, full: Slice, ids: dict, rule: DecisionRule, source: str,
                    provisional: bool) -> Comparison:
    pairs_probe, pairs_full = _ordering_pairs(probe), _ordering_pairs(full)
    ids = {**ids, "comparison": "violation-rate"}
    common = {"source": source, "stratum": "violation rate", "provisional": provisional}
    if not pairs_probe or not pairs_full:
        return Comparison(CLAIMS[3], ids, {}, Verdict.INCONCLUSIVE, "no ordering to test in one of the two slices",
                          **common)
    seeds = _common_seeds(probe, full)
    if len(seeds) >= 2:
        # per seed: the share of orderings that seed's runs break, probe minus full; seeds are the unit
        per_seed = [{s: np.array([runs[seed] for seed in seeds]) for s, runs in piece.runs.items()}
                    for piece in (probe, full)]
        shares = [_violation_share(per_seed[0], pairs_probe), _violation_share(per_seed[1], pairs_full)]
        p_support, p_contradict = sign_flip_p_values(shares[0] - shares[1])
        observed = {"probe": float(shares[0].mean()), "full": float(shares[1].mean())}
        how = (f"per seed, exact sign-flip test over {len(seeds)} paired seeds: no p below "
               f"{2.0 ** -len(seeds):.3g}" + (f", so {len(seeds)} seeds cannot decide at alpha = {rule.alpha:g} "
                                              f"(5 can)" if 2.0 ** -len(seeds) >= rule.alpha else ""))
    else:
        observed = {name: float(_violation_share({s: np.array([np.mean(list(r.values()))]) for s, r in
                                                  piece.runs.items()}, pairs)[0])
                    for name, piece, pairs in (("probe", probe, pairs_probe), ("full", full, pairs_full))}
        rng = np.random.default_rng(rule.resampling_seed)
        means = [_noise_means(piece, rng, rule.resamples, rule.assumed_run_sd) for piece in (probe, full)]
        difference = _violation_share(means[0], pairs_probe) - _violation_share(means[1], pairs_full)
        p_support, p_contradict = resampled_p_values(observed["probe"] - observed["full"], difference)
        how = (f"one run per value: {rule.resamples} parametric resamples with run-to-run SD "
               f"{rule.assumed_run_sd:g} assumed and the test-set error")
    values = {"probe_violation_share": observed["probe"], "full_violation_share": observed["full"],
              "probe_predictions": len(pairs_probe), "full_predictions": len(pairs_full),
              "p_support": p_support, "p_contradict": p_contradict}
    detail = (f"orderings of claims 1-3 broken: probe {observed['probe']:.0%} of {len(pairs_probe)}, full "
              f"{observed['full']:.0%} of {len(pairs_full)} ({how}: p(probe more) = {p_support:.3g}, "
              f"p(probe fewer) = {p_contradict:.3g})")
    return Comparison(CLAIMS[3], ids, values, rule.verdict_of(p_support, p_contradict), detail,
                      p_support=p_support, p_contradict=p_contradict, **common)


def spread_f_test(probe_var: float, full_var: float, df: int, rule: DecisionRule) -> tuple[float, float, float]:
    """One-sided p-values of 'probe varies more' and 'less' (F on ``df``, ``df``), and the SD ratio the
    test detects at ``rule.power``."""
    f = stats.f(df, df)
    ratio = probe_var / full_var if full_var > 0 else (math.inf if probe_var > 0 else 1.0)
    detectable = math.sqrt(f.ppf(1 - rule.alpha) / f.ppf(1 - rule.power))
    return float(f.sf(ratio)), float(f.cdf(ratio)), detectable


def _seed_spread(probe: Slice, full: Slice, ids: dict, rule: DecisionRule, source: str,
                 provisional: bool) -> Comparison | None:
    """Seed variance per setting, probe vs full, pooled over settings: an F-test on the df of one setting."""
    seeds = _common_seeds(probe, full)
    if len(seeds) < 2:
        return None  # one run per value has no spread (the violation rate still speaks)
    settings = [s for s in probe.runs if s in full.runs]
    variance = {name: float(np.mean([np.var([piece.runs[s][seed] for seed in seeds], ddof=1) for s in settings]))
                for name, piece in (("probe", probe), ("full", full))}
    # The settings share their seeds (data order, head init), so their variances are not independent:
    # the pooled variance is credited with one setting's k - 1 df, the honest floor.
    df = len(seeds) - 1
    p_support, p_contradict, detectable = spread_f_test(variance["probe"], variance["full"], df, rule)
    probe_sd, full_sd = math.sqrt(variance["probe"]), math.sqrt(variance["full"])
    values = {"probe_seed_sd": probe_sd, "full_seed_sd": full_sd, "n_settings": len(settings), "n_seeds": len(seeds),
              "df": df, "detectable_sd_ratio": detectable, "p_support": p_support, "p_contradict": p_contradict}
    verdict = rule.verdict_of(p_support, p_contradict)
    detail = (f"seed SD pooled over {len(settings)} settings: probe {probe_sd:.2f} vs full {full_sd:.2f} (F-test on "
              f"{df}, {df} df, settings sharing seeds: p(probe more) = {p_support:.3g}, p(less) = {p_contradict:.3g})")
    if verdict is Verdict.INCONCLUSIVE:
        detail += f"; detectable at 80% power: an SD ratio of {detectable:.2g} either way"
    return Comparison(CLAIMS[3], {**ids, "comparison": "seed-sd"}, values, verdict, detail, source, "seed spread",
                      provisional, p_support=p_support, p_contradict=p_contradict)


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
    """Claim 5 on the final layer's separation (``harness.verdict.sources.load_analysis``: setting, seed, separation)."""
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
        # a weak order ("<=") holds unless low exceeds high by more than the margin; a strict one needs a gap.
        # Separation 0 is the measure's floor (no label pair separable): two zeros order nothing.
        decision = decide(percent[low], percent[high], math.inf, rule.for_separation(),
                          boundary=-rule.separation_margin if weak else 0.0, floor=0.0, run_sd=None)
        values = {f"{low} %": decision.values.get("low", math.nan), f"{high} %": decision.values.get("high", math.nan),
                  **{k: v for k, v in decision.values.items() if k not in ("low", "high")}}
        detail = (f"final-layer separation in % of clean: {low} {values[f'{low} %']:.1f}, {high} "
                  f"{values[f'{high} %']:.1f}: {decision.detail}")
        found.append(Comparison(CLAIMS[4], case, values, decision.verdict, detail, mdd=decision.mdd,
                                p_support=decision.p_support, p_contradict=decision.p_contradict, **common))
    return found


def votes_of(comparisons: list[Comparison]) -> list[Vote]:
    """Each comparison's vote, where identical evidence votes once: the same comparison of the same table and
    dataset with the same two values under another model is a copied run (the paper's Table 3 prints
    BERT-base's IMDB values again as BERT-large's, ``harness.verdict.integrity``), not a second observation."""
    first_unit: dict[tuple, str] = {}
    found = []
    for c in comparisons:
        vote = c.vote()
        numbers = tuple(round(v, 2) for k, v in c.values.items() if k not in ("n_seeds", "boundary"))[:2]
        if len(numbers) == 2:
            evidence = (c.claim, c.ids.get("table"), c.ids.get("dataset"), c.ids.get("comparison"), numbers)
            vote = replace(vote, unit=first_unit.setdefault(evidence, vote.unit))
        found.append(vote)
    return found


def after_holm(comparisons: list[Comparison], rule: DecisionRule = DEFAULT_RULE) -> list[Comparison]:
    """Each comparison's verdict as its claim decides it: a contradiction stands only where it survives
    Holm over the claim's votes (``harness.verdict.decision.claim_verdict``); the others read INCONCLUSIVE, with
    the adjusted p-value. So a case fails under pytest exactly when its claim is CONTRADICTED by it."""
    adjusted: dict[int, float] = {}
    for claim in CLAIMS:
        mine = [c for c in comparisons if c.claim == claim]
        decided = claim_verdict(votes_of(mine), rule)
        adjusted |= {id(c): p for c, p in zip(mine, decided.adjusted_contradict)}
    found = []
    for c in comparisons:
        p = adjusted.get(id(c), 1.0)
        if c.verdict is Verdict.CONTRADICTED and p >= rule.alpha:
            c = replace(c, verdict=Verdict.INCONCLUSIVE,
                        detail=f"{c.detail}; not a contradiction after Holm over the claim's votes (adjusted p = {p:.3g})")
        found.append(replace(c, values={**c.values, "p_contradict_holm": p}) if c.values else c)
    return found


def evaluate_claims(frame: pd.DataFrame, source_kind: str, rule: DecisionRule = DEFAULT_RULE,
                    under_trained: Collection[tuple] = (), separation: pd.DataFrame | None = None,
                    predictions: Mapping[str, Prediction] | None = None) -> list[Comparison]:
    """Every comparison of the five claims, with verdicts after the claim's multiplicity rule; a claim
    with nothing to compare gets one INCONCLUSIVE comparison saying so (an empty claim must not look
    like a pass).

    ``frame``: the tidy F1 frame (``harness.verdict.sources``); ``predictions``: identity -> (labels, predicted)
    of its rows (``harness.verdict.sources.load_predictions``: the test-set term by bootstrap); ``separation``:
    the final layer's separation per setting and seed (``harness.verdict.sources.load_analysis``), for claim 5.
    ``under_trained``: slice keys (model, dataset, pooling, mode) whose comparisons are PROVISIONAL.
    """
    under_trained = {tuple(map(str, key)) for key in under_trained}
    pieces = list(slices(frame, predictions))
    found = [c for piece in pieces if piece.keys["mode"] == "full" for claim in ORDERING
             for c in ordering_comparisons(claim, piece, rule, source_kind, piece.slice_key in under_trained)]
    found += probe_instability(pieces, rule, source_kind, under_trained)
    found += separation_order(separation, source_kind, rule)
    for claim in CLAIMS:
        if not any(c.claim == claim for c in found):
            what = "linear-probe slice" if claim == CLAIMS[3] else "full fine-tuning slice with corrupted settings"
            found.append(Comparison(claim, {"table": "-", "model": "-", "dataset": "-", "comparison": "nothing"}, {},
                                    Verdict.INCONCLUSIVE, f"no {what} in this source", source_kind, "nothing"))
    found = sorted(found, key=lambda c: CLAIMS.index(c.claim))  # stable: each claim's comparisons in their order
    return after_holm(found, rule)
