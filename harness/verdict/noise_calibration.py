"""How right is the SE of one paired difference, and which df keep its test honest: measured by simulation.

Issue 32 (items A and B). A replication draws what a rerun would redraw: one shared test set (labels,
each example's easiness, which examples each setting gets right), ``k`` seeds paired across the two
settings (their seed effects correlated), and each seed's own per-example noise; the predictions are
those of ``harness.verdict.calibration.simulate_runs`` (the calibration's noise model), or, where the
two settings' seed SDs differ, of ``simulate_heteroscedastic_runs`` (the same model with one seed SD per
setting). Each replication computes, from the predictions exactly as the engine does
(``harness.verdict.decision``), the mean difference ``D``, the seeds' term ``s^2 / k``, and the test-set
bootstrap's covariance of the per-seed differences, from which both the old test term (the whole variance
of the seed mean) and the new one (the seeds' shared part) follow.

Over the replications, with both settings at the same population accuracy (``D`` exactly at the
boundary: the null), ``noise_table`` gives per case and rule: how often the one-sided test at ``alpha``
rejects (the worse of its two sides) and how often ``p < tail_p`` (the far tail Holm's first step
needs), the coverage of the two-sided 95% interval, the SE ratio (median estimated SE / the SD of ``D``
over the replications), and the power at a true difference of ``(z_(1-alpha) + z_power)`` SDs of ``D``
(where a test with the SE known would have ``power``), read by shifting each replication's ``D``.

Item B (``one_run_table``): one-run tables (one seed per setting, no predictions: the paper's) with a
known run-to-run SD drawn per dataset like the spread of our records, judged by ``decide`` with the
assumed ``run_sd`` of 1 F1 and with a run SD measured from a simulated 3-seed replication of the same
datasets (``harness.verdict.run_noise``): the false-decision rate at the boundary, and the power.

The numbers in ``harness.verdict.decision``'s and ``harness.verdict.run_noise``'s docstrings and in
claims/README.md come from (default sizes and seeds)::

    python -c "from harness.verdict.noise_calibration import *; print(noise_table().to_string())"
    python -c "from harness.verdict.noise_calibration import *; from harness.verdict.replication import \
    kept_cells; from harness.verdict.sources import results_frame, PAPER_TEST_SIZES; from \
    harness.verdict.run_noise import measured_run_sd; print(one_run_table(one_run_cases(measured_run_sd( \
    results_frame(kept_cells('results/records/replication')[0], 'selected')), PAPER_TEST_SIZES)).to_string())"
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from harness.verdict.calibration import SETTINGS, NoiseRegime, mc_se, simulate_runs
from harness.verdict.claims import recovery_margin
from harness.verdict.decision import (
    DEFAULT_RULE,
    DecisionRule,
    Runs,
    bootstrap_covariance,
    satterthwaite_df,
    shared_test_var,
    weighted_f1_resampled,
    whole_test_var,
)
from harness.verdict.run_noise import DEFAULT_RUN_NOISE, RunNoiseRule, RunSD, run_sd_for, upper_bound

# The calibration's two regimes (harness.verdict.calibration.REGIMES), by name here: a seed SD of 0.03 on the
# probit scale is ~0.5 F1 at 85% accuracy, 0.15 is ~2.5 F1 (the calibration's seed-dominated case).
TEST_DOMINATED = NoiseRegime("test-set dominated", setting_item_sd=0.8, seed_sd=0.03)
SEED_DOMINATED = NoiseRegime("seed dominated", setting_item_sd=0.2, seed_sd=0.15)
# Between them, seeds ~30% of SE^2: the share issue 32's review measured on our records.
MIXED = NoiseRegime("mixed", setting_item_sd=0.5, seed_sd=0.07)
BALANCED = (0.5, 0.5)
BINARY_68_32 = (0.68, 0.32)  # MRPC's test split: 68% paraphrases
SIX_CLASS = (0.29, 0.35, 0.08, 0.14, 0.11, 0.03)  # Emotion's test split: joy/sadness dominate, surprise rare


@dataclass(frozen=True)
class NoiseCase:
    """One simulated comparison: the noise, the test set, the seeds and each setting's seed SD."""

    name: str
    regime: NoiseRegime
    n_test: int = 1000
    label_shares: tuple[float, ...] = BALANCED
    seeds: int = 3
    seed_factors: tuple[float, float] = (1.0, 1.0)  # low, high: each setting's seed SD, a multiple of the regime's
    accuracy: float = 85.0  # both settings' population accuracy: D at the boundary


def noise_case(regime: NoiseRegime, n_test: int, shares: tuple[float, ...],
               factors: tuple[float, float] = (1.0, 1.0), seeds: int = 3) -> NoiseCase:
    """A case named by what it is."""
    labels = "balanced binary" if shares == BALANCED else (
        "68/32 binary" if shares == BINARY_68_32 else f"{len(shares)}-class imbalanced")
    spread = "" if factors[0] == factors[1] else f", seed SD {factors[1] / factors[0]:g}x"
    return NoiseCase(f"{regime.name}, {labels}, n={n_test}, k={seeds}{spread}", regime, n_test, shares, seeds, factors)


# The calibration's structure (balanced binary, 1,000 examples, 3 seeds) in each regime, then the harsher
# variant: imbalanced labels (MRPC's 68/32, a 6-class Emotion-like split) on RTE's 277, MRPC's 408 and 1,000
# examples, and one setting's seed SD 3x the other's (0.5x and 1.5x the regime's, so the mean stays).
HETEROSCEDASTIC = (0.5, 1.5)
STANDARD_CASES = tuple(noise_case(r, 1000, BALANCED) for r in (TEST_DOMINATED, MIXED, SEED_DOMINATED))
HARSH_CASES = tuple(noise_case(r, n, shares, HETEROSCEDASTIC)
                    for r in (TEST_DOMINATED, MIXED, SEED_DOMINATED)
                    for shares in (BINARY_68_32, SIX_CLASS) for n in (277, 408, 1000))
MORE_SEEDS = (noise_case(MIXED, 1000, BALANCED, seeds=5),
              noise_case(SEED_DOMINATED, 408, BINARY_68_32, HETEROSCEDASTIC, 5))
CASES = STANDARD_CASES + HARSH_CASES + MORE_SEEDS


@dataclass(frozen=True)
class NoiseSize:
    replications: int = 2000  # per case: the MC SE of a 5% rate is then 0.49 points
    resamples: int = 1000  # the engine's test_resamples
    seed: int = 0


@dataclass(frozen=True)
class Levels:
    alpha: float = DEFAULT_RULE.alpha
    tail_p: float = DEFAULT_RULE.alpha / 8  # Holm's first step over 8 comparisons: 0.00625
    coverage: float = 0.95
    power: float = DEFAULT_RULE.power


# ---------------------------------------------------------------- one replication


def draw_labels(rng: np.random.Generator, shares: Sequence[float], n: int) -> np.ndarray:
    return rng.choice(len(shares), size=n, p=np.asarray(shares) / np.sum(shares))


def simulate_heteroscedastic_runs(rng: np.random.Generator, labels: np.ndarray, accuracy: Sequence[float],
                                  noise: NoiseRegime, n_seeds: int, n_labels: int, seed_factors: Sequence[float]
                                  ) -> dict[tuple[str, float], list[np.ndarray]]:
    """``calibration.simulate_runs`` with one seed SD per setting (``seed_factors`` times the regime's):
    the same shared easiness, setting-item effects, seed effects correlated across settings and per-seed
    noise; each setting's ``mu`` set so its population accuracy is exactly its ``accuracy``."""
    n = len(labels)
    easiness = noise.easiness_sd * rng.standard_normal(n)
    shared_seed = rng.standard_normal(n_seeds)
    runs = {}
    for setting, acc, factor in zip(SETTINGS, accuracy, seed_factors):
        seed_sd = noise.seed_sd * factor
        scale = math.sqrt(1 + noise.easiness_sd ** 2 + noise.setting_item_sd ** 2 + seed_sd ** 2)
        mu = stats.norm.ppf(acc / 100.0) * scale
        item = noise.setting_item_sd * rng.standard_normal(n)
        u = seed_sd * (math.sqrt(noise.seed_correlation) * shared_seed
                       + math.sqrt(1 - noise.seed_correlation) * rng.standard_normal(n_seeds))
        correct = (mu + easiness + item)[None, :] + u[:, None] + rng.standard_normal((n_seeds, n)) > 0
        wrong = (labels[None, :] + rng.integers(1, n_labels, size=(n_seeds, n))) % n_labels
        runs[setting] = list(np.where(correct, labels[None, :], wrong))
    return runs


def simulate_pair(rng: np.random.Generator, case: NoiseCase, labels: np.ndarray) -> tuple[Runs, Runs]:
    """The low and high setting's runs (F1 by seed, predictions) on one shared test set."""
    accuracy, n_labels = (case.accuracy, case.accuracy), len(case.label_shares)
    if case.seed_factors[0] == case.seed_factors[1]:
        runs = simulate_runs(rng, labels, accuracy, case.regime, case.seeds, n_labels, case.seed_factors[0])
    else:
        runs = simulate_heteroscedastic_runs(rng, labels, accuracy, case.regime, case.seeds, n_labels,
                                             case.seed_factors)
    low, high = (runs[setting] for setting in SETTINGS[:2])
    f1 = weighted_f1_resampled(labels, np.stack(low + high), np.ones((1, len(labels))))[0]
    return tuple(Runs(dict(enumerate(f1[i * case.seeds:(i + 1) * case.seeds])), dict(enumerate(side)))
                 for i, side in enumerate((low, high)))


def replicate(case: NoiseCase, size: NoiseSize, rule: DecisionRule = DEFAULT_RULE) -> pd.DataFrame:
    """One row per replication: D, the seed term s^2/k, the old (whole) and new (shared) test terms."""
    rng = np.random.default_rng([size.seed, zlib.crc32(case.name.encode())])  # a case's draws: its own
    rule = replace(rule, test_resamples=size.resamples)
    seeds = list(range(case.seeds))
    rows = []
    for _ in range(size.replications):
        labels = draw_labels(rng, case.label_shares, case.n_test)
        low, high = simulate_pair(rng, case, labels)
        differences = np.array([high.f1[s] - low.f1[s] for s in seeds])
        covariance = bootstrap_covariance(low, high, seeds, labels, rule)
        rows.append({"difference": differences.mean(), "seed_var": differences.var(ddof=1) / case.seeds,
                     "test_whole": whole_test_var(covariance), "test_shared": shared_test_var(covariance)})
    return pd.DataFrame(rows).assign(k=case.seeds, n_test=case.n_test)


# ---------------------------------------------------------------- the df rules and what they give


SeRule = Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray]]  # replications -> (SE, df)


def old_se(found: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Before issue 32: the whole bootstrap variance plus s^2/k, on k - 1 df."""
    return np.sqrt(found["seed_var"] + found["test_whole"]).to_numpy(), (found["k"] - 1).to_numpy(float)


def new_se_seeds_df(found: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The shared test term plus s^2/k, on the seeds' k - 1 df."""
    return np.sqrt(found["seed_var"] + found["test_shared"]).to_numpy(), (found["k"] - 1).to_numpy(float)


def new_se_satterthwaite(found: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The shared test term plus s^2/k, on Welch-Satterthwaite's df (seeds k - 1, test set n - 1)."""
    df = [satterthwaite_df(a, k - 1, c, n - 1) for a, c, k, n in
          zip(found["seed_var"], found["test_shared"], found["k"], found["n_test"])]
    return np.sqrt(found["seed_var"] + found["test_shared"]).to_numpy(), np.asarray(df, float)


def new_se_normal(found: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The shared test term plus s^2/k, read on the normal (infinite df): the lower limit of any df rule."""
    return np.sqrt(found["seed_var"] + found["test_shared"]).to_numpy(), np.full(len(found), np.inf)


SE_RULES: Mapping[str, SeRule] = {
    "old: whole test term, k-1 df": old_se,
    "new: shared test term, k-1 df": new_se_seeds_df,
    "new: shared test term, Satterthwaite df": new_se_satterthwaite,
    "new: shared test term, normal": new_se_normal,
}


def rates(found: pd.DataFrame, se: np.ndarray, df: np.ndarray, truth: float, true_sd: float,
          levels: Levels = Levels()) -> dict[str, float]:
    """Null rejection (the worse side), far-tail rejection, coverage, SE ratio and power of one rule."""
    z = (found["difference"].to_numpy() - truth) / se
    upper, lower = stats.t.sf(z, df), stats.t.cdf(z, df)
    half_width = stats.t.ppf(0.5 + levels.coverage / 2, df) * se
    shift = (stats.norm.ppf(1 - levels.alpha) + stats.norm.ppf(levels.power)) * true_sd
    return {"null rejection": max(np.mean(upper < levels.alpha), np.mean(lower < levels.alpha)),
            "tail rejection": max(np.mean(upper < levels.tail_p), np.mean(lower < levels.tail_p)),
            "coverage": float(np.mean(np.abs(z * se) <= half_width)),
            "SE ratio": float(np.median(se) / true_sd),
            "RMS SE ratio": float(np.sqrt(np.mean(se ** 2)) / true_sd),
            "power": float(np.mean(stats.t.sf(z + shift / se, df) < levels.alpha)),
            "median df": float(np.median(df))}


def case_rows(case: NoiseCase, found: pd.DataFrame, rules: Mapping[str, SeRule] = SE_RULES,
              levels: Levels = Levels()) -> list[dict]:
    """Every rule's rates on one case's replications; truth 0 (both settings at the same accuracy)."""
    replications = len(found)
    true_sd = float(found["difference"].std(ddof=1))
    seed_share = float(np.mean(found["seed_var"]) / true_sd ** 2)
    common = {"case": case.name, "replications": replications, "true SD": true_sd,
              "seed share": seed_share,
              "mean D / MC SE": float(found["difference"].mean() / (true_sd / math.sqrt(replications))),
              "null bound": levels.alpha + 2 * mc_se(levels.alpha, replications),
              "tail bound": levels.tail_p + 2 * mc_se(levels.tail_p, replications)}
    return [{**common, "rule": name, **rates(found, *rule(found), 0.0, true_sd, levels)}
            for name, rule in rules.items()]


def noise_table(cases: Sequence[NoiseCase] = CASES, size: NoiseSize = NoiseSize(),
                rules: Mapping[str, SeRule] = SE_RULES, levels: Levels = Levels()) -> pd.DataFrame:
    """One row per (case, rule): see the module's docstring. ``seed share``: the mean seed term over the
    true variance of D (what share of the noise the seeds are)."""
    return pd.DataFrame([row for case in cases for row in case_rows(case, replicate(case, size), rules, levels)])


# ---------------------------------------------------------------- item B: one-run tables


@dataclass(frozen=True)
class OneRunCase:
    """One dataset of a one-run table: its true run-to-run SD, the df our replication measures it with, the
    paper's test-set size behind each score, and the scores' level (for the p(1-p)/n test term)."""

    dataset: str
    true_run_sd: float
    measured_df: int
    n_test: int
    f1: float = 88.0


@dataclass(frozen=True)
class OneRunSize:
    tables: int = 4000  # simulated one-run tables per dataset: the MC SE of a 5% rate is 0.34 points
    seed: int = 0


def one_run_cases(measured: Mapping[str, RunSD], test_sizes: Mapping[str, int]) -> tuple[OneRunCase, ...]:
    """Our datasets as one-run cases: the SD we measured taken as the truth, with the df we measured it on."""
    return tuple(OneRunCase(d, r.sd, r.df, int(test_sizes[d])) for d, r in sorted(measured.items()))


def run_sd_inputs(rng: np.random.Generator, cases: Sequence[OneRunCase], rule: RunNoiseRule
                  ) -> dict[str, np.ndarray]:
    """Per input kind, one run SD per case as the engine would get it from a fresh 3-seed replication of ours:
    the old assumed 1 F1, the measured SD (a chi-square draw around the truth on the case's df), its upper
    bound (``run_sd_for``), and, as if the dataset had never run, the upper bound pooled over the others."""
    measured = {c.dataset: RunSD(c.dataset, c.true_run_sd * math.sqrt(rng.chisquare(c.measured_df) / c.measured_df),
                                 c.measured_df, rule.level, math.nan, math.nan, 0, 0, 0) for c in cases}
    measured = {d: replace(r, upper=upper_bound(r.sd, r.df, rule.level)) for d, r in measured.items()}
    def never_run(fallback: str) -> np.ndarray:  # as if the case's dataset were not among ours
        return np.array([run_sd_for(c.dataset, {d: r for d, r in measured.items() if d != c.dataset},
                                    replace(rule, fallback=fallback)).run_sd for c in cases])
    return {"assumed 1.0": np.ones(len(cases)), "measured SD": np.array([measured[c.dataset].sd for c in cases]),
            f"measured, {rule.level:.0%} upper bound": np.array([run_sd_for(c.dataset, measured, rule).run_sd
                                                                  for c in cases]),
            f"never run: pooled, {rule.level:.0%} upper bound": never_run("pooled"),
            f"never run: largest {rule.level:.0%} upper bound of the others": never_run("largest")}


def one_run_p_values(case: OneRunCase, differences: np.ndarray, run_sds: np.ndarray, boundary: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(p_support, p_contradict) of ``decide`` on one-run scores ``case.f1`` and ``case.f1 + difference``, each
    with its ``run_sd``: ``decide``'s one-run arithmetic (``paired_noise``'s SE, the normal), vectorized so
    the simulation can afford its tens of thousands of tables (the tests check it against ``decide``)."""
    p = np.clip(np.array([np.full_like(differences, case.f1), case.f1 + differences]) / 100, 0.0, 1.0)
    se = np.sqrt(2 * run_sds ** 2 + 1e4 * (p * (1 - p)).sum(axis=0) / case.n_test)
    z = (differences - boundary) / se
    return stats.norm.sf(z), stats.norm.cdf(z)


def one_run_table(cases: Sequence[OneRunCase], size: OneRunSize = OneRunSize(),
                  rule: RunNoiseRule = DEFAULT_RUN_NOISE, decision_rule: DecisionRule = DEFAULT_RULE,
                  levels: Levels = Levels()) -> pd.DataFrame:
    """One row per (dataset, run-SD input): ``decide``'s false SUPPORTED and false CONTRADICTED rates with the
    true difference of two one-run scores exactly at the boundary (+margin), the same in the far tail
    (``p < levels.tail_p``, the worse side: what Holm's first step needs), and its power (SUPPORTED) at
    ``(z_(1-alpha) + z_power)`` true SDs above it. Each table draws the scores' difference around the truth
    with the true run noise and the test term ``decide`` assumes (its p(1-p)/n, independent scores: the
    worst case of the approximation), and a fresh measurement of the run SDs."""
    rng = np.random.default_rng(size.seed)
    boundary = recovery_margin()
    shift_in_sds = stats.norm.ppf(1 - decision_rule.alpha) + stats.norm.ppf(decision_rule.power)
    drawn = [run_sd_inputs(rng, cases, rule) for _ in range(size.tables)]
    bound = decision_rule.alpha + 2 * mc_se(decision_rule.alpha, size.tables)
    rows = []
    for i, case in enumerate(cases):
        p = case.f1 / 100
        true_sd = math.sqrt(2 * case.true_run_sd ** 2 + 2e4 * p * (1 - p) / case.n_test)
        errors = true_sd * rng.standard_normal(size.tables)
        for kind in drawn[0]:
            run_sds = np.array([inputs[kind][i] for inputs in drawn])
            p_support, p_contradict = one_run_p_values(case, boundary + errors, run_sds, boundary)
            p_powered, _ = one_run_p_values(case, boundary + errors + shift_in_sds * true_sd, run_sds, boundary)
            rows.append({"dataset": case.dataset, "true run SD": case.true_run_sd, "measured df": case.measured_df,
                         "n_test": case.n_test, "run SD input": kind, "median input": float(np.median(run_sds)),
                         "false SUPPORTED": float(np.mean(p_support < decision_rule.alpha)),
                         "false CONTRADICTED": float(np.mean(p_contradict < decision_rule.alpha)),
                         "bound (alpha + 2 MC SE)": bound,
                         "tail": float(max(np.mean(p_support < levels.tail_p), np.mean(p_contradict < levels.tail_p))),
                         "tail bound": levels.tail_p + 2 * mc_se(levels.tail_p, size.tables),
                         "power": float(np.mean(p_powered < decision_rule.alpha)), "tables": size.tables})
    return pd.DataFrame(rows)
