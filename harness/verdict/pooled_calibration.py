"""How often the *pooled* verdicts are wrong: the replication's rule across datasets, on simulated replications.

``harness.verdict.calibration`` measures the rule on one grid. The replication (``harness.verdict.replication``)
adds a second rule on top: each dataset's gap with its own noise, pooled by random effects (Paule-Mandel τ²,
Hartung-Knapp interval on k − 1 df, scale floored at 1), its two one-sided tests at the claim's boundary, and
the claim's verdict over its pooled strata. Its errors come from two sources the one-grid calibration never
draws: few datasets (k − 1 df) and datasets whose true gaps differ.

A simulated replication has ``k`` datasets. Each has its own shared test set and three seeds paired across
settings (``calibration.simulate_runs``: the same noise regimes), its own difficulty (every setting shifted by
``difficulty_sd``, which leaves its gaps alone), and its own true gaps: corrupted setting ``s`` scores
``clean - (gap_s + tau z)``, ``z`` standard normal per dataset and setting. The scenario's gaps are therefore the
*mean* over datasets of the true gaps, the random-effects estimand, and the truth of each claim (``holds``,
``fails``, ``boundary``) is the scenario's, read on those means. The table gives per claim the worst
false-SUPPORTED and false-CONTRADICTED rates and the power, as the one-grid table does, plus how often the
pooled 95% intervals cover the true mean gaps. A case above the bound ``alpha + 2 MC SE`` is simulated again on
fresh replications (``recheck``): the worst of dozens of cases is biased upward, a fresh run of it is not.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import BadInput
from harness.files import check_writable, write_json_atomic
from harness.verdict.calibration import (
    REGIMES,
    SCENARIOS,
    NoiseRegime,
    Scenario,
    case_name,
    error_table,
    markdown_table,
    mc_se,
    simulate_runs,
    stale_rule_note,
)
from harness.verdict.decision import DEFAULT_RULE, DecisionRule, Verdict, weighted_f1_resampled
from harness.verdict.replication import (
    DEFAULT_POOLING,
    ORDERING_CLAIMS,
    PoolingRule,
    gaps_of,
    per_dataset,
    pool,
    pooled_claim,
)

# claims/claims.yaml's names of the three findings with a gap, which these simulations build truths for
RECOVERY, DEGRADATION, BOTTOM_WORSE = "no-complete-recovery", "monotone-degradation", "bottom-worse-than-top"

# The one-grid scenarios whose truths concern claims 1-3 (the noisier probe changes only claim 4).
POOLED_SCENARIOS = tuple(s for s in SCENARIOS if s.probe_seed_factor == 1.0)
ACCURACY_RANGE = (52.0, 98.0)  # a dataset's accuracies stay inside it (binary labels: above chance)


@dataclass(frozen=True)
class PooledSize:
    grids: int = 200  # simulated replications per scenario, noise regime, heterogeneity and number of datasets
    datasets: Sequence[int] = (3, 8)  # 3: the fewest the rule pools; 8: the replication's
    # τ, the between-dataset SD of each true gap (F1 points). 0: every dataset the same; 4: as spread as the
    # replication's measured bottom-50% gaps (τ 4.5 over its first five datasets).
    heterogeneity: Sequence[float] = (0.0, 4.0)
    difficulty_sd: float = 3.0  # datasets differ in difficulty: every setting shifted alike
    n_test: int = 1000
    n_labels: int = 2
    seeds: int = 3
    seed: int = 0


def dataset_accuracies(rng: np.random.Generator, scenario: Scenario, tau: float, difficulty_sd: float
                       ) -> tuple[float, ...]:
    """One dataset's population accuracies (clean, bottom, top, 100%): the scenario's mean gaps plus this
    dataset's own deviations, all shifted by its difficulty."""
    clean = scenario.accuracy[0] + difficulty_sd * rng.standard_normal()
    gaps = [scenario.accuracy[0] - a + tau * rng.standard_normal() for a in scenario.accuracy[1:]]
    return tuple(float(np.clip(a, *ACCURACY_RANGE)) for a in (clean, *(clean - g for g in gaps)))


def simulate_replication(rng: np.random.Generator, scenario: Scenario, noise: NoiseRegime, size: PooledSize,
                         n_datasets: int, tau: float) -> tuple[pd.DataFrame, dict]:
    """Full fine-tuning on ``n_datasets`` datasets: a tidy frame and its predictions (identity -> (labels,
    predicted)), as ``calibration.simulate_grid`` builds one grid."""
    rows, predictions = [], {}
    ones = np.ones((1, size.n_test))
    for d in range(n_datasets):
        accuracy = dataset_accuracies(rng, scenario, tau, size.difficulty_sd)
        labels = rng.integers(0, size.n_labels, size.n_test)
        for setting, by_seed in simulate_runs(rng, labels, accuracy, noise, size.seeds, size.n_labels, 1.0).items():
            f1 = weighted_f1_resampled(labels, np.stack(by_seed), ones)[0]
            for seed, predicted in enumerate(by_seed):
                identity = f"d{d}-{setting[0]}-{seed}"
                predictions[identity] = (labels, predicted)
                rows.append({"table": "mean-full", "model": "sim", "dataset": f"data{d}", "pooling": "mean",
                             "mode": "full", "position": setting[0], "level": setting[1], "seed": seed,
                             "n_test": size.n_test, "f1": float(f1[seed]), "identity": identity, "epoch": 1,
                             "majority_f1": 100.0 / size.n_labels * 2 / (1 + size.n_labels)})
    return pd.DataFrame(rows), predictions


# The pooled verdicts are tallied twice: as the claim's quantifier reads them (universal claims: every dataset) and
# on the random-effects mean, its "on average" reading, whose truth is the scenario's mean gap.
ON_AVERAGE = " (on average)"


def on_average(claim: str) -> str:
    return claim + ON_AVERAGE


def true_gaps(scenario: Scenario) -> dict[tuple[str, str], float]:
    """The mean true gap of every pooled (claim, stratum) the simulated grid has."""
    clean, bottom, top, full = scenario.accuracy
    return {(RECOVERY, "bottom 50%"): clean - bottom, (RECOVERY, "top 50%"): clean - top,
            (RECOVERY, "100%"): clean - full,
            (DEGRADATION, "clean → bottom 50%"): clean - bottom, (DEGRADATION, "bottom 50% → 100%"): bottom - full,
            (DEGRADATION, "clean → top 50%"): clean - top, (DEGRADATION, "top 50% → 100%"): top - full,
            (BOTTOM_WORSE, "50%"): top - bottom}


def run_pooled_calibration(size: PooledSize = PooledSize(), rule: DecisionRule = DEFAULT_RULE,
                           pooling: PoolingRule = DEFAULT_POOLING,
                           scenarios: Sequence[Scenario] = POOLED_SCENARIOS,
                           regimes: Sequence[NoiseRegime] = REGIMES) -> pd.DataFrame:
    """One row per (scenario, regime, τ, datasets, claim): the share of each pooled verdict over ``size.grids``
    simulated replications, and the coverage of the claim's pooled 95% intervals."""
    if min(size.datasets) < pooling.min_datasets:
        raise BadInput(f"the pooled rule needs >= {pooling.min_datasets} datasets, got {list(size.datasets)}")
    rng = np.random.default_rng(size.seed)
    rows = []
    for scenario in scenarios:
        truth = true_gaps(scenario)
        for noise in regimes:
            for tau in size.heterogeneity:
                for n_datasets in size.datasets:
                    counts: dict[str, dict[Verdict, int]] = defaultdict(lambda: dict.fromkeys(Verdict, 0))
                    covered: dict[str, list[bool]] = defaultdict(list)
                    for _ in range(size.grids):
                        frame, predictions = simulate_replication(rng, scenario, noise, size, n_datasets, tau)
                        gaps = [g for d in per_dataset(frame, "results", rule, predictions=predictions)
                                for g in gaps_of(d.comparisons, "ours")]
                        pooled = pool(gaps, rule, pooling)
                        for claim in ORDERING_CLAIMS:
                            decision = pooled_claim(pooled, claim, "ours", rule)
                            counts[claim][decision.verdict if decision else Verdict.INCONCLUSIVE] += 1
                            mean = pooled_claim(pooled, claim, "ours", rule, reading="mean")
                            counts[on_average(claim)][mean.verdict if mean else Verdict.INCONCLUSIVE] += 1
                        for p in pooled:
                            low, high = p.interval(pooling.level)
                            covered[p.claim].append(low <= truth[(p.claim, p.stratum)] <= high)
                    for claim in ORDERING_CLAIMS + tuple(map(on_average, ORDERING_CLAIMS)):
                        base = claim.removesuffix(ON_AVERAGE)
                        rows.append({"scenario": scenario.name, "noise": noise.name, "tau": tau,
                                     "datasets": n_datasets, "claim": claim, "truth": scenario.truth[base],
                                     "grids": size.grids,
                                     **{str(v).lower(): counts[claim][v] / size.grids for v in Verdict},
                                     "coverage": float(np.mean(covered[base])) if covered[base] else math.nan})
    return pd.DataFrame(rows)


def pooled_error_table(found: pd.DataFrame, rule: DecisionRule = DEFAULT_RULE, level: float = DEFAULT_POOLING.level
                       ) -> pd.DataFrame:
    """The one-grid table's columns for claims 1-3, plus the worst coverage of the pooled 95% intervals."""
    table = error_table(found, rule, claims=ORDERING_CLAIMS + tuple(map(on_average, ORDERING_CLAIMS)))
    worst = found.groupby("claim")["coverage"].min()
    table[f"coverage of the {level:.0%} intervals (worst)"] = table["claim"].map(worst)
    return table


def exceeded(found: pd.DataFrame, rule: DecisionRule = DEFAULT_RULE) -> pd.DataFrame:
    """Every case whose false-SUPPORTED or false-CONTRADICTED rate lies above ``alpha + 2 MC SE``."""
    bound = rule.alpha + 2 * found["grids"].map(lambda n: mc_se(rule.alpha, int(n)))
    wrong_s = found["truth"].isin(["fails", "boundary"]) & (found["supported"] > bound)
    wrong_c = found["truth"].isin(["holds", "boundary"]) & (found["contradicted"] > bound)
    return pd.concat([found[wrong_s].assign(error="supported"), found[wrong_c].assign(error="contradicted")],
                     ignore_index=True)


def recheck(found: pd.DataFrame, size: PooledSize, grids: int, rule: DecisionRule = DEFAULT_RULE,
            pooling: PoolingRule = DEFAULT_POOLING) -> pd.DataFrame:
    """The cases above the bound, simulated again: ``grids`` fresh replications each (seeds after the first
    run's). The worst of many cases is biased upward (with dozens of cases per claim, one above a 2-SE bound is
    likely by chance alone); a fresh run of the selected case is not, so it says whether the rule errs there."""
    over = exceeded(found, rule)
    rows = []
    for i, ((name, noise_name, tau, datasets), cases) in enumerate(
            over.groupby(["scenario", "noise", "tau", "datasets"], sort=False)):
        again = run_pooled_calibration(
            PooledSize(grids=grids, datasets=(int(datasets),), heterogeneity=(float(tau),),
                       difficulty_sd=size.difficulty_sd, n_test=size.n_test, n_labels=size.n_labels,
                       seeds=size.seeds, seed=size.seed + 1 + i),
            rule, pooling, scenarios=[s for s in POOLED_SCENARIOS if s.name == name],
            regimes=[r for r in REGIMES if r.name == noise_name]).set_index("claim")
        for case in cases.to_dict("records"):
            rate = float(again.loc[case["claim"], case["error"]])
            rows.append({"claim": case["claim"], "where": case_name(pd.Series(case)),
                         "false": case["error"].upper(), "first run": case[case["error"]],
                         "grids": grids, "fresh run": rate, "bound": rule.alpha + 2 * mc_se(rule.alpha, grids),
                         "within": rate <= rule.alpha + 2 * mc_se(rule.alpha, grids)})
    return pd.DataFrame(rows, columns=["claim", "where", "false", "first run", "grids", "fresh run", "bound",
                                       "within"])


# ---------------------------------------------------------------- the command


def pooled_calibration_text(document: dict) -> str:
    size = document["size"]
    return stale_rule_note(document) + "\n".join([
        f"Measured by `python -m harness calibrate --pooled --grids {size['grids']} --datasets "
        f"{' '.join(map(str, size['datasets']))}` ({size['grids']} simulated replications per scenario, noise regime, "
        f"τ ∈ {{{', '.join(f'{t:g}' for t in size['heterogeneity'])}}} points and number of datasets; "
        f"{size['n_test']} test examples, {size['n_labels']} labels and {size['seeds']} seeds per dataset; "
        f"{len(document['cases'])} cases in all; harness/verdict/pooled_calibration.py). 'where' names the worst case.",
        "",
        markdown_table(pd.DataFrame(document["table"])),
        "",
        *recheck_text(document),
    ])


def recheck_text(document: dict) -> list[str]:
    """What the fresh runs of the cases above the bound found, in words and a table."""
    rechecks = pd.DataFrame(document.get("rechecks", []))
    if "rechecks" not in document:
        return ["Cases above the bound were not simulated again (`--recheck 0`)."]
    if rechecks.empty:
        return ["No case's false-decision rate lies above its bound."]
    failed = rechecks[~rechecks["within"]]
    verdict = ("Every one is within its bound on the fresh run: the first run's excess is what picking the worst "
               "of many cases gives by chance, not an error of the rule." if failed.empty else
               f"**{len(failed)} of them stay above the bound on the fresh run: there the pooled rule errs more "
               f"often than alpha** ({'; '.join(failed['claim'] + ', ' + failed['where'])}).")
    return [f"{len(rechecks)} case(s) lay above the bound (alpha + 2 MC SE) and were simulated again on fresh "
            f"replications (`--recheck {int(rechecks['grids'].iloc[0])}`). {verdict}", "",
            markdown_table(rechecks.drop(columns="within"))]


def _reusable_cases(out: Path, settings: dict) -> pd.DataFrame:
    """The cases of the calibration already in ``out``, which must have been run with exactly ``settings``."""
    try:
        document = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BadInput(f"--reuse-cases: {out} is no readable calibration ({error})") from error
    differs = sorted(key for key, value in settings.items() if document.get(key) != value)
    if differs:
        raise BadInput(f"--reuse-cases: {out} was run with other {', '.join(differs)}; run it again without "
                       "--reuse-cases")
    return pd.DataFrame(document["cases"])


def write_pooled_calibration(*, grids: int, datasets: tuple[int, ...], seed: int, out: str | Path, rechecks: int = 0,
                             reuse_cases: bool = False, rule: DecisionRule = DEFAULT_RULE,
                             pooling: PoolingRule = DEFAULT_POOLING) -> str:
    """Run the pooled calibration (and ``rechecks`` fresh replications of every case above the bound), write its
    JSON, return the text of the table. ``reuse_cases``: take the cases from ``out`` (same size, rule and pooling;
    the run is seeded, so running it again would repeat it) and only simulate the rechecks."""
    if grids < 1 or not datasets or rechecks < 0:
        raise BadInput(f"--grids and --datasets must be positive and --recheck >= 0, got {grids}, {list(datasets)} "
                       f"and {rechecks}")
    check_writable(Path(out).parent)
    size = PooledSize(grids=grids, datasets=datasets, seed=seed)
    settings = json.loads(json.dumps({"size": asdict(size), "rule": asdict(rule), "pooling": asdict(pooling)}))
    cases = _reusable_cases(Path(out), settings) if reuse_cases else run_pooled_calibration(size, rule, pooling)
    document = {**settings, "table": pooled_error_table(cases, rule, pooling.level).to_dict("records"),
                "cases": cases.to_dict("records")}
    if rechecks:
        document["rechecks"] = recheck(cases, size, rechecks, rule, pooling).to_dict("records")
    write_json_atomic(out, document)
    return pooled_calibration_text(document)
