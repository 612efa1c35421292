"""The engine: any finding declared in ``claims/claims.yaml`` (``harness.verdict.declared``) judged on a source.

A declared finding names a *generator* (which comparisons it makes on a slice of runs: ``COMPARISONS``) and a
*test* (how one comparison, and the finding, is decided: ``TESTS``). Both are registered here by name; adding a
finding that reuses them is a YAML entry and no code. The paper's five findings, as declared:

1. ``no-complete-recovery``: every corrupted setting below clean; strata: the settings.
2. ``monotone-degradation``: each step along clean -> bottom (top) levels -> 100% loses F1; strata: the steps.
3. ``bottom-worse-than-top``: bottom below top at each level; strata: the levels.
4. ``probe-instability``: the probe breaks claims 1-3's orderings more often and varies more from seed to seed.
5. ``separation-order``: Figure 1's reading, measured on the final layer's label separation.

Plus ours (``failed-runs``: corrupted settings collapse to the majority class more often) and one of seed paper
003's (``fine-tuning-separates-labels``, Zhou & Srikumar 2022), judged and shown outside the exit code.

**Failed runs are their own outcome.** A run at or below the majority-class F1 (``harness.verdict.sources``:
``failed``) is a failed run (Mosbach et al. 2021): the F1 comparisons use the runs that trained (a comparison
says how many it left out), and the failure rates are compared by ``failed-runs``. The same rule reads the
paper's one-run tables (their majority-class F1 from each dataset's label shares).

**Two boundaries, four outcomes** (claims 1 and 2): the difference is tested against the first boundary (0: a
real loss), then the second (the margin: a loss that matters), in fixed order, so each keeps its level; the
outcome is a loss beyond the margin, a real loss within it (or of open size), equivalent to none, or
undecided. The verdict (and the exit code) is read at the finding's ``verdict_boundary``.

**Quantifiers.** ``every`` (the words say "never", "every", "is worse"): a stratum is SUPPORTED only when every
unit in it is (intersection-union); ``average``: when a majority is (``harness.verdict.decision.claim_verdict``).

Our grid's comparisons from a slice the convergence diagnostic (``harness.verdict.convergence``) finds
under-trained are PROVISIONAL, and so is every verdict resting on one.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from harness.errors import BadInput
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
from harness.verdict.declared import ClaimSpec, claim_spec, declared_claims
from harness.verdict.sources import GROUP, POSITIONS, SLICE_KEY, long_analysis, mark_failed

SPECS = declared_claims()  # claims/claims.yaml, read once: the engine's default findings


def recovery_margin(specs: tuple[ClaimSpec, ...] = SPECS) -> float:
    """What "fully recovers" means, in F1 points: no-complete-recovery's boundary (claims/claims.yaml, with its
    reason). The analyses beyond the paper judge recovery against the same number."""
    return next(spec.boundary for spec in specs if spec.name == "no-complete-recovery")
CLAIMS = tuple(spec.name for spec in SPECS)


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
    outcome: str = ""  # two boundaries: which of the four outcomes (``outcome_of``)

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
    failed: dict[Setting, dict[int, float]] = field(default_factory=dict, repr=False)  # failed runs, out of ``runs``

    def n_failed(self, setting: Setting) -> int:
        return len(self.failed.get(setting, {}))

    def n_runs(self, setting: Setting) -> int:
        return len(self.runs.get(setting, {})) + self.n_failed(setting)

    def evidence(self, setting: Setting) -> Runs:
        return Runs(self.runs[setting], self.predictions.get(setting) if self.predictions else None)

    def levels(self, position: str) -> list[Setting]:
        return sorted((s for s in self.runs if s[0] == position), key=lambda s: s[1])

    @property
    def slice_key(self) -> tuple[str, ...]:
        return tuple(self.keys[k] for k in SLICE_KEY)


def slices(frame: pd.DataFrame, predictions: Mapping[str, Prediction] | None = None) -> Iterator[Slice]:
    """The tidy frame's slices, in the frame's order (plain dicts: thousands of comparisons stay fast). A row
    marked ``failed`` (at or below the majority-class F1: ``harness.verdict.sources``) is a failed run: it is
    kept out of ``runs`` (the F1 comparisons use the runs that trained) and counted in ``failed``.

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
    failed: dict[tuple, dict[Setting, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    has_identity, has_floor = "identity" in frame.columns, "majority_f1" in frame.columns
    has_failed = "failed" in frame.columns
    for row in frame.itertuples(index=False):
        key = tuple(str(getattr(row, k)) for k in GROUP)
        setting, seed = (row.position, float(row.level)), int(row.seed)
        runs[key]  # a slice whose every run failed is still a slice
        if has_failed and bool(row.failed):
            failed[key][setting][seed] = float(row.f1)
            if has_floor and math.isfinite(float(row.majority_f1)):
                floor[key].append(float(row.majority_f1))
            continue
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
        yield Slice(dict(zip(GROUP, key)), dict(by_setting), n_test.get(key, math.inf),
                    {s: dict(p) for s, p in predicted[key].items()} if complete else None,
                    shared if complete else None, max(floor[key]) if floor[key] else None,
                    {s: dict(f) for s, f in failed[key].items()})


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


# The registered comparison generators a declared finding names (``comparisons: {generator: ...}``): those of a
# slice of runs give (stratum, low, high) predictions "F1(low) < F1(high)"; ``probe_against_full`` (claim 4) and
# ``declared_orderings`` (the analysis' measures, orderings listed in the YAML) are read by their tests.
COMPARISONS = {"each_corrupted_below_clean": recovery_predictions, "consecutive_steps": degradation_predictions,
               "bottom_below_top": position_predictions, "each_corrupted_against_clean": recovery_predictions,
               "probe_against_full": None, "declared_orderings": None}
# The findings that order F1 on a slice (claims 1-3 as declared): name -> generator.
ORDERING = {spec.name: COMPARISONS[spec.generator] for spec in SPECS
            if spec.measure == "f1" and spec.test == "paired_difference"}


def outcome_of(spec: ClaimSpec, p_above: dict[float, float], p_below: dict[float, float], alpha: float) -> str:
    """Two boundaries b0 < b1, tested in fixed order (b0, then b1 only where b0 is cleared: each within alpha):
    a loss beyond b1 / a real loss within b1 (or of open size) / equivalent to none (within +-b1, no real loss
    shown) / undecided. One boundary: above / below / undecided."""
    if len(spec.boundaries) == 1:
        b = spec.first_boundary
        return (f"above {b:+g}" if p_above[b] < alpha else f"below {b:+g}" if p_below[b] < alpha else "undecided")
    b0, b1 = spec.first_boundary, spec.boundaries[1].value
    if p_above[b0] < alpha:
        if p_above[b1] < alpha:
            return f"a loss beyond the margin ({b1:+g})"
        return (f"a real loss within the margin ({b0:+g} to {b1:+g})" if p_below[b1] < alpha
                else f"a real loss (above {b0:+g}), its size open")
    if p_below[b1] < alpha and p_above[-b1] < alpha:
        return f"equivalent to none (within ±{b1:g})"
    return "undecided"


def _compare(spec: ClaimSpec, piece: Slice, prediction: Ordering, rule: DecisionRule, source: str,
             provisional: bool, run_sd: float | str = "rule") -> Comparison:
    stratum, low, high = prediction
    ids = {**piece.keys, "comparison": f"{setting_label(low)}<{setting_label(high)}"}
    common = {"source": source, "stratum": stratum, "provisional": provisional}
    failed_sides = [s for s in (low, high) if piece.n_failed(s)]
    failed_note = ("; failed runs left out: " + ", ".join(f"{setting_label(s)} {piece.n_failed(s)} of "
                                                          f"{piece.n_runs(s)}" for s in failed_sides)
                   if failed_sides else "")
    missing = [setting_label(s) for s in (low, high) if not piece.runs.get(s)]
    if missing:
        why = f"no run{' that trained' if failed_sides else ''} for {' and '.join(missing)}"
        return Comparison(spec.name, ids, {}, Verdict.INCONCLUSIVE, why + failed_note, **common)
    evidence = piece.evidence(low), piece.evidence(high)
    decisions = {b.value: decide(*evidence, piece.n_test, rule, boundary=b.value, labels=piece.labels,
                                 floor=piece.floor, run_sd=run_sd) for b in spec.boundaries}
    decision = decisions.get(spec.boundary) or decide(*evidence, piece.n_test, rule, boundary=spec.boundary,
                                                      labels=piece.labels, floor=piece.floor, run_sd=run_sd)
    if not decision.values or "p_support" not in decision.values:
        return Comparison(spec.name, ids, dict(decision.values), decision.verdict, decision.detail + failed_note,
                          **common)
    outcome = ""
    if len(spec.boundaries) == 2:  # the equivalence side needs the lower bound at -margin too
        b1 = spec.boundaries[1].value
        mirror = decide(*evidence, piece.n_test, rule, boundary=-b1, labels=piece.labels, floor=piece.floor,
                        run_sd=run_sd)
        p_above = {b: d.p_support for b, d in decisions.items()} | {-b1: mirror.p_support}
        p_below = {b: d.p_contradict for b, d in decisions.items()}
        outcome = outcome_of(spec, p_above, p_below, rule.alpha)
    values = dict(decision.values)
    values = {setting_label(low): values.pop("low"), setting_label(high): values.pop("high"), **values,
              "failed_low": piece.n_failed(low), "failed_high": piece.n_failed(high)}
    scores = ", ".join(f"{setting_label(s)} {values[setting_label(s)]:.2f}" for s in (low, high))
    detail = f"{scores}: {decision.detail}" + (f"; outcome: {outcome}" if outcome else "") + failed_note
    return Comparison(spec.name, ids, values, decision.verdict, detail, mdd=decision.mdd,
                      p_support=decision.p_support, p_contradict=decision.p_contradict, outcome=outcome, **common)


def ordering_comparisons(claim: str | ClaimSpec, piece: Slice, rule: DecisionRule = DEFAULT_RULE, source: str = "",
                         provisional: bool = False, run_sd: float | str = "rule") -> list[Comparison]:
    """``run_sd``: one run's SD where the slice has one run per value (default: the rule's assumed one)."""
    spec = claim if isinstance(claim, ClaimSpec) else claim_spec(claim, SPECS)
    return [_compare(spec, piece, p, rule, source, provisional, run_sd) for p in COMPARISONS[spec.generator](piece)]


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


def _violation_rate(name: str, probe: Slice, full: Slice, ids: dict, rule: DecisionRule, source: str,
                    provisional: bool) -> Comparison:
    pairs_probe, pairs_full = _ordering_pairs(probe), _ordering_pairs(full)
    ids = {**ids, "comparison": "violation-rate"}
    common = {"source": source, "stratum": "violation rate", "provisional": provisional}
    if not pairs_probe or not pairs_full:
        return Comparison(name, ids, {}, Verdict.INCONCLUSIVE, "no ordering to test in one of the two slices",
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
    return Comparison(name, ids, values, rule.verdict_of(p_support, p_contradict), detail,
                      p_support=p_support, p_contradict=p_contradict, **common)


def spread_f_test(probe_var: float, full_var: float, df: int, rule: DecisionRule, margin: float = 1.0
                  ) -> tuple[float, float, float]:
    """One-sided p-values of 'probe's seed SD above full's' (F on ``df``, ``df`` at ratio 1) and of 'below
    ``margin`` times full's' (the SD ratio shown under the margin: not "highly unstable"), and the SD ratio the
    first test detects at ``rule.power``."""
    f = stats.f(df, df)
    ratio = probe_var / full_var if full_var > 0 else (math.inf if probe_var > 0 else 1.0)
    detectable = math.sqrt(f.ppf(1 - rule.alpha) / f.ppf(1 - rule.power))
    return float(f.sf(ratio)), float(f.cdf(ratio / margin ** 2)), detectable


def _seed_spread(spec: ClaimSpec, probe: Slice, full: Slice, ids: dict, rule: DecisionRule, source: str,
                 provisional: bool) -> Comparison | None:
    """Seed variance per setting, probe vs full, pooled over settings: an F-test on the df of one setting, at
    ratio 1 for support and at the declared margin (``seed_sd_ratio``) for contradiction ("as stable")."""
    seeds = _common_seeds(probe, full)
    if len(seeds) < 2:
        return None  # one run per value has no spread (the violation rate still speaks)
    settings = [s for s in probe.runs if s in full.runs]
    variance = {name: float(np.mean([np.var([piece.runs[s][seed] for seed in seeds], ddof=1) for s in settings]))
                for name, piece in (("probe", probe), ("full", full))}
    # The settings share their seeds (data order, head init), so their variances are not independent:
    # the pooled variance is credited with one setting's k - 1 df, the honest floor.
    df = len(seeds) - 1
    margin = spec.margin("seed_sd_ratio", 1.0)
    p_support, p_contradict, detectable = spread_f_test(variance["probe"], variance["full"], df, rule, margin)
    probe_sd, full_sd = math.sqrt(variance["probe"]), math.sqrt(variance["full"])
    values = {"probe_seed_sd": probe_sd, "full_seed_sd": full_sd, "n_settings": len(settings), "n_seeds": len(seeds),
              "df": df, "detectable_sd_ratio": detectable, "margin_sd_ratio": margin, "p_support": p_support,
              "p_contradict": p_contradict}
    verdict = rule.verdict_of(p_support, p_contradict)
    detail = (f"seed SD pooled over {len(settings)} settings: probe {probe_sd:.2f} vs full {full_sd:.2f} (F-test on "
              f"{df}, {df} df, settings sharing seeds: p(probe more) = {p_support:.3g}, p(probe under {margin:g}x "
              f"full: as stable) = {p_contradict:.3g})")
    if verdict is Verdict.INCONCLUSIVE:
        detail += (f"; detectable at 80% power: an SD ratio of {detectable:.2g}; 'as stable' needs the ratio shown "
                   f"under {margin:g}, which {df} df " + ("cannot show at any ratio" if stats.f(df, df).cdf(
                       1 / margin ** 2) < 0.5 * rule.alpha else "can show") + " here")
    return Comparison(spec.name, {**ids, "comparison": "seed-sd"}, values, verdict, detail, source, "seed spread",
                      provisional, p_support=p_support, p_contradict=p_contradict)


def probe_instability(pieces: list[Slice], rule: DecisionRule = DEFAULT_RULE, source: str = "",
                      under_trained: Collection[tuple] = (), spec: ClaimSpec | None = None) -> list[Comparison]:
    """Linear probe less stable than full fine-tuning on the same model and dataset (Section 4.3)."""
    spec = spec or claim_spec("probe-instability", SPECS)
    full = {(p.keys["model"], p.keys["dataset"], p.keys["pooling"]): p for p in pieces if p.keys["mode"] == "full"}
    found = []
    for probe in (p for p in pieces if p.keys["mode"] == "probe"):
        key = (probe.keys["model"], probe.keys["dataset"], probe.keys["pooling"])
        partner = full.get(key)
        ids = {**probe.keys, "table": probe.keys["table"] + (f"-vs-{partner.keys['table']}" if partner else "")}
        if partner is None:
            found.append(Comparison(spec.name, {**ids, "comparison": "violation-rate"}, {}, Verdict.INCONCLUSIVE,
                                    f"no full fine-tuning slice of {'/'.join(key)} to compare with", source,
                                    "violation rate"))
            continue
        provisional = probe.slice_key in under_trained or partner.slice_key in under_trained
        found.append(_violation_rate(spec.name, probe, partner, ids, rule, source, provisional))
        spread = _seed_spread(spec, probe, partner, ids, rule, source, provisional)
        found += [spread] if spread else []
    return found


# ---------------------------------------------------------------- the analysis' measures (claim 5, seed paper 003)


def _selector(name: str, spec: ClaimSpec) -> tuple[str, str]:
    """``"clean before"`` -> (clean, before); a bare setting reads the finding's (last) moment."""
    setting, _, moment = name.rpartition(" ") if name.rsplit(" ", 1)[-1] in ("before", "after") else (name, "", "")
    return setting, moment or spec.moments[-1]


def _label(side: tuple[str, str], spec: ClaimSpec) -> str:
    """A selector's name in ids and values: the setting, and its moment where the finding reads two."""
    return f"{side[0]} {side[1]}" if len(spec.moments) > 1 else side[0]


def analysis_orderings(spec: ClaimSpec, analysis: pd.DataFrame | None, source: str,
                       rule: DecisionRule = DEFAULT_RULE) -> list[Comparison]:
    """A finding on the final layer's representation measures (``harness.verdict.sources.load_analysis``: setting,
    seed, moment, measure, value), its orderings declared in the YAML, paired over seeds (the measures have no
    test-set noise model, so >= 2 seeds are needed); ``percent_of_clean`` scales by the clean model's mean."""
    ids = {"table": "analysis", "model": "-", "dataset": "-"}
    chosen = None if analysis is None else analysis[analysis["measure"] == spec.measure]
    if chosen is None or chosen.empty:
        why = ("the paper prints only pictures (Figure 1): it gives no numbers to test" if source == "paper" else
               f"no representation analysis of {spec.measure} in this source (a profile without `analysis:`, or "
               "analysis.csv missing)")
        return [Comparison(spec.name, {**ids, "comparison": "nothing"}, {}, Verdict.INCONCLUSIVE, why, source, "nothing")]
    ids = {**ids, "model": analysis.attrs.get("model", "-"), "dataset": analysis.attrs.get("dataset", "-")}
    runs = {(setting, moment): dict(zip(piece["seed"].astype(int), piece["value"].astype(float)))
            for (setting, moment), piece in chosen.groupby(["setting", "moment"])}
    clean = float(np.mean(list(runs.get(("clean", spec.moments[-1]), {}).values()) or [math.nan]))
    percent = spec.scale == "percent_of_clean"
    margin = spec.margin("weak_order", 0.0)
    found = []
    for order in spec.orderings:
        low, high = _selector(order.low, spec), _selector(order.high, spec)
        case = {**ids, "comparison": f"{_label(low, spec)}<{'=' if order.weak else ''}{_label(high, spec)}".replace(" ", "-")}
        common = {"source": source, "stratum": order.stratum}
        missing = [_label(s, spec) for s in (low, high) if s not in runs]
        paired = set(runs.get(low, {})) & set(runs.get(high, {}))
        if missing or len(paired) < 2 or (percent and not clean > 0):
            why = (f"no analysed cell for {' and '.join(missing)}" if missing else
                   f"{len(paired)} seed(s) in common: a verdict on {spec.measure} needs >= 2 (no test-set noise model)"
                   if len(paired) < 2 else
                   "no label pair is linearly separable in the clean model's final layer: the measure is 0 and "
                   "cannot order the settings at this size")
            found.append(Comparison(spec.name, case, {}, Verdict.INCONCLUSIVE, why, **common))
            continue
        scaled = {s: {seed: (100.0 * v / clean if percent else v) for seed, v in runs[s].items()} for s in (low, high)}
        # a weak order ("<=") holds unless low exceeds high by more than the margin; a strict one needs a gap.
        # 0 is the separation's floor (no label pair separable): two zeros order nothing.
        decision = decide(scaled[low], scaled[high], math.inf, rule, boundary=-margin if order.weak else 0.0,
                          floor=0.0, run_sd=None)
        unit = " %" if percent else ""
        values = {f"{_label(low, spec)}{unit}": decision.values.get("low", math.nan),
                  f"{_label(high, spec)}{unit}": decision.values.get("high", math.nan),
                  **{k: v for k, v in decision.values.items() if k not in ("low", "high")}}
        detail = (f"final-layer {spec.measure}{' in % of clean' if percent else ''}: {_label(low, spec)} "
                  f"{values[f'{_label(low, spec)}{unit}']:.3g}, {_label(high, spec)} {values[f'{_label(high, spec)}{unit}']:.3g}: "
                  f"{decision.detail}")
        found.append(Comparison(spec.name, case, values, decision.verdict, detail, mdd=decision.mdd,
                                p_support=decision.p_support, p_contradict=decision.p_contradict, **common))
    return found


def separation_order(separation: pd.DataFrame | None, source: str, rule: DecisionRule = DEFAULT_RULE) -> list[Comparison]:
    """Claim 5 as declared (``separation-order``) on an analysis frame (``load_analysis``)."""
    return analysis_orderings(claim_spec("separation-order", SPECS), long_analysis(separation), source, rule)


# ---------------------------------------------------------------- failed runs, their own outcome


def failure_rates(spec: ClaimSpec, pieces: list[Slice], source: str, rule: DecisionRule = DEFAULT_RULE
                  ) -> list[Comparison]:
    """Per corrupted setting: do its runs fail (at or below the majority-class F1) more often than the clean
    model's? Counts pooled over every slice of the finding's mode; a one-sided exact test (Fisher's) on the 2x2."""
    mine = [p for p in pieces if p.keys["mode"] in spec.modes]
    counts: dict[str, list] = {}
    for piece in mine:
        every_setting = replace(piece, runs={**{s: {} for s in piece.failed}, **piece.runs})  # all-failed ones too
        for stratum, setting, clean in COMPARISONS[spec.generator](every_setting):
            entry = counts.setdefault(stratum, [0, 0, 0, 0, setting_label(setting), []])
            entry[0] += piece.n_failed(setting)
            entry[1] += piece.n_runs(setting)
            entry[2] += piece.n_failed(clean)
            entry[3] += piece.n_runs(clean)
            entry[5].append(piece.keys["dataset"])
    ids = {"table": "failed-runs", "model": "-", "dataset": "-"}
    if not counts:
        return [Comparison(spec.name, {**ids, "comparison": "nothing"}, {}, Verdict.INCONCLUSIVE,
                           "no slice with corrupted settings in this source", source, "nothing")]
    found = []
    for stratum, (failed, runs, clean_failed, clean_runs, label, datasets) in counts.items():
        case = {**ids, "comparison": f"{label}-fails-more"}
        values = {"failed": failed, "runs": runs, "clean_failed": clean_failed, "clean_runs": clean_runs,
                  "rate": failed / runs if runs else math.nan,
                  "clean_rate": clean_failed / clean_runs if clean_runs else math.nan}
        table = [[failed, runs - failed], [clean_failed, clean_runs - clean_failed]]
        if not runs or not clean_runs or failed + clean_failed == 0:
            found.append(Comparison(spec.name, case, values, Verdict.INCONCLUSIVE,
                                    f"no failed run in {runs} {stratum} and {clean_runs} clean runs "
                                    f"({len(set(datasets))} dataset(s)): no rate to compare", source, stratum))
            continue
        p_support = float(stats.fisher_exact(table, alternative="greater")[1])
        p_contradict = float(stats.fisher_exact(table, alternative="less")[1])
        detail = (f"failed runs: {stratum} {failed} of {runs}, clean {clean_failed} of {clean_runs} "
                  f"({len(set(datasets))} dataset(s); Fisher's exact test: p(more) = {p_support:.3g}, "
                  f"p(fewer) = {p_contradict:.3g})")
        found.append(Comparison(spec.name, case, {**values, "p_support": p_support, "p_contradict": p_contradict},
                                rule.verdict_of(p_support, p_contradict), detail, source, stratum,
                                p_support=p_support, p_contradict=p_contradict))
    return found


# ---------------------------------------------------------------- the registered tests


@dataclass(frozen=True)
class Evidence:
    """What a test reads of one source: its slices, the representation analysis, and how it is read."""

    pieces: list[Slice]
    analysis: pd.DataFrame | None
    source: str
    rule: DecisionRule
    under_trained: frozenset
    run_sd: Mapping[str, float]  # dataset -> one run's SD for one-run slices (measured: harness.verdict.run_noise)


def _paired_difference(spec: ClaimSpec, evidence: Evidence) -> list[Comparison]:
    if spec.measure != "f1":
        return analysis_orderings(spec, evidence.analysis, evidence.source, evidence.rule)
    return [c for piece in evidence.pieces if piece.keys["mode"] in spec.modes
            for c in ordering_comparisons(spec, piece, evidence.rule, evidence.source,
                                          piece.slice_key in evidence.under_trained,
                                          evidence.run_sd.get(piece.keys["dataset"], "rule"))]


TESTS = {
    "paired_difference": _paired_difference,
    "instability": lambda spec, e: probe_instability(e.pieces, e.rule, e.source, e.under_trained, spec),
    "failure_rate": lambda spec, e: failure_rates(spec, e.pieces, e.source, e.rule),
}


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


def after_holm(comparisons: list[Comparison], rule: DecisionRule = DEFAULT_RULE,
               specs: tuple[ClaimSpec, ...] = SPECS) -> list[Comparison]:
    """Each comparison's verdict as its claim decides it: a contradiction stands only where it survives
    Holm over the claim's votes (``harness.verdict.decision.claim_verdict``); the others read INCONCLUSIVE, with
    the adjusted p-value. So a case fails under pytest exactly when its claim is CONTRADICTED by it."""
    adjusted: dict[int, float] = {}
    for spec in specs:
        mine = [c for c in comparisons if c.claim == spec.name]
        decided = claim_verdict(votes_of(mine), rule, spec.quantifier)
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
                    predictions: Mapping[str, Prediction] | None = None,
                    specs: tuple[ClaimSpec, ...] = SPECS, run_sd: Mapping[str, float] | None = None
                    ) -> list[Comparison]:
    """Every comparison of every declared finding (``specs``: claims/claims.yaml), with verdicts after the
    claim's multiplicity rule; a finding with nothing to compare gets one INCONCLUSIVE comparison saying so (an
    empty claim must not look like a pass).

    ``frame``: the tidy F1 frame (``harness.verdict.sources``; rows marked ``failed`` are failed runs);
    ``predictions``: identity -> (labels, predicted) of its rows (``harness.verdict.sources.load_predictions``: the
    test-set term by bootstrap); ``separation``: the final layer's representation measures
    (``harness.verdict.sources.load_analysis``); ``under_trained``: slice keys (model, dataset, pooling, mode)
    whose comparisons are PROVISIONAL; ``run_sd``: dataset -> one run's SD for one-run slices (the paper's tables:
    our measured seed spread, ``harness.verdict.run_noise.run_sd_for``; a dataset not in it: the rule's).
    """
    evidence = Evidence(list(slices(mark_failed(frame, predictions), predictions)), long_analysis(separation),
                        source_kind, rule,
                        frozenset(tuple(map(str, key)) for key in under_trained), dict(run_sd or {}))
    found = []
    for spec in specs:
        if spec.test not in TESTS:
            raise BadInput(f"claim {spec.name}: no registered test {spec.test!r} (registered: {sorted(TESTS)})")
        if spec.generator not in COMPARISONS:
            raise BadInput(f"claim {spec.name}: no registered generator {spec.generator!r} "
                           f"(registered: {sorted(COMPARISONS)})")
        mine = TESTS[spec.test](spec, evidence)
        if not mine:
            what = "linear-probe slice" if "probe" in spec.modes else "slice with corrupted settings"
            mine = [Comparison(spec.name, {"table": "-", "model": "-", "dataset": "-", "comparison": "nothing"}, {},
                               Verdict.INCONCLUSIVE, f"no {what} in this source", source_kind, "nothing")]
        found += mine
    return after_holm(found, rule, specs)
