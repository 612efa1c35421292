"""How often the verdicts are wrong: the decision rule run on simulated grids whose truth we built.

Each simulated grid has the real structure of ours: per dataset one test set of ``n_test`` examples
shared by every run, four settings (clean, bottom, top, 100%), full fine-tuning and a linear probe,
3 seeds paired across settings. A run's prediction of example ``i`` is right when

    mu_setting + e_i + eta_(setting, i) + u_(setting, seed) + eps_(setting, seed, i) > 0

with ``e_i`` the example's easiness (shared by every run), ``eta`` which examples a setting gets right
(drawn once per grid, so it never averages over seeds: the shared test set's noise), ``u`` a seed's
effect (correlated across the settings of a seed: same data order and head) and ``eps`` the rest.
``mu`` is set so each setting's population accuracy is exactly the scenario's; wrong predictions are
spread evenly over the other labels, so weighted F1 equals accuracy in the population. Claim 5's
separation is drawn per seed with a normal seed spread around the scenario's means.

Every scenario states each claim's truth: ``holds`` (every stratum beyond its boundary on the
predicted side), ``fails`` (some stratum on the other side), ``boundary`` (some stratum exactly at
it, the worst case for both errors). The table gives, per claim: the false-SUPPORTED rate (truth
``fails`` or ``boundary``), the false-CONTRADICTED rate (truth ``holds`` or ``boundary``) and the
power (SUPPORTED where it holds, CONTRADICTED where it fails), each with its Monte-Carlo SE.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from harness.errors import BadInput
from harness.files import check_writable, write_json_atomic, write_text_atomic
from harness.verdict.claims import evaluate_claims
from harness.verdict.decision import DEFAULT_RULE, DecisionRule, Verdict, weighted_f1_resampled
from harness.verdict.verdicts import aggregate

SETTINGS = (("none", 0.0), ("bottom", 50.0), ("top", 50.0), ("all", 100.0))


@dataclass(frozen=True)
class NoiseRegime:
    """The sources of noise, on the probit scale of one example's correctness."""

    name: str
    easiness_sd: float = 1.0  # e_i
    setting_item_sd: float = 0.5  # eta: which examples a setting gets right, fixed for the grid
    seed_sd: float = 0.1  # u: a seed's shift of one setting
    seed_correlation: float = 0.5  # of u across the settings of one seed
    probe_seed_factor: float = 1.0  # the probe's seed SD, as a multiple of full fine-tuning's


REGIMES = (
    NoiseRegime("test-set dominated", setting_item_sd=0.8, seed_sd=0.03),
    NoiseRegime("seed dominated", setting_item_sd=0.2, seed_sd=0.15),
)


@dataclass(frozen=True)
class Scenario:
    """Population accuracies (percent) of clean, bottom, top, 100%; claim 5's separation means; truths."""

    name: str
    accuracy: tuple[float, float, float, float]
    truth: dict[str, str]
    separation: tuple[float, float, float, float] = (100.0, 40.0, 80.0, 20.0)  # clean, bottom, top, 100%
    probe_seed_factor: float = 1.0


# Each claim's truth at its verdict boundary (claims/claims.yaml): claim 1 at +1 (a loss within the margin is a
# complete recovery), claim 2 at 0 (a step that loses nothing is its boundary; one that loses the margin holds).
SCENARIOS = (
    Scenario("the paper's story", (86, 80, 83, 74),
             {"no-complete-recovery": "holds", "monotone-degradation": "holds", "bottom-worse-than-top": "holds",
              "probe-instability": "boundary", "separation-order": "holds"}),
    Scenario("top loses exactly the margin", (86, 80, 85, 74),
             {"no-complete-recovery": "boundary", "monotone-degradation": "holds",
              "bottom-worse-than-top": "holds", "probe-instability": "boundary", "separation-order": "holds"},
             separation=(100.0, 40.0, 90.0, 20.0)),  # top <= clean at 10% below: claim 5's ">=" boundary
    Scenario("top heals fully", (86, 80, 86, 74),
             {"no-complete-recovery": "fails", "monotone-degradation": "boundary", "bottom-worse-than-top": "holds",
              "probe-instability": "boundary", "separation-order": "holds"}),
    Scenario("bottom = top", (86, 81, 81, 74),
             {"no-complete-recovery": "holds", "monotone-degradation": "holds", "bottom-worse-than-top": "boundary",
              "probe-instability": "boundary", "separation-order": "boundary"},
             separation=(100.0, 60.0, 60.0, 20.0)),
    Scenario("nothing changes", (85, 85, 85, 85),
             {"no-complete-recovery": "fails", "monotone-degradation": "boundary", "bottom-worse-than-top": "boundary",
              "probe-instability": "boundary", "separation-order": "boundary"},
             separation=(100.0, 100.0, 100.0, 100.0)),
    Scenario("a much noisier probe", (86, 80, 83, 74),
             {"no-complete-recovery": "holds", "monotone-degradation": "holds", "bottom-worse-than-top": "holds",
              "probe-instability": "holds", "separation-order": "holds"}, probe_seed_factor=10.0),
)


@dataclass(frozen=True)
class Size:
    grids: int = 200  # simulated grids per scenario and noise regime
    datasets: Sequence[int] = (1, 8)
    n_test: int = 1000
    n_labels: int = 2
    seeds: int = 3
    separation_sd: float = 8.0  # claim 5: seed SD of the separation, percent of clean
    seed: int = 0


def simulate_runs(rng: np.random.Generator, labels: np.ndarray, accuracy: Sequence[float], noise: NoiseRegime,
                  n_seeds: int, n_labels: int, seed_factor: float) -> dict[tuple[str, float], list[np.ndarray]]:
    """Predicted labels of every (setting, seed) of one slice on one shared test set."""
    n = len(labels)
    scale = math.sqrt(1 + noise.easiness_sd ** 2 + noise.setting_item_sd ** 2 + (noise.seed_sd * seed_factor) ** 2)
    easiness = noise.easiness_sd * rng.standard_normal(n)
    shared_seed = rng.standard_normal(n_seeds)
    runs = {}
    for setting, acc in zip(SETTINGS, accuracy):
        mu = stats.norm.ppf(acc / 100.0) * scale
        item = noise.setting_item_sd * rng.standard_normal(n)
        own = rng.standard_normal(n_seeds)
        u = noise.seed_sd * seed_factor * (math.sqrt(noise.seed_correlation) * shared_seed
                                           + math.sqrt(1 - noise.seed_correlation) * own)
        correct = (mu + easiness + item)[None, :] + u[:, None] + rng.standard_normal((n_seeds, n)) > 0
        wrong = (labels[None, :] + rng.integers(1, n_labels, size=(n_seeds, n))) % n_labels
        runs[setting] = list(np.where(correct, labels[None, :], wrong))
    return runs


def simulate_grid(rng: np.random.Generator, scenario: Scenario, noise: NoiseRegime, size: Size, n_datasets: int
                  ) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """A tidy frame, its predictions (identity -> (labels, predicted)) and claim 5's separation."""
    rows, predictions = [], {}
    for d in range(n_datasets):
        labels = rng.integers(0, size.n_labels, size.n_test)
        ones = np.ones((1, size.n_test))
        for mode, factor in (("full", 1.0), ("probe", scenario.probe_seed_factor)):
            for setting, by_seed in simulate_runs(rng, labels, scenario.accuracy, noise, size.seeds,
                                                  size.n_labels, factor).items():
                f1 = weighted_f1_resampled(labels, np.stack(by_seed), ones)[0]
                for seed, predicted in enumerate(by_seed):
                    identity = f"d{d}-{mode}-{setting[0]}-{seed}"
                    predictions[identity] = (labels, predicted)
                    rows.append({"table": f"mean-{mode}", "model": "sim", "dataset": f"data{d}", "pooling": "mean",
                                 "mode": mode, "position": setting[0], "level": setting[1], "seed": seed,
                                 "n_test": size.n_test, "f1": float(f1[seed]), "identity": identity, "epoch": 1,
                                 "majority_f1": 100.0 / size.n_labels * 2 / (1 + size.n_labels)})
    separation = pd.DataFrame([{"setting": name, "seed": seed, "separation": mean + size.separation_sd *
                                rng.standard_normal()}
                               for name, mean in zip(("clean", "bottom", "top", "100%"), scenario.separation)
                               for seed in range(size.seeds)])
    return pd.DataFrame(rows), predictions, separation


def run_calibration(size: Size = Size(), rule: DecisionRule = DEFAULT_RULE,
                    scenarios: Sequence[Scenario] = SCENARIOS, regimes: Sequence[NoiseRegime] = REGIMES) -> pd.DataFrame:
    """One row per (scenario, regime, datasets, claim): the share of each verdict over ``size.grids`` grids."""
    rng = np.random.default_rng(size.seed)
    rows = []
    for scenario in scenarios:
        for noise in regimes:
            for n_datasets in size.datasets:
                counts: dict[str, dict[Verdict, int]] = defaultdict(lambda: dict.fromkeys(Verdict, 0))
                for _ in range(size.grids):
                    frame, predictions, separation = simulate_grid(rng, scenario, noise, size, n_datasets)
                    comparisons = evaluate_claims(frame, "results", rule, separation=separation, predictions=predictions)
                    for claim, verdict in aggregate(comparisons, rule).items():
                        counts[claim][verdict.verdict] += 1
                for claim in scenario.truth:  # the findings the scenario states a truth for
                    found = counts[claim]
                    rows.append({"scenario": scenario.name, "noise": noise.name, "datasets": n_datasets,
                                 "claim": claim, "truth": scenario.truth[claim], "grids": size.grids,
                                 **{str(v).lower(): found[v] / size.grids for v in Verdict}})
    return pd.DataFrame(rows)


def mc_se(rate: float, n: int) -> float:
    return math.sqrt(max(rate * (1 - rate), 0.25 / n) / n)  # never 0: a rate of 0 in n trials is not certainty


def case_name(row: pd.Series) -> str:
    """A simulated case in words: its scenario, noise regime, between-dataset τ (pooled cases) and datasets."""
    tau = f", τ = {row['tau']:g}" if "tau" in row.index else ""
    return f"{row['scenario']}, {row['noise']}{tau}, {row['datasets']} dataset(s)"


def error_table(found: pd.DataFrame, rule: DecisionRule = DEFAULT_RULE, claims: Sequence[str] | None = None
                ) -> pd.DataFrame:
    """Per claim (default: every claim ``found`` has a truth for): the worst false-SUPPORTED and false-CONTRADICTED
    rates over the scenarios where each is an error, and the power where the truth is clear, with the Monte-Carlo
    bound ``alpha + 2 SE``."""
    rows = []
    for claim in claims if claims is not None else list(dict.fromkeys(found["claim"])):
        mine = found[found["claim"] == claim]
        wrong_s = mine[mine["truth"].isin(["fails", "boundary"])]
        wrong_c = mine[mine["truth"].isin(["holds", "boundary"])]
        holds, fails = mine[mine["truth"] == "holds"], mine[mine["truth"] == "fails"]
        grids = int(mine["grids"].max()) if len(mine) else 0

        def worst(part: pd.DataFrame, column: str) -> tuple[float, str]:
            if part.empty:
                return math.nan, "-"
            row = part.loc[part[column].idxmax()]
            return float(row[column]), case_name(row)

        false_s, where_s = worst(wrong_s, "supported")
        false_c, where_c = worst(wrong_c, "contradicted")
        bound = rule.alpha + 2 * mc_se(rule.alpha, grids)
        rows.append({"claim": claim, "grids per case": grids,
                     "false SUPPORTED (worst)": false_s, "where": where_s,
                     "false CONTRADICTED (worst)": false_c, "where ": where_c,
                     "bound (alpha + 2 MC SE)": bound,
                     "power: SUPPORTED where it holds (mean)": float(holds["supported"].mean()) if len(holds) else math.nan,
                     "power: CONTRADICTED where it fails (mean)": float(fails["contradicted"].mean()) if len(fails) else math.nan})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the command


README_BEGIN, README_END = "<!-- calibration:begin -->", "<!-- calibration:end -->"


def markdown_table(table: pd.DataFrame) -> str:
    shown = table.copy()
    for column in shown.columns:
        if shown[column].dtype.kind == "f":
            shown[column] = shown[column].map(lambda v: "–" if pd.isna(v) else f"{v:.3f}")
    return shown.to_markdown(index=False)


# Settings that left the rule without ever entering a verdict: a calibration that recorded them is not stale for it.
RETIRED_RULE_SETTINGS = {
    "equivalence_margin": "claims/claims.yaml's no-complete-recovery boundary (claims.recovery_margin); the engine "
                          "read the declared boundaries, only the analyses beyond the paper read this copy",
}


def stale_rule_note(document: dict, rule: DecisionRule = DEFAULT_RULE) -> str:
    """A bold line where a calibration was measured under a rule other than today's ("" where the same): its
    numbers then describe that rule, not the verdicts shown beside them."""
    measured = {k: v for k, v in (document.get("rule") or {}).items() if k not in RETIRED_RULE_SETTINGS}
    today = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(rule).items()}
    if measured == today:
        return ""
    changed = sorted(set(measured) ^ set(today) | {k for k in set(measured) & set(today) if measured[k] != today[k]})
    return (f"**Measured under an earlier decision rule** (settings that differ from today's: {', '.join(changed)}; "
            "the declared engine of issue 32 changed the strata, failed runs and the SE too): these rates describe "
            "that rule, not today's verdicts. Rerun the command below.\n\n")


def calibration_text(document: dict) -> str:
    """The table with the simulation's size, as REPORT.md and claims/README.md show it."""
    size = document["size"]
    return stale_rule_note(document) + "\n".join([
        f"Measured by `python -m harness calibrate --grids {size['grids']} --datasets "
        f"{' '.join(map(str, size['datasets']))}` ({size['grids']} simulated grids per scenario, noise regime and "
        f"number of datasets; {size['n_test']} test examples, {size['n_labels']} labels, {size['seeds']} seeds; "
        f"{len(document['cases'])} cases in all; harness/verdict/calibration.py). 'where' names the worst case.",
        "",
        markdown_table(pd.DataFrame(document["table"])),
    ])


def write_calibration(*, grids: int, datasets: tuple[int, ...], seed: int, out: str | Path,
                      readme: str | Path | None = None, rule: DecisionRule = DEFAULT_RULE) -> str:
    """Run the calibration, write its JSON (and the README block), return the text of the table."""
    if grids < 1 or not datasets or min(datasets) < 1:
        raise BadInput(f"--grids and --datasets must be positive, got {grids} and {list(datasets)}")
    check_writable(Path(out).parent)
    size = Size(grids=grids, datasets=datasets, seed=seed)
    cases = run_calibration(size, rule)
    document = {"size": {**asdict(size), "datasets": list(datasets)}, "rule": asdict(rule),
                "table": error_table(cases, rule).to_dict("records"), "cases": cases.to_dict("records")}
    write_json_atomic(out, document)
    text = calibration_text(document)
    if readme is not None:
        page = Path(readme).read_text(encoding="utf-8")
        if README_BEGIN not in page or README_END not in page:
            raise BadInput(f"{readme} has no {README_BEGIN} ... {README_END} block to write the table into")
        head, rest = page.split(README_BEGIN, 1)
        write_text_atomic(readme, head + README_BEGIN + "\n" + text + "\n" + README_END + rest.split(README_END, 1)[1])
    return text
