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

from harness.beyond.validation_size import NEEDED, selection_table, validation_summary
from harness.errors import BadInput
from harness.files import write_json_atomic
from harness.grid.cost import cell_frame
from harness.grid.expand import expand
from harness.grid.profiles import Profile, load_profile, load_raw_profile, parse_block
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
                "hours": best.hours if best else math.inf,
                "dataset_id": d.dataset, "best_seeds": best.seeds if best else None,
                "best_n_test": best.n_test if best else None, "distance": distance,
                "seed_var1": int(c.values["n_seeds"]) * float(c.values["se_seeds"]) ** 2,
                "test_var": float(c.values["se_test"]) ** 2, "n_now": n})
    table = pd.DataFrame(rows)
    return table.sort_values("hours", kind="stable").drop(columns="hours").reset_index(drop=True) if rows else table


# the chosen option and what it rests on, machine-readable (not shown)
DESIGN_COLUMNS = ["dataset_id", "best_seeds", "best_n_test", "distance", "seed_var1", "test_var", "n_now"]


def datasets_needed(distance: float, var_one: float, rule: DecisionRule = DEFAULT_RULE, most: int = 100) -> int | None:
    """The fewest datasets (>= 2) at which the random-effects mean is decided with 80% power at ``distance`` from
    its boundary, when one dataset adds ``var_one`` (between-dataset spread plus its own noise) to the mean's
    variance, tested on t with k - 1 df as the pooling does; None beyond ``most``."""
    for k in range(2, most + 1):
        t = stats.t(k - 1)
        if (t.ppf(1 - rule.alpha) + t.ppf(rule.power)) * math.sqrt(var_one / k) <= abs(distance):
            return k
    return None


def pooled_plan_table(kept: KeptReplication, available: int, rule: DecisionRule = DEFAULT_RULE) -> pd.DataFrame:
    """One row per pooled stratum of claims 1-3 whose mean ("on average") is INCONCLUSIVE: how many datasets the
    mean needs at its observed effect (80% power), against the ``available`` datasets the data holds. A universal
    claim's stratum is decided dataset by dataset, so for it the per-dataset rows are the plan."""
    rows = []
    for p in kept.replication.pooled:
        if p.source != "ours" or p.mean_verdict is not Verdict.INCONCLUSIVE:
            continue
        k, distance = len(p.datasets), p.estimate - p.boundary
        needed = datasets_needed(distance, k * p.se ** 2, rule)
        rows.append({"claim": p.claim, "stratum": p.stratum, "datasets now": k, "mean − boundary": f"{distance:+.2f}",
                     "τ (between datasets)": f"{p.tau:.2f}", "SE of the mean": f"{p.se:.2f}",
                     "datasets for the mean": (f"{needed}" if needed else "> 100")
                     + ("" if needed and needed <= available else f" (the data holds {available})"),
                     "quantifier": p.quantifier})
    return pd.DataFrame(rows)


def test_scoring(template, n_test: int, n_val: int | None = None) -> str:
    """How a planned cell scores its test set: as the kept records did at their own test and validation sizes (the
    same cells, never computed twice), and once, at the epoch chosen on validation, at any other (new cells either
    way: scoring thousands of examples after every epoch would cost more than the training)."""
    own = n_test == template.n_test and (n_val is None or n_val == template.n_val)
    return template.test_scoring if own else "selected"


def seeds_at(row: dict, n_test: int, rule: DecisionRule = DEFAULT_RULE) -> int:
    """The seeds one planned comparison needs at ``n_test`` (its block may score a larger test set than its own
    cheapest option: the test term then shrinks and fewer seeds suffice); its own option's seeds where the row
    carries no variance parts."""
    if "distance" not in row or pd.isna(row.get("distance")):
        return int(row["best_seeds"])
    needed = seeds_needed(float(row["distance"]), float(row["seed_var1"]),
                          float(row["test_var"]) * float(row["n_now"]) / n_test, rule)
    return int(needed if needed is not None else row["best_seeds"])


def design_profile(table: pd.DataFrame, params: str | Path, name: str = "decide",
                   scored: dict[str, int] | None = None, validation: dict[str, int] | None = None) -> dict:
    """The plan as a profile of params.yaml: per dataset with a decidable comparison, the replication's own block
    for it (full fine-tuning) at the most seeds and the test size its cheapest options ask for. Seeds the replication
    already ran at the same test size are the same cells (same identities: never computed twice); a larger test set
    is scored once, at the epoch chosen on validation (``test_scoring``). Commit it, with the plan it came from,
    before its cells run. ``scored``: the test size each dataset's records were scored on (the data caps what a
    block asks for): an option at that size is the block's own test set, so the same cells. ``validation``: the
    validation size each dataset needs (``harness.beyond.validation_size``); where it is larger than the block's,
    the block takes it, and every one of its cells is new."""
    chosen = table.dropna(subset=["best_seeds"]) if len(table) else table
    if chosen is None or chosen.empty:
        raise BadInput("the plan decides no comparison at its observed effect: no profile to write")
    profile = load_raw_profile(REPLICATION, params)
    blocks = []
    for dataset, mine in chosen.groupby("dataset_id", sort=False):
        block = next((b for b in profile["blocks"] if dataset in b.get("datasets", profile["defaults"].get("datasets", []))
                      and "probe" not in b.get("modes", profile["defaults"].get("modes", ["full"]))), None)
        if block is None:
            raise BadInput(f"profile {REPLICATION} has no full fine-tuning block for {dataset}")
        n_test = int(mine["best_n_test"].max())
        seeds = max(seeds_at(row, n_test) for row in mine.to_dict("records"))
        one = len(block.get("datasets", [])) == 1
        own = block.get("n_test", profile["defaults"].get("n_test"))
        n_test = own if n_test == (scored or {}).get(dataset) else n_test
        own_val = block.get("n_val", profile["defaults"].get("n_val"))
        n_val = max(own_val or 0, int((validation or {}).get(dataset) or 0)) or own_val
        blocks.append({**block, "name": block["name"] if one else f"{block['name']}_{dataset}", "datasets": [dataset],
                       "seeds": list(range(seeds)), "n_test": n_test,
                       **({} if n_val == own_val else {"n_val": n_val}),
                       **({} if n_test == own and n_val == own_val else {"test_scoring": "selected"})})
    return {name: {"defaults": profile["defaults"], "blocks": blocks}}


def design_cells(design: dict) -> list:
    """The cells of a design profile (``design_profile``'s mapping), expanded as the grid would."""
    ((name, raw),) = design.items()
    defaults = raw.get("defaults") or {}
    return expand(Profile(name=name, blocks=tuple(parse_block(b, defaults, i) for i, b in enumerate(raw["blocks"]))))


def design_hours(design: dict, kept: KeptReplication, cell_hours: Callable[[str, int], float]) -> float:
    """What a design's new cells cost (cells the replication already kept are not run again)."""
    done = set(kept.cells["config_hash"])
    return sum(cell_hours(c.dataset, c.n_test, c.n_val) for c in design_cells(design) if c.hash not in done)


def budgeted_design(table: pd.DataFrame, params: str | Path, kept: KeptReplication,
                    cell_hours: Callable[..., float], hours: float, name: str = "decide",
                    validation: dict[str, int] | None = None) -> tuple[dict | None, pd.DataFrame, float]:
    """The design within ``hours``: comparisons taken cheapest first (the plan's order), each kept only if the whole
    design, every setting of its dataset's block at the seeds and test size it asks for, still fits. Returns the
    profile (None if nothing fits), the comparisons it targets and its cost in hours."""
    scored = kept.cells.groupby("dataset")["n_test"].max().astype(int).to_dict()
    chosen, design, cost = [], None, 0.0
    for index in table.dropna(subset=["best_seeds"]).index if len(table) else []:
        trial = design_profile(table.loc[[*chosen, index]], params, name, scored, validation)
        trial_cost = design_hours(trial, kept, cell_hours)
        if trial_cost <= hours:
            chosen, design, cost = [*chosen, index], trial, trial_cost
    return design, table.loc[chosen], cost


# ---------------------------------------------------------------- what a cell costs, measured and modelled


def cost_functions(kept: KeptReplication, params: str | Path, data_dir: str | Path, bench_json: str | Path
                   ) -> tuple[Callable[[str, int], float], Callable[[str, int], int]]:
    """``cell_hours(dataset, n_test, n_val=None)``: the dataset's median measured wall time per cell (its kept
    records), times the cost model's ratio for ``n_test`` (and ``n_val``) against the records' own;
    ``test_cap(dataset, n_test)``: the test set
    the data gives when ``n_test`` is asked for (prepare caps it where the rows run out)."""
    templates = {}
    for config in expand(load_profile(REPLICATION, params)):
        templates.setdefault(config.dataset, config)
    rates = rates_from_bench(bench_json)
    measured = kept.cells.groupby("dataset")["wall_s"].median() / 3600

    @cache
    def modelled(dataset: str, n_test: int, n_val: int | None = None) -> float:
        template = templates[dataset]
        config = dataclasses.replace(template, n_test=n_test, n_val=n_val or template.n_val,
                                     test_scoring=test_scoring(template, n_test, n_val))
        return float(cell_frame([config], data_dir, rates)["hours_here"].iloc[0])

    @cache
    def test_cap(dataset: str, n_test: int) -> int:
        t = templates[dataset]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return len(make_splits(dataset, data_dir, n_train=t.n_train, n_test=n_test, n_val=t.n_val,
                                   data_seed=t.data_seed).test)

    def cell_hours(dataset: str, n_test: int, n_val: int | None = None) -> float:
        return float(measured[dataset]) * modelled(dataset, n_test, n_val) / modelled(dataset,
                                                                                      templates[dataset].n_test)

    return cell_hours, test_cap


def write_plan(*, records_dir: str | Path, params: str | Path, data_dir: str | Path, bench_json: str | Path,
               out: str | Path, rule: DecisionRule = DEFAULT_RULE, hours: float | None = None,
               profile_name: str = "decide") -> tuple[pd.DataFrame, dict | None]:
    """`python -m harness plan`: the plan for the kept replication records, written as JSON (REPORT.md shows it),
    and, with ``hours``, the design that decides the most comparisons within them (``budgeted_design``)."""
    folder = Path(records_dir) / REPLICATION
    kept = replication_of(folder, rule=rule) if folder.is_dir() else None
    if kept is None:
        raise BadInput(f"no kept replication records in {folder}: run the replication first")
    cell_hours, test_cap = cost_functions(kept, params, data_dir, bench_json)
    table = plan_table(kept, cell_hours, test_cap, rule)
    validation = validation_summary(selection_table(folder))
    needed = {row["dataset"]: int(row[NEEDED]) for row in validation.to_dict("records")
              if row[NEEDED] is not None and not pd.isna(row[NEEDED])}
    pooled = pooled_plan_table(kept, len({d.dataset for d in kept.replication.datasets}), rule)
    shown = table.drop(columns=DESIGN_COLUMNS) if len(table) else table
    design, targets, cost = (budgeted_design(table, params, kept, cell_hours, hours, profile_name, needed)
                             if hours is not None else (None, table.iloc[:0], 0.0))
    write_json_atomic(out, {"records": len(kept.cells), "folder": folder.as_posix(), "rule_alpha": rule.alpha,
                            "power": rule.power, "table": shown.to_dict("records"),
                            "design": table[DESIGN_COLUMNS].dropna().to_dict("records") if len(table) else [],
                            "pooled": pooled.to_dict("records"),
                            "validation": validation.to_dict("records"),
                            **({"budget": {"hours": hours, "cost_hours": cost, "profile": design,
                                           "targets": targets[["dataset", "claim", "stratum", "cheapest"]]
                                           .to_dict("records")}} if hours is not None else {})})
    return table, design
