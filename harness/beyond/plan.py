"""What would decide each open stratum? A power projection from the replication's own variance components.

For every per-dataset comparison of claims 1-3 the replication left INCONCLUSIVE, the engine's noise splits into
the seeds' part (``s^2 / k``: ``s^2`` is the per-seed spread of the paired difference) and the test-set part the
seeds share (``v_test`` at ``n`` test examples, shrinking as ``n / n'``). With ``k'`` seeds and ``n'`` test
examples, ``SE'^2 = s^2 / k' + v_test n / n'``, tested on t with ``k' - 1`` df, as the engine tests. The
comparison is decided with 80% power at its observed effect ``d`` when ``(t_{1-alpha} + t_{power}) SE' <= |d - b|``
against its claim's boundary ``b`` (support where ``d > b``, contradiction where ``d < b``). Each option (seeds
alone, or the test set grown 2x, 4x, 10x up to what the data holds, with the seeds it then needs) is costed in
worker-hours: the dataset's measured wall time per cell (the kept records' median), scaled by the cost model's
ratio for the larger test set; a larger test set retrains every seed (its cells are new configs). The cheapest
option is the plan. It projects at the observed effect: where the truth sits at the boundary no amount decides.

Pooled strata of a universal claim are decided dataset by dataset (every dataset's own gap must clear the
boundary), so the per-dataset rows are the plan for them too; the pooled mean's between-dataset spread (τ) is
shown beside, where only more datasets would help.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd
from scipy import stats

from harness.errors import BadInput
from harness.files import write_json_atomic
from harness.grid.cost import cell_frame
from harness.grid.expand import expand
from harness.grid.profiles import load_profile
from harness.method.prepare import make_splits
from harness.perf.estimate import rates_from_bench
from harness.verdict.claims import Comparison
from harness.verdict.decision import DEFAULT_RULE, DecisionRule, Verdict
from harness.verdict.replication import ORDERING_CLAIMS, KeptReplication, dataset_name, replication_of
from harness.verdict.replication import PROFILE as REPLICATION

MAX_SEEDS = 50
TEST_SCALES = (1, 2, 4, 10)


@dataclass(frozen=True)
class Option:
    seeds: int
    n_test: int
    new_cells: int
    hours: float


def seeds_needed(distance: float, seed_var1: float, test_var: float, rule: DecisionRule = DEFAULT_RULE,
                 max_seeds: int = MAX_SEEDS) -> int | None:
    """The fewest seeds (>= 2) for 80% power at ``distance`` from the boundary, given one seed's variance of the
    difference and the test-set term; None when even ``max_seeds`` do not suffice."""
    for k in range(2, max_seeds + 1):
        t = stats.t(k - 1)
        if (t.ppf(1 - rule.alpha) + t.ppf(rule.power)) * math.sqrt(seed_var1 / k + test_var) <= abs(distance):
            return k
    return None


def options_for(c: Comparison, cell_hours: Callable[[str, int], float], test_sizes: Sequence[int],
                rule: DecisionRule = DEFAULT_RULE) -> list[Option]:
    """Every way to decide one comparison: for each test size, the seeds it needs and what the new cells cost."""
    k, n = int(c.values["n_seeds"]), int(c.values.get("n_test", 0)) or test_sizes[0]
    seed_var1 = k * float(c.values["se_seeds"]) ** 2
    test_var = float(c.values["se_test"]) ** 2
    distance = float(c.values["difference"]) - float(c.values["boundary"])
    found = []
    for n_new in test_sizes:
        seeds = seeds_needed(distance, seed_var1, test_var * n / n_new, rule)
        if seeds is None:
            continue
        new_cells = 2 * (max(seeds - k, 0) if n_new == n else seeds)  # both sides of the paired difference
        found.append(Option(seeds, n_new, new_cells, new_cells * cell_hours(c.ids["dataset"], n_new)))
    return found


def plan_table(kept: KeptReplication, cell_hours: Callable[[str, int], float],
               test_cap: Callable[[str, int], int], rule: DecisionRule = DEFAULT_RULE) -> pd.DataFrame:
    """One row per INCONCLUSIVE per-dataset comparison of claims 1-3 (near-chance datasets left out, as the pooled
    verdicts leave them): its effect, noise parts, what it detects now, and the cheapest option that decides it."""
    near = {s.split(" (")[0] for s in kept.replication.near_chance}
    rows = []
    for d in kept.replication.datasets:
        if d.dataset in near:
            continue
        for c in d.comparisons:
            if c.claim not in ORDERING_CLAIMS or c.verdict is not Verdict.INCONCLUSIVE or "se_seeds" not in c.values:
                continue
            n = int(kept.cells.loc[kept.cells["dataset"] == d.dataset, "n_test"].max())
            c = dataclasses.replace(c, values={**c.values, "n_test": n})
            sizes = sorted({min(n * s, test_cap(d.dataset, n * s)) for s in TEST_SCALES})
            options = options_for(c, cell_hours, sizes, rule)
            best = min(options, key=lambda o: o.hours, default=None)
            seeds_only = next((o for o in options if o.n_test == n), None)
            distance = float(c.values["difference"]) - float(c.values["boundary"])
            rows.append({
                "dataset": dataset_name(d.dataset), "claim": c.claim, "stratum": c.stratum,
                "effect − boundary": f"{distance:+.2f}", "seeds now": int(c.values["n_seeds"]),
                "SD of one seed's difference": f"{math.sqrt(int(c.values['n_seeds'])) * float(c.values['se_seeds']):.2f}",
                "test-set SE": f"{float(c.values['se_test']):.2f}", "detectable now": f"{float(c.mdd or math.nan):.2f}",
                "seeds alone": (f"{seeds_only.seeds} seeds, {seeds_only.hours:.1f} h" if seeds_only else
                                f"> {MAX_SEEDS} seeds"),
                "cheapest": (f"{best.seeds} seeds × {best.n_test:,} test, {best.hours:.1f} h" if best else
                             "not decidable at the observed effect"),
                "hours": best.hours if best else math.inf})
    table = pd.DataFrame(rows)
    return table.sort_values("hours", kind="stable").drop(columns="hours").reset_index(drop=True) if rows else table


# ---------------------------------------------------------------- what a cell costs, measured and modelled


def cost_functions(kept: KeptReplication, params: str | Path, data_dir: str | Path, bench_json: str | Path
                   ) -> tuple[Callable[[str, int], float], Callable[[str, int], int]]:
    """``cell_hours(dataset, n_test)``: the dataset's median measured wall time per cell (its kept records), times
    the cost model's ratio for ``n_test`` against the records' own; ``test_cap(dataset, n_test)``: the test set
    the data gives when ``n_test`` is asked for (prepare caps it where the rows run out)."""
    templates = {}
    for config in expand(load_profile(REPLICATION, params)):
        templates.setdefault(config.dataset, config)
    rates = rates_from_bench(bench_json)
    measured = kept.cells.groupby("dataset")["wall_s"].median() / 3600

    @cache
    def modelled(dataset: str, n_test: int) -> float:
        config = dataclasses.replace(templates[dataset], n_test=n_test)
        return float(cell_frame([config], data_dir, rates)["hours_here"].iloc[0])

    @cache
    def test_cap(dataset: str, n_test: int) -> int:
        t = templates[dataset]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return len(make_splits(dataset, data_dir, n_train=t.n_train, n_test=n_test, n_val=t.n_val,
                                   data_seed=t.data_seed).test)

    def cell_hours(dataset: str, n_test: int) -> float:
        return float(measured[dataset]) * modelled(dataset, n_test) / modelled(dataset, templates[dataset].n_test)

    return cell_hours, test_cap


def write_plan(*, records_dir: str | Path, params: str | Path, data_dir: str | Path, bench_json: str | Path,
               out: str | Path, rule: DecisionRule = DEFAULT_RULE) -> pd.DataFrame:
    """`python -m harness plan`: the plan for the kept replication records, written as JSON (REPORT.md shows it)."""
    folder = Path(records_dir) / REPLICATION
    kept = replication_of(folder, rule=rule) if folder.is_dir() else None
    if kept is None:
        raise BadInput(f"no kept replication records in {folder}: run the replication first")
    table = plan_table(kept, *cost_functions(kept, params, data_dir, bench_json), rule)
    write_json_atomic(out, {"records": len(kept.cells), "folder": folder.as_posix(), "rule_alpha": rule.alpha,
                            "power": rule.power, "table": table.to_dict("records")})
    return table
