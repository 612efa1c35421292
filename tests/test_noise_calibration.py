"""Issue 32, items A and B: the SE of a paired difference without the double count, its df, and the one-run
path's run SD measured from our seeds; each checked by simulation at a small size (seeded, a few seconds)."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.verdict.calibration import mc_se
from harness.verdict.decision import (DEFAULT_RULE, DecisionRule, Runs, bootstrap_covariance, decide,
                                      degrees_of_freedom, satterthwaite_df, shared_test_var, whole_test_var)
from harness.verdict.noise_calibration import (BINARY_68_32, HETEROSCEDASTIC, SEED_DOMINATED, SIX_CLASS,
                                               TEST_DOMINATED, Levels, NoiseSize, OneRunCase, OneRunSize,
                                               new_se_seeds_df, noise_case,
                                               old_se, one_run_p_values, one_run_table, rates, replicate)
from harness.verdict.run_noise import (DEFAULT_RUN_NOISE, RunNoiseRule, measured_run_sd, per_seed_difference_sds,
                                       pooled_run_sd, run_sd_for, upper_bound)

SMALL = NoiseSize(replications=400, resamples=100, seed=3)
RECORDS = Path(__file__).resolve().parents[1] / "results" / "records" / "replication"


# ---------------------------------------------------------------- item A: the shared test term


def test_the_shared_test_term_is_the_mean_off_diagonal_covariance():
    covariance = np.array([[3.0, 1.0, 1.2], [1.0, 2.0, 0.8], [1.2, 0.8, 4.0]])
    assert shared_test_var(covariance) == pytest.approx((1.0 + 1.2 + 0.8) / 3)
    assert whole_test_var(covariance) == pytest.approx(covariance.sum() / 9)
    assert shared_test_var(np.array([[2.5]])) == 2.5  # one seed: no s^2, the whole variance
    assert shared_test_var(np.array([[1.0, -0.2], [-0.2, 1.0]])) == 0.0  # clipped: a variance


def test_the_df_are_the_seeds_unless_the_rule_says_satterthwaite():
    assert degrees_of_freedom(0.5, 2, 0.5, 999, DEFAULT_RULE) == 2
    assert degrees_of_freedom(1.0, math.inf, 0.5, 999, DEFAULT_RULE) == math.inf  # one run: SD assumed known
    welch = degrees_of_freedom(0.5, 2, 0.5, 999, DecisionRule(noise_df="satterthwaite"))
    assert welch == pytest.approx(satterthwaite_df(0.5, 2, 0.5, 999)) == pytest.approx(1.0 / (0.25 / 2 + 0.25 / 999))


def test_decide_adds_only_what_the_seeds_share():
    """Each seed gets its own examples right: the whole bootstrap variance counts that twice, the shared
    part does not; with one seed there is nothing shared to separate."""
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 1000)
    flip = lambda p, rate: np.where(rng.random(1000) < rate, 1 - p, p)
    low_p = {s: flip(labels, 0.15) for s in range(3)}
    high_p = {s: flip(labels, 0.12) for s in range(3)}
    f1 = lambda p: float(100 * np.mean(p == labels))  # balanced binary: close to weighted F1, enough here
    low, high = (Runs({s: f1(p) for s, p in side.items()}, side) for side in (low_p, high_p))
    decision = decide(low, high, 1000, labels=labels)
    assert "the part the seeds share" in decision.detail and decision.values["df"] == 2
    covariance = bootstrap_covariance(low, high, [0, 1, 2], labels, DEFAULT_RULE)
    assert decision.values["se_test"] ** 2 == pytest.approx(shared_test_var(covariance))
    assert shared_test_var(covariance) < 0.5 * whole_test_var(covariance)  # independent seeds share little
    one = decide(Runs({0: low.f1[0]}, {0: low_p[0]}), Runs({0: high.f1[0]}, {0: high_p[0]}), 1000, labels=labels)
    assert one.values["se_test"] ** 2 == pytest.approx(
        bootstrap_covariance(Runs(low.f1, low_p), Runs(high.f1, high_p), [0], labels, DEFAULT_RULE)[0, 0])


@pytest.fixture(scope="module")
def test_dominated() -> pd.DataFrame:
    return replicate(noise_case(TEST_DOMINATED, 1000, (0.5, 0.5)), SMALL)


def ratio_and_its_mc_se(se: np.ndarray, differences: np.ndarray) -> tuple[float, float]:
    """sqrt(mean SE^2 / Var D) and its Monte-Carlo SE (delta method: both means' relative errors, halved)."""
    squared = se ** 2
    relative = math.sqrt(squared.var(ddof=1) / squared.mean() ** 2 / len(se) + 2 / (len(differences) - 1))
    ratio = math.sqrt(squared.mean() / differences.var(ddof=1))
    return ratio, ratio * relative / 2


def test_the_new_se_is_the_true_sd_where_the_old_one_is_inflated(test_dominated):
    """Within 3 MC SE of the true SD (its MC SE ~0.04 at 400 replications); the old SE, on the same
    replications, is measurably larger: its ratio to the new one is free of the true SD's MC error."""
    new, old = new_se_seeds_df(test_dominated)[0], old_se(test_dominated)[0]
    ratio, its_se = ratio_and_its_mc_se(new, test_dominated["difference"].to_numpy())
    assert abs(ratio - 1) < 3 * its_se, (ratio, its_se)
    old_ratio, _ = ratio_and_its_mc_se(old, test_dominated["difference"].to_numpy())
    assert old_ratio > 1 + 3 * its_se, (old_ratio, its_se)
    assert math.sqrt(np.mean(old ** 2) / np.mean(new ** 2)) > 1.15  # 1.21-1.27 in the full calibration


def test_the_null_rejection_stays_within_alpha_where_seeds_dominate():
    """The hardest case for k - 1 df (the seed term dominates, imbalanced labels, heteroscedastic seeds):
    the one-sided 5% test and Holm's far tail both within their nominal rate + 2 MC SE."""
    found = replicate(noise_case(SEED_DOMINATED, 408, BINARY_68_32, HETEROSCEDASTIC), SMALL)
    levels = Levels()
    measured = rates(found, *new_se_seeds_df(found), 0.0, float(found["difference"].std(ddof=1)), levels)
    n = len(found)
    assert measured["null rejection"] <= levels.alpha + 2 * mc_se(levels.alpha, n)
    assert measured["tail rejection"] <= levels.tail_p + 2 * mc_se(levels.tail_p, n)
    assert measured["coverage"] >= levels.coverage - 2 * mc_se(1 - levels.coverage, n)


def test_the_rule_uses_the_seeds_df():
    assert DEFAULT_RULE.noise_df == "seeds"


def test_a_six_class_case_runs_on_imbalanced_labels():
    found = replicate(noise_case(TEST_DOMINATED, 277, SIX_CLASS, HETEROSCEDASTIC),
                      NoiseSize(replications=5, resamples=50))
    assert len(found) == 5 and (found["test_shared"] <= found["test_whole"] + 1e-9).all()


# ---------------------------------------------------------------- item B: the run SD measured from our seeds


def grid_frame(table: np.ndarray, dataset: str = "toy", mode: str = "full") -> pd.DataFrame:
    """A tidy frame of one slice: rows settings, columns seeds."""
    positions = [("none", 0.0), ("bottom", 50.0), ("top", 50.0), ("all", 100.0)]
    return pd.DataFrame([{"table": "mean-full", "model": "m", "dataset": dataset, "pooling": "mean", "mode": mode,
                          "position": positions[i][0], "level": positions[i][1], "seed": s, "f1": table[i, s]}
                         for i in range(table.shape[0]) for s in range(table.shape[1])])


def test_the_run_sd_is_half_the_variance_of_a_paired_difference():
    """The residual mean square of setting + seed equals the mean over setting pairs of Var(D_s) / 2, and a
    seed shift shared by every setting cancels from it (pairing), not from the within-setting SD."""
    rng = np.random.default_rng(0)
    table = rng.normal(80, 1.0, size=(4, 3)) + np.array([0.0, 5.0, -5.0])[None, :]  # seed shifts of +-5
    found = measured_run_sd(grid_frame(table))["toy"]
    differences = per_seed_difference_sds(grid_frame(table))
    assert found.sd == pytest.approx(math.sqrt(np.mean(differences ** 2) / 2))
    assert found.df == 6 and found.per_setting_sd > 3 > found.sd
    assert found.upper == pytest.approx(found.sd * math.sqrt(6 / stats.chi2.ppf(1 - DEFAULT_RUN_NOISE.level, 6)))


def test_a_dataset_never_run_gets_the_largest_bound_said_so():
    rng = np.random.default_rng(1)
    frame = pd.concat([grid_frame(rng.normal(80, sd, size=(4, 3)), name) for name, sd in (("a", 0.5), ("b", 2.0))])
    measured = measured_run_sd(frame)
    assert run_sd_for("a", measured).run_sd == measured["a"].upper
    unseen = run_sd_for("cola", measured)
    assert unseen.run_sd == max(r.upper for r in measured.values()) and "never run" in unseen.note
    pooled = run_sd_for("cola", measured, RunNoiseRule(fallback="pooled"))
    assert pooled.run_sd == pooled_run_sd(measured).upper and pooled.measured.df == 12


def test_the_upper_bound_covers_students_t_down_to_holms_tail():
    """decide reads run_sd as known (the normal); a run SD from nu >= 6 df (ours: 6 or 14) at its 85% upper
    bound is at least as wide as Student's t on nu df at alpha and at p = 0.00625, where the seed term is
    all the noise (the worst case)."""
    levels = Levels()
    for nu in (6, 14, 64):
        widening = upper_bound(1.0, nu, DEFAULT_RUN_NOISE.level)
        for p in (levels.alpha, levels.tail_p):
            assert widening * stats.norm.ppf(1 - p) >= stats.t.ppf(1 - p, nu)


def test_the_one_run_arithmetic_is_decides():
    case = OneRunCase("toy", 1.2, 6, 4000)
    differences, run_sds = np.array([-1.0, 1.0, 2.5, 4.0, 6.0]), np.array([1.0, 1.5, 0.7, 2.0, 1.1])
    p_support, p_contradict = one_run_p_values(case, differences, run_sds, 1.0)
    for i, (d, sd) in enumerate(zip(differences, run_sds)):
        found = decide({0: case.f1}, {0: case.f1 + d}, case.n_test, boundary=1.0, run_sd=float(sd))
        assert (found.p_support, found.p_contradict) == pytest.approx((p_support[i], p_contradict[i]))


def test_the_measured_run_sd_keeps_one_run_verdicts_within_alpha_where_one_point_does_not():
    """A dataset whose runs scatter by 2 F1 (RTE's upper range) on a large test set: the assumed 1 F1 calls
    the boundary far too often; the measured SD's upper bound stays within alpha + 2 MC SE, and where the runs
    scatter by 0.5 it buys power that the assumed 1 wastes."""
    cases = (OneRunCase("noisy", 2.0, 6, 12_000), OneRunCase("quiet", 0.5, 6, 12_000),
             OneRunCase("rte-like", 1.5, 6, 277))
    table = one_run_table(cases, OneRunSize(tables=600, seed=2)).set_index(["dataset", "run SD input"])
    bound = table["bound (alpha + 2 MC SE)"].iloc[0]
    upper = f"measured, {DEFAULT_RUN_NOISE.level:.0%} upper bound"
    assert table.loc[("noisy", "assumed 1.0"), "false SUPPORTED"] > 0.12
    for dataset in ("noisy", "quiet", "rte-like"):
        assert table.loc[(dataset, upper), ["false SUPPORTED", "false CONTRADICTED"]].max() <= bound
    assert table.loc[("quiet", upper), "power"] > table.loc[("quiet", "assumed 1.0"), "power"] + 0.2


@pytest.mark.skipif(not RECORDS.is_dir(), reason="the replication records are not in this checkout")
def test_our_records_measure_rte_noisier_than_one_point():
    from harness.verdict.replication import kept_cells
    from harness.verdict.sources import results_frame
    cells, _ = kept_cells(RECORDS)
    measured = measured_run_sd(results_frame(cells, "selected", str(RECORDS)))
    assert len(measured) == 8 and measured["rte"].df == 6 and measured["sst2"].df == 14
    assert measured["rte"].sd > 1.4 and measured["dbpedia_14"].sd < 0.5
    assert run_sd_for("rte", measured).run_sd > 2 * run_sd_for("dbpedia_14", measured).run_sd
