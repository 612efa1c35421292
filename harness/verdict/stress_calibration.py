"""A harsher calibration: the decision rule on simulated grids built to be hard, not kind (issue 32, item 8).

``harness.verdict.calibration`` and ``harness.verdict.pooled_calibration`` simulate kind data: balanced binary
labels, 1,000 test examples, one seed spread for every setting, no failed runs, every dataset with the same
truth. Their tables err rarely, but mostly because the rule rarely decides. This module simulates what real
grids have and those don't:

* **labels**: an Emotion-like 6-class test set (Emotion's shares: .29 .35 .08 .14 .11 .03), a 68/32 binary one
  (MRPC) and a balanced one; **errors lean to the majority class**: examples of the other classes are harder
  (``minority_penalty`` on the probit scale) and a wrong prediction goes to the majority class with probability
  ``majority_pull`` beyond its even share;
* **small test sets**: 277 (RTE) and 408 (MRPC) examples beside 1,000;
* **heteroscedastic seeds**: a corrupted setting's seed-to-seed SD of F1 is ``corrupted_seed_factor`` (2.5) times
  the clean one's, measured on F1 (the run's own example-level noise included);
* **collapsed runs**: with a probability per run and setting (``collapse``: 2% clean, 8% corrupted) a run predicts
  the majority class for every example but a ``collapse_leak`` share;
* **item effects correlated across settings** (``item_correlation``): the settings get many of the same
  examples right, beyond the easiness every setting shares;
* **datasets with different truths in one replication**: a scenario's ``odd_f1`` holds on a quarter of the
  datasets (drawn per grid), its ``f1`` on the others; test sets, hence weights, differ across datasets;
* **one run per setting** (the paper's tables): ``seeds = 1``, judged with the rule's one-run noise model.

A run's prediction of example ``i`` is right when ``mu_s + e_i + eta_(s,i) + u_(s,seed) + eps > 0``: ``e_i`` the
example's easiness (lower for non-majority classes), ``eta`` the setting's item effect (a share common to every
setting), ``u`` the seed's effect (correlated across a seed's settings), ``eps`` the run's own noise. ``mu_s`` and
the SD of ``u`` are solved so the population weighted F1 of a healthy run is exactly the scenario's and its seed
SD is the regime's (``setting_parameters``).

**Truth, per the claims' words.** A scenario states each claim's truth on the healthy runs' population F1 of
every dataset: claim 1 ("never fully recovers") and claim 3 ("bottom is worse than top") are universal, as is
claim 2 ("more corruption, lower F1" at every step), so a scenario where a quarter of the datasets fully recover
is one where claim 1 *fails*, however large the mean gap. A collapsed run is a failed training that a rerun
redraws, not a property of the setting: the truth ignores it, and the rule should neither credit nor blame it.

Two paths, as the existing calibrations: one grid judged whole (``harness.verdict.claims.evaluate_claims`` and
``harness.verdict.verdicts.aggregate``: every claim ``aggregate`` returns is tallied by name) and the
replication's pooled verdicts (``harness.verdict.replication``: per dataset, random-effects pooling, the claim over
its pooled strata). Per claim and case: the false-SUPPORTED rate (truth ``fails`` or ``boundary``), the
false-CONTRADICTED rate (``holds`` or ``boundary``), the power beside them (SUPPORTED where it holds,
CONTRADICTED where it fails), each with its Monte-Carlo SE, the bound ``alpha + 2 MC SE``, and where the rule
cannot decide by construction. A case above the bound is simulated again on fresh grids (``recheck``).
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from harness.errors import BadInput
from harness.files import check_writable, write_json_atomic
from harness.method.digest import source_digest
from harness.verdict.calibration import SETTINGS, markdown_table, mc_se
from harness.verdict.claims import SPECS, evaluate_claims
from harness.verdict.decision import DEFAULT_RULE, DecisionRule, Verdict, weighted_f1_resampled
from harness.verdict.declared import CLAIMS_FILE
from harness.verdict.replication import (
    DEFAULT_POOLING,
    ORDERING_CLAIMS,
    PoolingRule,
    gaps_of,
    per_dataset,
    pool,
    pooled_claim,
)
from harness.verdict.run_noise import measured_run_sd, run_sd_for
from harness.verdict.verdicts import aggregate

# claims/claims.yaml's names of the three findings with a gap, which these simulations build truths for
RECOVERY, DEGRADATION, BOTTOM_WORSE = "no-complete-recovery", "monotone-degradation", "bottom-worse-than-top"

NOT_SIMULATED = "not simulated"  # a claim the scenario states no truth for (no probe, no separation here)


# ---------------------------------------------------------------- test sets, noise, scenarios


@dataclass(frozen=True)
class TestSet:
    """One dataset's test set: its size and class shares (the labels are drawn with exactly these counts)."""

    __test__ = False  # not a pytest class
    name: str
    n_test: int
    shares: tuple[float, ...]

    def __post_init__(self):
        if len(self.shares) < 2 or min(self.shares) <= 0 or abs(sum(self.shares) - 1.0) > 1e-9:
            raise BadInput(f"{self.name}: class shares must be >= 2 positive numbers summing to 1, got {self.shares}")

    @property
    def majority(self) -> int:
        return int(np.argmax(self.shares))

    @property
    def balanced(self) -> bool:
        return max(self.shares) - min(self.shares) < 1e-9


BALANCED = TestSet("balanced binary, 1,000", 1000, (0.5, 0.5))
RTE_LIKE = TestSet("RTE-like binary, 277", 277, (0.5, 0.5))
MRPC_LIKE = TestSet("MRPC-like binary 68/32, 408", 408, (0.32, 0.68))
# Emotion's own test set (2,000: sadness 581, joy 695, love 159, anger 275, fear 224, surprise 66), at 1,000
EMOTION_LIKE = TestSet("Emotion-like 6 classes, 1,000", 1000, (0.2905, 0.3475, 0.0795, 0.1375, 0.112, 0.033))


@dataclass(frozen=True)
class StressNoise:
    """The sources of noise (probit scale of one example's correctness, seed SDs in F1 points)."""

    name: str
    easiness_sd: float = 1.0  # e_i, shared by every run
    item_sd: float = 0.5  # eta: which examples a setting gets right, fixed for the grid
    item_correlation: float = 0.7  # share of eta's variance common to every setting
    run_sd: float = 0.6  # eps: a run's own noise per example (small: seeds agree on most examples)
    clean_seed_sd: float = 0.5  # the clean setting's seed-to-seed SD of F1 (points; at least its own noise's)
    corrupted_seed_factor: float = 2.5  # a corrupted setting's seed SD over the clean one's (2-3x, asked)
    seed_correlation: float = 0.5  # of u across the settings of one seed (same data order and head)
    minority_penalty: float = 0.4  # non-majority examples are this much harder: errors lean to the majority class
    majority_pull: float = 0.4  # a wrong prediction goes to the majority class with this extra probability
    collapse: tuple[float, float] = (0.02, 0.08)  # per-run probability of a collapsed run: clean, corrupted
    collapse_leak: float = 0.02  # share of examples a collapsed run still predicts as a healthy one would

    def collapse_probability(self, corrupted: bool) -> float:
        return self.collapse[1] if corrupted else self.collapse[0]


STRESS_REGIMES = (
    # The run's own example noise alone spreads F1 by ~1 point on 1,000 examples, so "test-set dominated"
    # means a large item effect and seed spreads near that floor.
    StressNoise("test-set dominated", item_sd=0.8, clean_seed_sd=0.8),
    StressNoise("seed dominated", item_sd=0.3, clean_seed_sd=1.5),
)


@dataclass(frozen=True)
class StressScenario:
    """Healthy runs' population weighted F1 (clean, bottom 50%, top 50%, 100%) of most datasets, and of the odd
    ``odd_share`` of them (at least one, drawn per grid); each claim's truth over all datasets, per its words."""

    name: str
    f1: tuple[float, float, float, float]
    truth: Mapping[str, str]
    odd_f1: tuple[float, float, float, float] | None = None
    odd_share: float = 0.25


STORY = (86.0, 80.0, 83.0, 74.0)
STRESS_SCENARIOS = (
    StressScenario("the paper's story", STORY,
                   {RECOVERY: "holds", DEGRADATION: "holds", BOTTOM_WORSE: "holds"}),
    StressScenario("a quarter heal fully at top, the rest lose 3", STORY,
                   {RECOVERY: "fails", DEGRADATION: "fails", BOTTOM_WORSE: "holds"}, odd_f1=(86.0, 80.0, 86.0, 74.0)),
    StressScenario("a quarter lose exactly the margin at top", STORY,
                   {RECOVERY: "boundary", DEGRADATION: "boundary", BOTTOM_WORSE: "holds"},
                   odd_f1=(86.0, 80.0, 85.0, 74.0)),
    StressScenario("bottom = top on a quarter", STORY,
                   {RECOVERY: "holds", DEGRADATION: "holds", BOTTOM_WORSE: "boundary"},
                   odd_f1=(86.0, 81.5, 81.5, 74.0)),
    StressScenario("bottom above top on a quarter", STORY,
                   {RECOVERY: "holds", DEGRADATION: "holds", BOTTOM_WORSE: "fails"}, odd_f1=(86.0, 83.0, 80.0, 74.0)),
    StressScenario("nothing changes", (85.0, 85.0, 85.0, 85.0),
                   {RECOVERY: "fails", DEGRADATION: "fails", BOTTOM_WORSE: "boundary"}),
)


@dataclass(frozen=True)
class Layout:
    """Which test sets a simulated grid's datasets have (cycled), how many, and which rule judges them."""

    name: str
    test_sets: tuple[TestSet, ...]
    datasets: int
    pooled: bool = False  # False: one grid judged whole; True: the replication's pooled verdicts

    def test_set(self, d: int) -> TestSet:
        return self.test_sets[d % len(self.test_sets)]


MIXED = (EMOTION_LIKE, MRPC_LIKE, RTE_LIKE, BALANCED)  # unequal sizes, so unequal weights when pooled
LAYOUTS = (
    Layout("Emotion-like", (EMOTION_LIKE,), 1),
    Layout("MRPC-like", (MRPC_LIKE,), 1),
    Layout("RTE-like", (RTE_LIKE,), 1),
    Layout("mixed", MIXED, 8),
    Layout("mixed, pooled", MIXED, 4, pooled=True),
    Layout("mixed, pooled", MIXED, 8, pooled=True),
)


@dataclass(frozen=True)
class StressSize:
    grids: int = 200  # simulated grids per case
    seeds: tuple[int, ...] = (3, 1)  # seeds per setting: the grid's 3, and one run (the paper's tables)
    layouts: tuple[Layout, ...] = LAYOUTS
    difficulty_sd: float = 3.0  # datasets differ in difficulty: every setting shifted alike
    seed: int = 0


# ---------------------------------------------------------------- the population: mu and the seed SD per setting


def class_offsets(test_set: TestSet, noise: StressNoise) -> np.ndarray:
    """Mean easiness per class: non-majority classes are harder (none where the classes are balanced)."""
    offsets = np.full(len(test_set.shares), -noise.minority_penalty)
    offsets[test_set.majority] = 0.0
    return np.zeros(len(test_set.shares)) if test_set.balanced else offsets


def wrong_label_shares(test_set: TestSet, noise: StressNoise) -> np.ndarray:
    """(L, L): where a wrong prediction of each true class goes; the majority class draws ``majority_pull`` more."""
    n_labels, majority = len(test_set.shares), test_set.majority
    shares = (1.0 - np.eye(n_labels)) / (n_labels - 1)
    if n_labels > 2 and not test_set.balanced:
        pulled = np.arange(n_labels) != majority
        shares[pulled] *= 1.0 - noise.majority_pull
        shares[pulled, majority] += noise.majority_pull
    return shares


def _population(mu: float, test_set: TestSet, noise: StressNoise, extra_var: float) -> tuple[float, float]:
    """Population weighted F1 and accuracy (percent) of a run at ``mu``, with ``extra_var`` beyond the item and
    run noise marginalised (the seed effect's variance, or 0 for one seed's run)."""
    shares = np.asarray(test_set.shares)
    sd = math.sqrt(noise.run_sd ** 2 + noise.easiness_sd ** 2 + noise.item_sd ** 2 + extra_var)
    accuracy = special.ndtr((mu + class_offsets(test_set, noise)) / sd)
    confusion = np.diag(accuracy) + (1.0 - accuracy)[:, None] * wrong_label_shares(test_set, noise)
    joint = shares[:, None] * confusion
    f1 = 2 * np.diag(joint) / (shares + joint.sum(axis=0))
    return float(100 * np.sum(shares * f1)), float(100 * np.sum(shares * accuracy))


def _run_noise_accuracy_var(mu: float, test_set: TestSet, noise: StressNoise) -> float:
    """Variance (percent²) of one run's accuracy from its own example noise ``eps`` alone, items held:
    ``sum_c share_c E[q(1 - q) | c] / n`` with ``q`` an example's chance of being right (Gauss-Hermite)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    item_sd = math.sqrt(noise.easiness_sd ** 2 + noise.item_sd ** 2)
    q = special.ndtr((mu + class_offsets(test_set, noise)[:, None] + item_sd * nodes[None, :]) / noise.run_sd)
    spread = (q * (1 - q)) @ weights / math.sqrt(2 * math.pi)
    return float(1e4 * np.sum(np.asarray(test_set.shares) * spread) / test_set.n_test)


def _solve_mu(test_set: TestSet, noise: StressNoise, f1: float, extra_var: float) -> float:
    return optimize.brentq(lambda m: _population(m, test_set, noise, extra_var)[0] - f1, -15.0, 15.0)


def _slope_and_own_var(test_set: TestSet, noise: StressNoise, f1: float) -> tuple[float, float]:
    """F1's slope in a seed's shift ``u`` at a run of population F1 ``f1``, and the variance (points²) of its F1
    from its own example noise alone (delta method from accuracy)."""
    mu, h = _solve_mu(test_set, noise, f1, 0.0), 1e-3
    up, down = _population(mu + h, test_set, noise, 0.0), _population(mu - h, test_set, noise, 0.0)
    f1_slope, accuracy_slope = (up[0] - down[0]) / (2 * h), (up[1] - down[1]) / (2 * h)
    return f1_slope, _run_noise_accuracy_var(mu, test_set, noise) * (f1_slope / accuracy_slope) ** 2


@lru_cache(maxsize=4096)
def seed_sds(test_set: TestSet, noise: StressNoise, clean_f1: float) -> tuple[float, float]:
    """The seed-to-seed SD of F1 (points) of the clean and of a corrupted setting on this test set: the clean one
    is the regime's, or the floor its own example noise sets where that is larger (a small test set); a
    corrupted one is ``corrupted_seed_factor`` times it."""
    clean = max(noise.clean_seed_sd, math.sqrt(_slope_and_own_var(test_set, noise, clean_f1)[1]))
    return clean, noise.corrupted_seed_factor * clean


@lru_cache(maxsize=4096)
def setting_parameters(test_set: TestSet, noise: StressNoise, f1: float, seed_sd: float) -> tuple[float, float]:
    """``(mu, SD of u)`` so that a healthy run's population weighted F1 is ``f1`` and F1's seed-to-seed SD on this
    test set is ``seed_sd`` points: the run's own example noise already spreads F1, ``u`` adds the rest."""
    f1_slope, own_var = _slope_and_own_var(test_set, noise, f1)
    u_sd = math.sqrt(max(seed_sd ** 2 - own_var, 0.0)) / f1_slope
    return _solve_mu(test_set, noise, f1, u_sd ** 2), u_sd


def majority_f1(labels: np.ndarray) -> float:
    """Weighted F1 (percent) of predicting the majority class for every example: the floor of the rule."""
    shares = np.bincount(labels) / len(labels)
    top = shares.max()
    return float(100 * top * 2 * top / (1 + top))


# ---------------------------------------------------------------- simulated runs


def exact_labels(rng: np.random.Generator, test_set: TestSet) -> np.ndarray:
    """A test set with the class counts its shares give (largest remainder), in random order."""
    raw = np.asarray(test_set.shares) * test_set.n_test
    counts = np.floor(raw).astype(int)
    counts[np.argsort(counts - raw)[: test_set.n_test - counts.sum()]] += 1
    return rng.permutation(np.repeat(np.arange(len(counts)), counts))


@dataclass(frozen=True)
class DatasetRuns:
    """One dataset's simulated runs: predictions by setting (seeds x examples) and which runs collapsed."""

    test_set: TestSet
    labels: np.ndarray = field(repr=False)
    predictions: dict[tuple[str, float], np.ndarray] = field(repr=False)
    collapsed: dict[tuple[str, float], np.ndarray] = field(repr=False)
    f1_targets: tuple[float, ...] = ()


def simulate_dataset(rng: np.random.Generator, test_set: TestSet, f1_targets: Sequence[float], noise: StressNoise,
                     n_seeds: int) -> DatasetRuns:
    """Every (setting, seed) run of one dataset on its one shared test set."""
    labels = exact_labels(rng, test_set)
    n, n_labels, majority = len(labels), len(test_set.shares), test_set.majority
    easiness = class_offsets(test_set, noise)[labels] + noise.easiness_sd * rng.standard_normal(n)
    common_item = rng.standard_normal(n)
    shared_seed = rng.standard_normal(n_seeds)
    pull = noise.majority_pull if n_labels > 2 and not test_set.balanced else 0.0  # binary: the one other class
    predictions, collapsed = {}, {}
    spread = seed_sds(test_set, noise, float(f1_targets[0]))  # SETTINGS[0] is clean
    for setting, target in zip(SETTINGS, f1_targets):
        corrupted = setting[0] != "none"
        mu, u_sd = setting_parameters(test_set, noise, float(target), spread[corrupted])
        eta = noise.item_sd * (math.sqrt(noise.item_correlation) * common_item
                               + math.sqrt(1 - noise.item_correlation) * rng.standard_normal(n))
        u = u_sd * (math.sqrt(noise.seed_correlation) * shared_seed
                    + math.sqrt(1 - noise.seed_correlation) * rng.standard_normal(n_seeds))
        correct = (mu + easiness + eta)[None, :] + u[:, None] + noise.run_sd * rng.standard_normal((n_seeds, n)) > 0
        # wrong: the majority class with probability ``pull``, else any other class evenly (wrong_label_shares)
        other = (labels[None, :] + rng.integers(1, n_labels, size=(n_seeds, n))) % n_labels
        pulled = (labels[None, :] != majority) & (rng.random((n_seeds, n)) < pull)
        wrong = np.where(pulled, majority, other)
        predicted = np.where(correct, labels[None, :], wrong)
        failed = rng.random(n_seeds) < noise.collapse_probability(corrupted)
        keep = rng.random((n_seeds, n)) < noise.collapse_leak
        predicted = np.where(failed[:, None] & ~keep, majority, predicted)
        predictions[setting], collapsed[setting] = predicted, failed
    return DatasetRuns(test_set, labels, predictions, collapsed, tuple(float(t) for t in f1_targets))


def dataset_targets(rng: np.random.Generator, scenario: StressScenario, n_datasets: int, difficulty_sd: float
                    ) -> list[tuple[float, ...]]:
    """Each dataset's healthy F1 per setting: the scenario's (its odd quarter drawn), shifted by a difficulty."""
    n_odd = max(1, round(scenario.odd_share * n_datasets)) if scenario.odd_f1 else 0
    odd = set(rng.choice(n_datasets, n_odd, replace=False).tolist()) if n_odd else set()
    found = []
    for d in range(n_datasets):
        shift = difficulty_sd * rng.standard_normal()
        found.append(tuple(float(np.clip(f + shift, 60.0, 97.0))
                           for f in (scenario.odd_f1 if d in odd else scenario.f1)))
    return found


def simulate_stress_grid(rng: np.random.Generator, scenario: StressScenario, noise: StressNoise, layout: Layout,
                         n_seeds: int, difficulty_sd: float = 3.0) -> tuple[pd.DataFrame, dict, list[DatasetRuns]]:
    """Full fine-tuning on the layout's datasets: a tidy frame, its predictions (identity -> (labels, predicted))
    and the runs themselves (for the checks of the simulator)."""
    rows, predictions, datasets = [], {}, []
    for d, targets in enumerate(dataset_targets(rng, scenario, layout.datasets, difficulty_sd)):
        runs = simulate_dataset(rng, layout.test_set(d), targets, noise, n_seeds)
        datasets.append(runs)
        ones, floor = np.ones((1, len(runs.labels))), majority_f1(runs.labels)
        for setting, by_seed in runs.predictions.items():
            f1 = weighted_f1_resampled(runs.labels, by_seed, ones)[0]
            for seed, predicted in enumerate(by_seed):
                identity = f"d{d}-{setting[0]}-{seed}"
                predictions[identity] = (runs.labels, predicted)
                rows.append({"table": "mean-full", "model": "sim", "dataset": f"data{d}", "pooling": "mean",
                             "mode": "full", "position": setting[0], "level": setting[1], "seed": seed,
                             "n_test": len(runs.labels), "f1": float(f1[seed]), "identity": identity, "epoch": 1,
                             "majority_f1": floor})
    return pd.DataFrame(rows), predictions, datasets


# ---------------------------------------------------------------- verdicts, tallied


def grid_verdicts(frame: pd.DataFrame, predictions: dict, rule: DecisionRule,
                  run_sd: Mapping[str, float] | None = None) -> dict[str, Verdict]:
    """Every claim's headline as the one-grid entry points give it, by name (``run_sd``: one run's SD per dataset
    for a one-run grid, as ``judge`` passes it)."""
    comparisons = evaluate_claims(frame, "results", rule, (), None, predictions, run_sd=run_sd)
    return {claim: verdict.verdict for claim, verdict in aggregate(comparisons, rule).items()}


def pooled_verdicts(frame: pd.DataFrame, predictions: dict, rule: DecisionRule, pooling: PoolingRule,
                    run_sd: Mapping[str, float] | None = None) -> dict[str, Verdict]:
    """Claims 1-3's pooled headlines as the replication gives them (none pooled: INCONCLUSIVE)."""
    gaps = [g for d in per_dataset(frame, "results", rule, predictions=predictions, run_sd=run_sd)
            for g in gaps_of(d.comparisons, "ours")]
    pooled = pool(gaps, rule, pooling)
    found = {}
    for claim in ORDERING_CLAIMS:
        decision = pooled_claim(pooled, claim, "ours", rule)
        found[claim] = decision.verdict if decision else Verdict.INCONCLUSIVE
    return found


MEASURING_SEEDS = 3  # the seeds a one-run grid's run SD is measured on, as ours is (harness.verdict.run_noise)


def simulate_with_measured_run_sd(rng: np.random.Generator, case: Case, difficulty_sd: float
                                  ) -> tuple[pd.DataFrame, dict, dict[str, float] | None]:
    """One simulated grid, and for a one-run grid the run SD its verdicts take: measured as ours is, on
    ``MEASURING_SEEDS`` more seeds of the same datasets (``run_noise.measured_run_sd``, its upper bound through
    ``run_sd_for``), never the rule's assumed 1 F1 (the paper's one-run numbers never take that either)."""
    if case.seeds > 1:
        frame, predictions, _ = simulate_stress_grid(rng, case.scenario, case.noise, case.layout, case.seeds,
                                                     difficulty_sd)
        return frame, predictions, None
    frame, predictions, _ = simulate_stress_grid(rng, case.scenario, case.noise, case.layout, 1 + MEASURING_SEEDS,
                                                 difficulty_sd)
    measured = measured_run_sd(frame[frame["seed"] >= 1])
    one = frame[frame["seed"] == 0].reset_index(drop=True)
    run_sd = {d: run_sd_for(d, measured).run_sd for d in one["dataset"].unique()} if measured else None
    return one, {i: predictions[i] for i in one["identity"]}, run_sd


@dataclass(frozen=True)
class Case:
    scenario: StressScenario
    noise: StressNoise
    layout: Layout
    seeds: int

    @property
    def name(self) -> str:
        path = "pooled" if self.layout.pooled else "one grid"
        return (f"{self.scenario.name}, {self.noise.name}, {self.layout.name.replace(', pooled', '')} x "
                f"{self.layout.datasets} ({path}), {self.seeds} seed(s)")


def cases_of(size: StressSize, scenarios: Sequence[StressScenario] = STRESS_SCENARIOS,
             regimes: Sequence[StressNoise] = STRESS_REGIMES) -> list[Case]:
    return [Case(s, r, layout, k) for s in scenarios for r in regimes for layout in size.layouts for k in size.seeds]


def run_case(case: Case, grids: int, seed: int, attempt: int = 0, difficulty_sd: float = 3.0,
             rule: DecisionRule = DEFAULT_RULE, pooling: PoolingRule = DEFAULT_POOLING) -> list[dict]:
    """One row per claim: the share of each headline verdict over ``grids`` grids. Each case draws from its own
    stream (its name, the seed and the attempt), so a case gives the same result in any subset of cases."""
    rng = np.random.default_rng([seed, zlib.crc32(case.name.encode()), attempt])
    counts: dict[str, dict[Verdict, int]] = defaultdict(lambda: dict.fromkeys(Verdict, 0))
    for _ in range(grids):
        frame, predictions, run_sd = simulate_with_measured_run_sd(rng, case, difficulty_sd)
        found = (pooled_verdicts(frame, predictions, rule, pooling, run_sd) if case.layout.pooled
                 else grid_verdicts(frame, predictions, rule, run_sd))
        for claim, verdict in found.items():
            counts[claim][verdict] += 1
    return [{"case": case.name, "scenario": case.scenario.name, "noise": case.noise.name,
             "layout": case.layout.name, "datasets": case.layout.datasets, "pooled": case.layout.pooled,
             "seeds": case.seeds, "claim": claim, "truth": case.scenario.truth.get(claim, NOT_SIMULATED),
             "grids": grids, **{str(v).lower(): found[v] / grids for v in Verdict}}
            for claim, found in counts.items()]


# ---------------------------------------------------------------- kept cases: a calibration that resumes

# The modules whose code turns a simulated grid into verdicts. A kept case counts only for the code (and the
# declared claims) it ran with; comments and docstrings do not count.
ENGINE_MODULES = ("decision.py", "claims.py", "declared.py", "verdicts.py", "replication.py", "calibration.py",
                  "stress_calibration.py")


def engine_digest() -> str:
    """The digest of ENGINE_MODULES' syntax and claims/claims.yaml's text."""
    code = source_digest(Path(__file__).parent, ENGINE_MODULES)
    return hashlib.sha256((code + CLAIMS_FILE.read_text(encoding="utf-8")).encode()).hexdigest()[:16]


def kept_case(case: Case, grids: int, seed: int, attempt: int, difficulty_sd: float, rule: DecisionRule,
              pooling: PoolingRule, folder: Path | None, engine: str) -> list[dict]:
    """``run_case``, kept in ``folder`` (one JSON file per case, written as it finishes, named by everything that
    makes its numbers): a calibration of many CPU-hours resumes where it stopped, as a grid does. None: not kept."""
    if folder is None:
        return run_case(case, grids, seed, attempt, difficulty_sd, rule, pooling)
    identity = {"case": case.name, "scenario": asdict(case.scenario), "noise": asdict(case.noise),
                "layout": asdict(case.layout), "seeds": case.seeds, "grids": grids, "seed": seed, "attempt": attempt,
                "difficulty_sd": difficulty_sd, "rule": asdict(rule), "pooling": asdict(pooling), "engine": engine}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = Path(folder) / f"{key}.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))["rows"]
    rows = run_case(case, grids, seed, attempt, difficulty_sd, rule, pooling)
    write_json_atomic(path, {"identity": identity, "rows": rows})
    return rows


def run_stress_calibration(size: StressSize = StressSize(), rule: DecisionRule = DEFAULT_RULE,
                           pooling: PoolingRule = DEFAULT_POOLING,
                           scenarios: Sequence[StressScenario] = STRESS_SCENARIOS,
                           regimes: Sequence[StressNoise] = STRESS_REGIMES, folder: Path | None = None
                           ) -> pd.DataFrame:
    """One row per (case, claim) that the entry points returned (cases kept in ``folder``: ``kept_case``)."""
    engine = engine_digest()
    rows = [row for case in cases_of(size, scenarios, regimes)
            for row in kept_case(case, size.grids, size.seed, 0, size.difficulty_sd, rule, pooling, folder, engine)]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the table


def cannot_decide(claim: str, truth: str, seeds: int, datasets: int, pooled: bool, rule: DecisionRule = DEFAULT_RULE,
                  pooling: PoolingRule = DEFAULT_POOLING) -> str:
    """Where the rule cannot decide (or has a ceiling on its power) by construction, in words; "" where not."""
    if truth == NOT_SIMULATED:
        simulated = claim in (RECOVERY, DEGRADATION, BOTTOM_WORSE)
        return NOT_SIMULATED if simulated else "no probe or separation simulated"
    if pooled and datasets < pooling.min_datasets:
        return f"{datasets} datasets: the pooled rule needs >= {pooling.min_datasets}"
    boundary = next((spec.boundary for spec in SPECS if spec.name == claim), 0.0)
    if seeds == 1 and not pooled and boundary > 0 and truth != "holds":
        z = stats.norm.ppf(1 - rule.alpha)
        return (f"one run: SE >= sqrt(2) x the run SD measured on {MEASURING_SEEDS} more seeds (its upper bound), so "
                f"a full recovery reads CONTRADICTED only when the corrupted run scores >= {z:.2f} SE - {boundary:g} "
                "above clean")
    if seeds == 2 and not pooled:
        return "2 seeds: t on 1 df, a decision needs the gap beyond 6.3 SE from the boundary"
    return ""


def stress_table(found: pd.DataFrame, rule: DecisionRule = DEFAULT_RULE, pooling: PoolingRule = DEFAULT_POOLING
                 ) -> pd.DataFrame:
    """Per (claim, case) with a stated truth: each false rate where it is an error, the power beside it, their
    Monte-Carlo SEs, the bound alpha + 2 MC SE, whether a false rate lies above it, and what cannot be decided."""
    rows = []
    for case in found[found["truth"] != NOT_SIMULATED].to_dict("records"):
        n, truth = int(case["grids"]), case["truth"]
        false_s = case["supported"] if truth in ("fails", "boundary") else math.nan
        false_c = case["contradicted"] if truth in ("holds", "boundary") else math.nan
        power = {"holds": case["supported"], "fails": case["contradicted"]}.get(truth, math.nan)
        bound = rule.alpha + 2 * mc_se(rule.alpha, n)
        rows.append({"claim": case["claim"], "case": case["case"], "truth": truth, "grids": n,
                     "false SUPPORTED": false_s, "SE (fS)": mc_se(false_s, n) if false_s == false_s else math.nan,
                     "false CONTRADICTED": false_c,
                     "SE (fC)": mc_se(false_c, n) if false_c == false_c else math.nan,
                     "power": power, "SE (power)": mc_se(power, n) if power == power else math.nan,
                     "bound (alpha + 2 MC SE)": bound,
                     "above bound": bool(np.nanmax([false_s, false_c, -1.0]) > bound),
                     "cannot decide by construction": cannot_decide(case["claim"], truth, int(case["seeds"]),
                                                                    int(case["datasets"]), bool(case["pooled"]),
                                                                    rule, pooling)})
    return pd.DataFrame(rows, columns=STRESS_COLUMNS)


STRESS_COLUMNS = ["claim", "case", "truth", "grids", "false SUPPORTED", "SE (fS)", "false CONTRADICTED", "SE (fC)",
                  "power", "SE (power)", "bound (alpha + 2 MC SE)", "above bound", "cannot decide by construction"]


def stress_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per claim: the worst false rates and where, how many cases lie above the bound, and the mean power."""
    rows = []
    for claim, mine in table.groupby("claim", sort=False):
        def worst(column: str) -> tuple[float, str]:
            part = mine.dropna(subset=[column])
            if part.empty:
                return math.nan, "-"
            row = part.loc[part[column].idxmax()]
            return float(row[column]), row["case"]

        false_s, where_s = worst("false SUPPORTED")
        false_c, where_c = worst("false CONTRADICTED")
        rows.append({"claim": claim, "cases": len(mine), "above bound": int(mine["above bound"].sum()),
                     "false SUPPORTED (worst)": false_s, "where": where_s,
                     "false CONTRADICTED (worst)": false_c, "where ": where_c,
                     "power (mean)": float(mine["power"].mean())})
    return pd.DataFrame(rows)


def recheck(found: pd.DataFrame, size: StressSize, grids: int, rule: DecisionRule = DEFAULT_RULE,
            pooling: PoolingRule = DEFAULT_POOLING, scenarios: Sequence[StressScenario] = STRESS_SCENARIOS,
            regimes: Sequence[StressNoise] = STRESS_REGIMES, folder: Path | None = None) -> pd.DataFrame:
    """The (claim, case)s above the bound, simulated again on ``grids`` fresh grids each (the worst of many cases
    is biased upward; a fresh run of it is not)."""
    table = stress_table(found, rule, pooling)
    over = table[table["above bound"]]
    by_name = {case.name: case for case in cases_of(size, scenarios, regimes)}
    bound = rule.alpha + 2 * mc_se(rule.alpha, grids)
    rows, engine = [], engine_digest()
    for name, mine in over.groupby("case", sort=False):
        again = pd.DataFrame(kept_case(by_name[name], grids, size.seed, 1, size.difficulty_sd, rule, pooling, folder,
                                       engine)).set_index("claim")
        for row in mine.to_dict("records"):
            for column, error in (("false SUPPORTED", "supported"), ("false CONTRADICTED", "contradicted")):
                if row[column] == row[column] and row[column] > row["bound (alpha + 2 MC SE)"]:
                    rate = float(again.loc[row["claim"], error])
                    rows.append({"claim": row["claim"], "case": name, "false": error.upper(),
                                 "first run": row[column], "grids": grids, "fresh run": rate,
                                 "SE": mc_se(rate, grids), "bound": bound, "within": rate <= bound})
    return pd.DataFrame(rows, columns=["claim", "case", "false", "first run", "grids", "fresh run", "SE", "bound",
                                       "within"])


# ---------------------------------------------------------------- the command


def stress_calibration_text(document: dict) -> str:
    """The summary per claim, the rechecks and every (claim, case), with the simulation's size."""
    size = document["size"]
    table = pd.DataFrame(document["table"], columns=STRESS_COLUMNS)
    rechecks = pd.DataFrame(document.get("rechecks", []))
    lines = [
        f"Measured by `python -m harness calibrate --stress --grids {size['grids']} --seed {size['seed']}` "
        f"({size['grids']} simulated grids per case; {len(table['case'].unique())} cases: imbalanced and 6-class "
        "labels, 277-1,000 test examples, corrupted seeds 2.5x as noisy, collapsed runs, datasets with different "
        "truths, 3 seeds and one run; harness/verdict/stress_calibration.py). Truth per the claims' words: "
        "universal claims fail where any dataset fails them.",
        "",
        markdown_table(stress_summary(table)),
        "",
    ]
    if "rechecks" not in document:
        lines.append("Cases above the bound were not simulated again (`--recheck 0`).")
    elif rechecks.empty:
        lines.append("No case's false-decision rate lies above its bound.")
    else:
        failed = int((~rechecks["within"].astype(bool)).sum())
        lines += [f"{len(rechecks)} false rate(s) lay above the bound and were simulated again on "
                  f"{int(rechecks['grids'].iloc[0])} fresh grids: {failed} stay above it.", "",
                  markdown_table(rechecks)]
    lines += ["", markdown_table(table)]
    return "\n".join(lines)


def write_stress_calibration(*, grids: int, seed: int, out: str | Path, rechecks: int = 0,
                             seeds: tuple[int, ...] = (3, 1), layouts: tuple[Layout, ...] = LAYOUTS,
                             scenarios: Sequence[StressScenario] = STRESS_SCENARIOS,
                             regimes: Sequence[StressNoise] = STRESS_REGIMES, rule: DecisionRule = DEFAULT_RULE,
                             pooling: PoolingRule = DEFAULT_POOLING, cases_dir: str | Path | None = None) -> str:
    """Run the stress calibration (and ``rechecks`` fresh grids of every false rate above the bound), write its
    JSON, return the text of its tables. ``layouts``, ``scenarios``, ``regimes``: a subset, for a quick look.
    ``cases_dir``: keep each finished case there and take the ones already kept (``kept_case``)."""
    if grids < 1 or rechecks < 0 or not seeds or min(seeds) < 1:
        raise BadInput(f"--grids and --seeds must be positive and --recheck >= 0, got {grids}, {list(seeds)} and "
                       f"{rechecks}")
    check_writable(Path(out).parent)
    folder = None if cases_dir is None else Path(cases_dir)
    if folder is not None:
        check_writable(folder)
    size = StressSize(grids=grids, seeds=tuple(seeds), layouts=tuple(layouts), seed=seed)
    cases = run_stress_calibration(size, rule, pooling, scenarios, regimes, folder)
    settings = json.loads(json.dumps({"size": asdict(size), "rule": asdict(rule), "pooling": asdict(pooling),
                                      "scenarios": [asdict(s) for s in scenarios],
                                      "regimes": [asdict(r) for r in regimes]}))
    document = {**settings, "table": stress_table(cases, rule, pooling).to_dict("records"),
                "cases": cases.to_dict("records")}
    if rechecks:
        document["rechecks"] = recheck(cases, size, rechecks, rule, pooling, scenarios, regimes,
                                       folder).to_dict("records")
    write_json_atomic(out, document)
    return stress_calibration_text(document)
