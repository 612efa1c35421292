"""The decision rule: how a comparison, a stratum and a claim get SUPPORTED, CONTRADICTED or INCONCLUSIVE.

A claim predicts an ordering, ``F1(low) < F1(high)``. ``decide`` judges one such comparison:

* SUPPORTED: the predicted direction, significantly (one-sided test at ``alpha``);
* CONTRADICTED: the opposite direction, significantly; or, where the claim asserts a loss (claims 1
  and 2: "never fully recovers", "more corruption is worse"), *equivalence*: both one-sided tests
  (TOST) place the difference inside ``±equivalence_margin``: complete recovery, or no degradation,
  shown rather than merely not refuted. The margin is what "fully" means, so equivalence decides
  even when the gap is also significantly above 0 (real, but too small to count as a loss);
* INCONCLUSIVE: neither. Its detail prints the minimum detectable difference (one-sided test at
  ``alpha`` with ``power``) so a reader can tell "underpowered" (a large MDD) from "equal" (a small
  one).

With 2+ seeds the test is a paired t-test over seeds (same seed = same data order, head init and
corruption draw); with one run per value (the paper's tables, a one-seed grid) the only noise that
can be quantified is the test set's sampling error, a *lower bound* on the real noise.

Strata (``stratum_verdict``): each claim speaks about several parts of the grid separately (claim 1
about every corruption setting, ...). A stratum is SUPPORTED when at least ``stratum_min_share`` of
its comparisons support it and at most ``stratum_max_opposed`` contradict it, CONTRADICTED in the
mirror case, else INCONCLUSIVE: the rule is symmetric. A claim's headline is its *weakest* stratum
(``weakest``): a universal statement holds only where each of its parts holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from statistics import NormalDist

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

    # One-sided tests at 5%, the conventional level; with the handful of seeds a CPU grid affords,
    # weaker evidence is noise.
    alpha: float = 0.05
    # Power at which the minimum detectable difference (MDD) of an inconclusive comparison is stated:
    # 80%, the usual planning value.
    power: float = 0.8
    # "Fully recovers" / "no degradation" means within 1 F1 point: the paper prints two decimals but
    # BERT's own seed-to-seed spread on these tasks is 1-2 points (Mosbach et al., 2021; the paper's
    # Appendix A), so a smaller gap is no practical loss. Equivalence is shown by TOST at ``alpha``.
    equivalence_margin: float = 1.0
    # Claims whose prediction is a strict loss, so that shown equivalence refutes them. Claim 3
    # (bottom worse than top) is not among them: at high levels both corruptions reach the same floor
    # (the 100% model), where equality is expected rather than a refutation.
    equivalence_refutes: tuple[str, ...] = ("no-complete-recovery", "monotone-degradation")
    # Values printed to two decimals carry at most 0.005 of rounding: never a tolerance below 0.01.
    min_tolerance: float = 0.01
    # Stratum rule, symmetric: at least half of a stratum's comparisons must go one way (so a few
    # decisive cases among many undecided ones decide nothing) and at most one in ten the other way
    # (the paper states trends "generally" and marks its own outliers).
    stratum_min_share: float = 0.5
    stratum_max_opposed: float = 0.1
    # Claim 5 (label separation, in percent of the clean model's): "clean >= top" holds when the two are
    # within 10% of the clean model's separation. Margin widths have no reference noise like F1's, so
    # the margin is stated, not fitted: a tenth of the clean model's own separation is far below the
    # differences Figure 1 is read for (clusters kept vs lost).
    separation_margin: float = 10.0
    # Resampling (claim 4): enough resamples for a p-value near 0.05 to be stable to +-0.005; fixed
    # seed, so the same results give the same verdict.
    resamples: int = 2000
    resampling_seed: int = 0

    # ---------------------------------------------------------------- noise of one run

    def single_run_se(self, f1_a: float, f1_b: float, n_test: float) -> float:
        """Standard error (F1 points) of the difference of two single scores on ``n_test`` examples.

        Weighted F1 behaves like an accuracy p measured on n examples, SE sqrt(p(1-p)/n); the two
        scores are treated as independent (they share the test set, which makes this cautious).
        """
        p = np.clip(np.array([f1_a, f1_b]) / 100.0, 0.0, 1.0)
        return 100.0 * math.sqrt(float(np.sum(p * (1 - p))) / n_test)

    def single_run_tolerance(self, f1_a: float, f1_b: float, n_test: float) -> float:
        """One-sided critical difference (F1 points) of two single scores: z_(1-alpha) * SE."""
        return max(NormalDist().inv_cdf(1 - self.alpha) * self.single_run_se(f1_a, f1_b, n_test), self.min_tolerance)

    def for_separation(self) -> "DecisionRule":
        """The same rule with claim 5's equivalence margin (percent of the clean model's separation)."""
        return replace(self, equivalence_margin=self.separation_margin)

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
    mdd: float | None = None  # minimum detectable difference at this comparison's noise
    equivalent: bool = False  # TOST placed the difference inside +-equivalence_margin


def _tests(mean: float, se: float, rule: DecisionRule, df: int | None) -> dict[str, float]:
    """One-sided p-values for 'higher' and 'lower', TOST's p for equivalence, and the MDD."""
    dist = stats.norm if df is None else stats.t(df)
    margin = rule.equivalence_margin
    if se == 0:  # the same difference in every seed: no noise, the value itself decides
        return {"p_greater": float(mean <= 0), "p_less": float(mean >= 0),
                "p_equivalent": float(abs(mean) >= margin), "mdd": 0.0}
    p_equivalent = max(float(dist.sf((mean + margin) / se)), float(dist.cdf((mean - margin) / se)))
    return {"p_greater": float(dist.sf(mean / se)), "p_less": float(dist.cdf(mean / se)),
            "p_equivalent": p_equivalent, "mdd": float((dist.ppf(1 - rule.alpha) + dist.ppf(rule.power)) * se)}


def decide(low: Mapping[int, float], high: Mapping[int, float], n_test: float, rule: DecisionRule = DEFAULT_RULE,
           *, equivalence_refutes: bool = False, equivalence_supports: bool = False) -> Decision:
    """Verdict on the prediction F1(low) < F1(high); ``low``/``high`` map seed -> F1.

    ``equivalence_refutes``: the claim predicts a strict loss, so a difference shown to lie within
    the equivalence margin is CONTRADICTED. ``equivalence_supports``: the claim predicts low <= high,
    so a difference shown to lie within the margin is SUPPORTED (as is a significant one).
    """
    seeds = sorted(set(low) & set(high))
    if not seeds:
        return Decision(Verdict.INCONCLUSIVE, {}, "no seed in common: nothing to pair")
    low_f1 = np.array([low[s] for s in seeds], dtype=float)
    high_f1 = np.array([high[s] for s in seeds], dtype=float)
    diff = high_f1 - low_f1
    mean = float(diff.mean())
    values = {"low": float(low_f1.mean()), "high": float(high_f1.mean()), "difference": mean, "n_seeds": len(seeds)}
    if len(seeds) == 1:
        se = rule.single_run_se(values["low"], values["high"], n_test)
        tolerance = rule.single_run_tolerance(values["low"], values["high"], n_test)
        found = _tests(mean, se, rule, df=None)
        # The tolerance floor (rounding of printed values) applies to the direction tests too.
        found["p_greater"] = found["p_greater"] if mean > rule.min_tolerance else 1.0
        found["p_less"] = found["p_less"] if mean < -rule.min_tolerance else 1.0
        values["tolerance"] = tolerance
        noise = (f"one run: test-set noise at n_test={n_test:g}, SE {se:.2f}, a lower bound on the real noise "
                 f"(tolerance ±{tolerance:.2f})")
    else:
        se = float(diff.std(ddof=1) / math.sqrt(len(seeds)))
        found = _tests(mean, se, rule, df=len(seeds) - 1)
        noise = f"{len(seeds)} paired seeds, SE {se:.2f} (one-sided paired t-test)"
    values.update(se=se, p_greater=found["p_greater"], p_less=found["p_less"], p_equivalent=found["p_equivalent"],
                  mdd=found["mdd"])
    equivalent = found["p_equivalent"] < rule.alpha
    verdict = rule.verdict_of(found["p_greater"], found["p_less"])
    text = f"difference {mean:+.2f}, {noise}: p(higher) = {found['p_greater']:.3g}, p(lower) = {found['p_less']:.3g}"
    if equivalent and equivalence_refutes:
        # The margin defines "fully recovered" / "not degraded": a gap shown to lie inside it refutes a
        # claim of loss even when it is also significantly above 0 (a real but negligible gap).
        verdict = Verdict.CONTRADICTED
        text += (f"; equivalent within ±{rule.equivalence_margin:g} (TOST p = {found['p_equivalent']:.3g}): "
                 "no loss beyond the margin where the claim predicts one")
    elif equivalent and equivalence_supports:
        verdict = Verdict.SUPPORTED
        text += (f"; equivalent within ±{rule.equivalence_margin:g} (TOST p = {found['p_equivalent']:.3g}): "
                 "equal counts for an 'at least' prediction")
    elif verdict is Verdict.INCONCLUSIVE:
        text += (f"; minimum detectable difference {found['mdd']:.2f} "
                 f"({'equivalent within ±' + format(rule.equivalence_margin, 'g') if equivalent else 'not shown equal'})")
    return Decision(verdict, values, text, found["mdd"], equivalent)


# ---------------------------------------------------------------- strata and headlines


@dataclass(frozen=True)
class StratumVerdict:
    name: str
    verdict: Verdict
    supported: int
    contradicted: int
    inconclusive: int
    detail: str


def stratum_verdict(name: str, verdicts: Iterable[Verdict], rule: DecisionRule = DEFAULT_RULE) -> StratumVerdict:
    """The symmetric rule: a share for one side and few for the other; INCONCLUSIVE otherwise."""
    verdicts = list(verdicts)
    s, c, i = (verdicts.count(v) for v in (Verdict.SUPPORTED, Verdict.CONTRADICTED, Verdict.INCONCLUSIVE))
    n = len(verdicts)
    need, allow = rule.stratum_min_share, rule.stratum_max_opposed
    if n and s >= need * n and c <= allow * n:
        verdict, why = Verdict.SUPPORTED, f"{s}/{n} support (>= {need:.0%}), {c}/{n} contradict (<= {allow:.0%})"
    elif n and c >= need * n and s <= allow * n:
        verdict, why = Verdict.CONTRADICTED, f"{c}/{n} contradict (>= {need:.0%}), {s}/{n} support (<= {allow:.0%})"
    else:
        verdict, why = Verdict.INCONCLUSIVE, (f"{s}/{n} support, {c}/{n} contradict: neither side has >= {need:.0%} "
                                              f"with the other <= {allow:.0%}")
    return StratumVerdict(name, verdict, s, c, i, why)


def weakest(strata: Iterable[StratumVerdict]) -> StratumVerdict | None:
    """The stratum that decides a universal claim: CONTRADICTED before INCONCLUSIVE before SUPPORTED."""
    return min(strata, key=lambda s: STRENGTH[s.verdict], default=None)


def resampled_p_values(observed: float, resampled: np.ndarray) -> tuple[float, float]:
    """One-sided p-values of 'statistic > 0' and 'statistic < 0' from a bootstrap distribution.

    Percentile bootstrap with the usual +1 correction, so a p-value is never 0.
    """
    resampled = resampled[np.isfinite(resampled)]
    if not len(resampled) or not math.isfinite(observed):
        return 1.0, 1.0
    n = len(resampled)
    return (float((np.sum(resampled <= 0) + 1) / (n + 1)), float((np.sum(resampled >= 0) + 1) / (n + 1)))
