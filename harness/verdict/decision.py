"""The decision rule: how a comparison, a stratum and a claim get SUPPORTED, CONTRADICTED or INCONCLUSIVE.

**One comparison.** A claim predicts that a difference ``D = F1(high) - F1(low)`` lies above a
*boundary* ``b``: the claim holds where the true difference is above it and fails below it.

* claims 1 and 2 predict a loss of more than ``equivalence_margin`` (a loss within the margin is a
  complete recovery, no degradation): ``b = +margin``;
* strict orderings (claim 3, claim 5's "bottom < top"): ``b = 0``;
* weak orderings (claim 5's "top <= clean", "100% <= bottom"): ``b = -margin``.

``decide`` runs the two one-sided tests at the boundary: SUPPORTED when the lower confidence bound
of D lies above ``b`` (``p_support < alpha``), CONTRADICTED when the upper one lies below it
(``p_contradict < alpha``), else INCONCLUSIVE with its minimum detectable difference. At the boundary
each error is at most ``alpha``; both sides of the margin are outcomes, shown rather than assumed.
Non-significance alone never contradicts.

**The noise of D** (``paired_noise``) has every source a rerun would redraw:

* *seeds*: the spread of the per-seed differences over ``k`` paired seeds (same seed: same data
  order, head init and corruption draw), ``s^2 / k`` on ``k - 1`` degrees of freedom; with one run per
  value, an assumed run-to-run SD (``assumed_run_sd``, the literature's), never zero;
* *the test set*: every seed is scored on the same test examples, so their sampling error is common to
  all seeds and never averages away. With per-example predictions it is a paired bootstrap over test
  examples that recomputes weighted F1 of every seed on each resample (lm-evaluation-harness's paired
  test, MultiBERTs' example resampling); without them (a CSV from elsewhere), ``p(1-p)/n`` per score,
  a cautious approximation that the output names.

``SE^2 = seed term + test term``, tested with Student's t on the seeds' ``k - 1`` degrees of freedom.
Satterthwaite's df would be larger, but they are estimated from the same 2 df: when the seed
variance comes out small by chance they grow exactly when the SE is too small, and the far tails that
Holm's step-down needs were twice too light in the calibration (1.2% below p = 0.00625 under a null).
``k - 1`` is the worst case over the unknown share of seed noise, hence valid; 5 seeds buy power.

**A claim** (``claim_verdict``): contradictions are decided over all of a claim's comparisons at
once with Holm's step-down, so the family-wise rate of a false CONTRADICTED is at
most ``alpha`` however many strata and datasets the grid has; one contradiction that survives it
refutes the claim ("never", "every"). A stratum of a universal claim (declared ``every``) is SUPPORTED when
every one of its votes supports it, of an ``average`` claim when at least ``stratum_min_share`` do, and none
is contradicted; the claim is SUPPORTED only when every stratum is (an intersection-union test: no correction
needed). A vote is one (model, dataset, comparison):
the same comparison read from two poolings or two copies of a table counts once, at its weaker
reading. ``harness.verdict.calibration`` measures all these error rates by simulation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import stats


class Verdict(StrEnum):
    SUPPORTED = "SUPPORTED"
    CONTRADICTED = "CONTRADICTED"
    INCONCLUSIVE = "INCONCLUSIVE"


STRENGTH = {Verdict.CONTRADICTED: 0, Verdict.INCONCLUSIVE: 1, Verdict.SUPPORTED: 2}  # weakest first


@dataclass(frozen=True)
class DecisionRule:
    """Every level, margin and threshold of the verdicts, each with its reason."""

    # One-sided tests at 5%, the conventional level; also the family-wise level of a claim's
    # contradictions (Holm) and the nominal bound the calibration checks every error rate against.
    alpha: float = 0.05
    # Power at which the minimum detectable difference (MDD) of an inconclusive comparison is stated:
    # 80%, the usual planning value.
    power: float = 0.8
    # "Fully recovers" / "no degradation" means within 1 F1 point: the paper prints two decimals but
    # BERT's own seed-to-seed spread on these tasks is 1-2 points (Mosbach et al., 2021; Dodge et al.,
    # 2020), so a smaller gap is no practical loss. It is the boundary of claims 1 and 2.
    equivalence_margin: float = 1.0
    # One run per value (the paper's tables, a one-seed grid): the run-to-run SD of one score on a
    # fixed test set, assumed because one run cannot measure it: the low end of BERT's 1-2 F1 points
    # (above), so one-run verdicts are as decisive as that noise allows and no more. A difference of
    # two runs then has SE >= 1.41, where no equivalence within +-1 can be shown.
    assumed_run_sd: float = 1.0
    # Test-set resamples of the paired bootstrap: the SE of a variance from 1,000 resamples is ~4.5%,
    # i.e. ~2% on an SE; fixed seed, so the same records give the same verdict.
    test_resamples: int = 1000
    resampling_seed: int = 0
    # A stratum of a finding declared "on average" (claims/claims.yaml: quantifier) is SUPPORTED when at least
    # half its votes support it and none is contradicted; a universal one ("never", "every") needs every vote.
    stratum_min_share: float = 0.5
    # Both scores within this many F1 points of the floor (the majority-class F1, or 0): a floor,
    # where a difference says nothing about healing (two failed runs are equal for a trivial reason).
    floor_tolerance: float = 0.5
    # Claim 4's violation rate on one-run tables: parametric resamples of the assumed noise; enough
    # for a p-value near 0.05 to be stable to +-0.005.
    resamples: int = 2000

    def verdict_of(self, p_support: float, p_contradict: float) -> Verdict:
        if p_support < self.alpha:
            return Verdict.SUPPORTED
        if p_contradict < self.alpha:
            return Verdict.CONTRADICTED
        return Verdict.INCONCLUSIVE


DEFAULT_RULE = DecisionRule()


# ---------------------------------------------------------------- weighted F1 on many resamples at once


def weighted_f1_resampled(labels: np.ndarray, predictions: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Weighted F1 (percent) of every prediction vector on every resample of the test set.

    ``labels``: (n,); ``predictions``: (m, n); ``counts``: (B, n), how often each example appears in
    each resample. Returns (B, m). The same definition as sklearn's ``f1_score(average="weighted",
    zero_division=0)``, computed from confusion counts so all B resamples of all m vectors cost one
    matrix product.
    """
    n_labels = int(max(labels.max(), predictions.max())) + 1
    one_hot = np.eye(n_labels + 1, dtype=np.float32)[:, :n_labels]  # row n_labels: "no label"
    m = len(predictions)
    hits = np.where(predictions == labels[None, :], labels[None, :], n_labels)  # true positives per label
    columns = np.concatenate([one_hot[labels][None], one_hot[predictions], one_hot[hits]])  # (1 + 2m, n, L)
    totals = counts.astype(np.float32, copy=False) @ columns.transpose(1, 0, 2).reshape(len(labels), -1)
    totals = totals.reshape(len(counts), 1 + 2 * m, n_labels).astype(np.float64)
    support, predicted, true_positive = totals[:, :1], totals[:, 1:m + 1], totals[:, m + 1:]
    denominator = support + predicted
    f1 = np.divide(2 * true_positive, denominator, out=np.zeros_like(true_positive), where=denominator > 0)
    return 100.0 * (f1 * support).sum(axis=2) / support.sum(axis=2)


@lru_cache(maxsize=8)
def resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """How often each of ``n`` examples appears in each of ``resamples`` bootstrap resamples (float32,
    read-only; one draw per (n, resamples, seed), shared by every comparison on a test set of that size)."""
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float32)
    counts.setflags(write=False)
    return counts


# ---------------------------------------------------------------- the noise of one paired difference


@dataclass(frozen=True)
class Runs:
    """One setting's runs: F1 by seed and, where the records hold them, each seed's test predictions."""

    f1: Mapping[int, float]
    predictions: Mapping[int, np.ndarray] | None = None


@dataclass(frozen=True)
class Noise:
    """The standard error of a paired difference, its parts and its degrees of freedom."""

    se: float
    seed_var: float
    test_var: float
    df: float  # math.inf: normal
    how: str


def _test_term_bootstrap(low: Runs, high: Runs, seeds: Sequence[int], labels: np.ndarray,
                         rule: DecisionRule) -> float:
    """Variance of the seed-mean difference over resamples of the shared test set (seeds held)."""
    counts = resample_counts(len(labels), rule.test_resamples, rule.resampling_seed)
    stacked = np.stack([high.predictions[s] for s in seeds] + [low.predictions[s] for s in seeds])
    f1 = weighted_f1_resampled(labels, stacked, counts)
    difference = f1[:, : len(seeds)].mean(axis=1) - f1[:, len(seeds):].mean(axis=1)
    return float(difference.var(ddof=1))


def _test_term_approximate(f1_low: float, f1_high: float, n_test: float) -> float:
    """Without predictions: each score's binomial error p(1-p)/n, treated as independent (the two
    share the test set, which would shrink the true term: cautious)."""
    p = np.clip(np.array([f1_low, f1_high]) / 100.0, 0.0, 1.0)
    return float(1e4 * np.sum(p * (1 - p)) / n_test)


def paired_noise(low: Runs, high: Runs, seeds: Sequence[int], n_test: float, labels: np.ndarray | None,
                 rule: DecisionRule, run_sd: float | None) -> Noise:
    """Seeds and test set; the seeds' ``k - 1`` df (the worst case over the share of seed noise, see above)."""
    k = len(seeds)
    diff = np.array([high.f1[s] - low.f1[s] for s in seeds], dtype=float)
    if k >= 2:
        seed_var, seed_df = float(diff.var(ddof=1) / k), k - 1
        seed_how = f"{k} paired seeds"
    elif run_sd is not None:
        seed_var, seed_df = 2 * run_sd ** 2, math.inf
        seed_how = f"one run each, run-to-run SD {run_sd:g} assumed"
    else:
        seed_var, seed_df = math.nan, math.inf
        seed_how = "one run each, no noise model"
    with_predictions = (labels is not None and low.predictions is not None and high.predictions is not None
                        and all(s in low.predictions and s in high.predictions for s in seeds))
    if with_predictions:
        test_var = _test_term_bootstrap(low, high, seeds, labels, rule)
        test_how = f"test set: paired bootstrap over {len(labels)} examples"
    elif math.isfinite(n_test):
        test_var = _test_term_approximate(float(np.mean([low.f1[s] for s in seeds])),
                                          float(np.mean([high.f1[s] for s in seeds])), n_test)
        test_how = f"test set: approximated from n_test={n_test:g} (no predictions)"
    else:
        test_var, test_how = 0.0, "no test-set term"
    total = seed_var + test_var
    df = seed_df  # not Satterthwaite's: see the module's docstring
    return Noise(math.sqrt(total) if math.isfinite(total) else math.nan, seed_var, test_var, df,
                 f"{seed_how} + {test_how}")


# ---------------------------------------------------------------- one comparison


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    values: dict[str, float]
    detail: str
    mdd: float | None = None  # minimum detectable difference from the boundary, at this comparison's noise
    p_support: float = 1.0
    p_contradict: float = 1.0


def _as_runs(side: Runs | Mapping[int, float]) -> Runs:
    return side if isinstance(side, Runs) else Runs(dict(side))


def decide(low: Runs | Mapping[int, float], high: Runs | Mapping[int, float], n_test: float,
           rule: DecisionRule = DEFAULT_RULE, *, boundary: float = 0.0, labels: np.ndarray | None = None,
           floor: float | None = None, run_sd: float | None | Literal["rule"] = "rule") -> Decision:
    """Verdict on the prediction ``F1(high) - F1(low) > boundary`` (see the module's docstring).

    ``low``/``high``: seed -> F1, or ``Runs`` with predictions; ``labels``: the shared test set's true
    labels (with predictions: the bootstrap test term); ``n_test``: its size (``math.inf``: values
    without test-set noise, e.g. a separation measure); ``floor``: both scores near it -> INCONCLUSIVE;
    ``run_sd``: one run's assumed SD (default the rule's; None: one run has no noise model).
    """
    low, high = _as_runs(low), _as_runs(high)
    run_sd = rule.assumed_run_sd if run_sd == "rule" else run_sd
    seeds = sorted(set(low.f1) & set(high.f1))
    if not seeds:
        return Decision(Verdict.INCONCLUSIVE, {}, "no seed in common: nothing to pair")
    low_f1 = np.array([low.f1[s] for s in seeds], dtype=float)
    high_f1 = np.array([high.f1[s] for s in seeds], dtype=float)
    mean = float((high_f1 - low_f1).mean())
    values = {"low": float(low_f1.mean()), "high": float(high_f1.mean()), "difference": mean,
              "n_seeds": len(seeds), "boundary": boundary}
    if floor is not None and max(values["low"], values["high"]) <= floor + rule.floor_tolerance:
        return Decision(Verdict.INCONCLUSIVE, values, f"both scores at the floor ({floor:.2f}): a difference of "
                        "two failed runs says nothing about healing")
    noise = paired_noise(low, high, seeds, n_test, labels, rule, run_sd)
    values.update(se=noise.se, se_seeds=math.sqrt(noise.seed_var) if math.isfinite(noise.seed_var) else math.nan,
                  se_test=math.sqrt(noise.test_var), df=noise.df)
    if not math.isfinite(noise.se):
        return Decision(Verdict.INCONCLUSIVE, values, f"difference {mean:+.2f}: {noise.how}, so no test")
    dist = stats.norm if math.isinf(noise.df) else stats.t(noise.df)
    if noise.se == 0:  # the same difference everywhere and no test-set noise: the value decides
        p_support, p_contradict, mdd = float(mean <= boundary), float(mean >= boundary), 0.0
    else:
        z = (mean - boundary) / noise.se
        p_support, p_contradict = float(dist.sf(z)), float(dist.cdf(z))
        mdd = float((dist.ppf(1 - rule.alpha) + dist.ppf(rule.power)) * noise.se)
    values.update(p_support=p_support, p_contradict=p_contradict, mdd=mdd)
    verdict = rule.verdict_of(p_support, p_contradict)
    where = f"above {boundary:+g}" if boundary else "above 0"
    text = (f"difference {mean:+.2f} (SE {noise.se:.2f}: {noise.how}; df {noise.df:.3g}): "
            f"p(D {where}) = {p_support:.3g}, p(D below) = {p_contradict:.3g}")
    if verdict is Verdict.INCONCLUSIVE:
        text += f"; detectable at 80% power: {mdd:.2f} from the boundary"
    return Decision(verdict, values, text, mdd, p_support, p_contradict)


# ---------------------------------------------------------------- strata and the claim


@dataclass(frozen=True)
class Vote:
    """One piece of evidence: a comparison's stratum, the unit it belongs to, its verdict and p-values."""

    stratum: str
    unit: str  # comparisons of one unit vote once (e.g. one model, dataset and comparison, any pooling)
    verdict: Verdict
    p_support: float
    p_contradict: float
    tested: bool = True  # False: nothing to compare (a setting did not run); not one of Holm's hypotheses


@dataclass(frozen=True)
class StratumVerdict:
    name: str
    verdict: Verdict
    supported: int
    contradicted: int
    inconclusive: int
    detail: str
    min_p_contradict: float = 1.0  # the strongest evidence against (Holm-adjusted)


@dataclass(frozen=True)
class ClaimDecision:
    verdict: Verdict
    strata: tuple[StratumVerdict, ...]
    decisive: StratumVerdict | None
    adjusted_contradict: tuple[float, ...] = field(default=())  # per vote, in input order


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values: family-wise error at most alpha under any dependence.

    The same numbers as ``statsmodels.stats.multitest.multipletests(p, method="holm")[1]`` (the tests
    check it), written out because that call runs ``gc.collect()`` every time: 60 ms, which the
    calibration's tens of thousands of simulated claims cannot afford.
    """
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate(p[order] * np.arange(len(p), 0, -1)))
    adjusted = np.empty_like(p)
    adjusted[order] = stepped
    return adjusted


def _merge_unit(votes: list[Vote]) -> Vote:
    """A unit's one vote: its weakest reading (the least support and the most contradiction)."""
    return Vote(votes[0].stratum, votes[0].unit, min((v.verdict for v in votes), key=STRENGTH.get),
                max(v.p_support for v in votes), min(v.p_contradict for v in votes), any(v.tested for v in votes))


def claim_verdict(votes: Sequence[Vote], rule: DecisionRule = DEFAULT_RULE, quantifier: str = "every"
                  ) -> ClaimDecision:
    """A claim's headline from its votes: Holm over contradictions, every stratum for support; within a stratum,
    ``every`` vote must support (intersection-union: "never", "every", "is worse") or, for a claim stated
    ``average``, at least ``rule.stratum_min_share`` of them."""
    share = 1.0 if quantifier == "every" else rule.stratum_min_share
    units: dict[tuple[str, str], list[Vote]] = {}
    for vote in votes:
        units.setdefault((vote.stratum, vote.unit), []).append(vote)
    merged = [_merge_unit(group) for group in units.values()]
    tested = [i for i, v in enumerate(merged) if v.tested]  # Holm counts the hypotheses actually tested
    adjusted = np.ones(len(merged))
    adjusted[tested] = holm([merged[i].p_contradict for i in tested])
    contradicted = {id(v) for v, p in zip(merged, adjusted) if p < rule.alpha}
    strata = []
    for name in dict.fromkeys(v.stratum for v in merged):
        mine = [(v, p) for v, p in zip(merged, adjusted) if v.stratum == name]
        c = sum(id(v) in contradicted for v, _ in mine)
        s = sum(v.verdict is Verdict.SUPPORTED and id(v) not in contradicted for v, _ in mine)
        n = len(mine)
        min_p = min(p for _, p in mine)
        if c:
            verdict, why = Verdict.CONTRADICTED, (f"{c}/{n} contradicted after Holm over the claim's {len(merged)} "
                                                  f"votes (smallest adjusted p = {min_p:.3g})")
        elif s >= share * n:
            verdict, why = Verdict.SUPPORTED, (f"{s}/{n} support ({'every unit' if share == 1 else f'>= {share:.0%}'}"
                                               "), none contradicted")
        else:
            verdict, why = Verdict.INCONCLUSIVE, (f"{s}/{n} support ({'every unit needed' if share == 1 else f'< {share:.0%}'}"
                                                  "), none contradicted after Holm")
        strata.append(StratumVerdict(name, verdict, s, c, n - s - c, why, float(min_p)))
    decisive = weakest(strata)
    verdict = decisive.verdict if decisive else Verdict.INCONCLUSIVE
    per_vote = {key: p for key, p in zip(units, adjusted)}
    return ClaimDecision(verdict, tuple(strata), decisive,
                         tuple(float(per_vote[(v.stratum, v.unit)]) for v in votes))


def weakest(strata: Sequence[StratumVerdict]) -> StratumVerdict | None:
    """The stratum that decides a universal claim: CONTRADICTED (the strongest evidence against first),
    then INCONCLUSIVE (the smallest share of support first), then SUPPORTED."""
    def key(s: StratumVerdict) -> tuple:
        n = s.supported + s.contradicted + s.inconclusive
        return STRENGTH[s.verdict], s.min_p_contradict if s.verdict is Verdict.CONTRADICTED else 0.0, \
            s.supported / n if n else 0.0
    return min(strata, key=key, default=None)


def resampled_p_values(observed: float, resampled: np.ndarray) -> tuple[float, float]:
    """One-sided p-values of 'statistic > 0' and 'statistic < 0' from a resampling distribution
    (with the usual +1 correction, so a p-value is never 0)."""
    resampled = resampled[np.isfinite(resampled)]
    if not len(resampled) or not math.isfinite(observed):
        return 1.0, 1.0
    n = len(resampled)
    return (float((np.sum(resampled <= 0) + 1) / (n + 1)), float((np.sum(resampled >= 0) + 1) / (n + 1)))
