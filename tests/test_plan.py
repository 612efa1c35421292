"""The power projection (harness.beyond.plan): the seeds it asks for give the power it promises, on the engine's
own test, and its options are costed as the grid would run them."""

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from harness.beyond.plan import (
    budgeted_design,
    datasets_needed,
    design_cells,
    design_hours,
    design_profile,
    options_for,
    plan_table,
    pooled_plan_table,
    seeds_at,
    seeds_needed,
)
from harness.grid.expand import expand
from harness.grid.profiles import load_profile
from harness.verdict.claims import Comparison
from harness.verdict.decision import DEFAULT_RULE, Verdict
from harness.verdict.replication import replication_of

REPO = Path(__file__).resolve().parents[1]
RECORDS = REPO / "results" / "records" / "replication"


@pytest.mark.parametrize("distance, seed_var1, test_var", [(2.0, 1.0, 0.1), (1.0, 0.5, 0.05), (-1.5, 2.0, 0.2)])
def test_the_seeds_it_asks_for_give_80_percent_power_on_the_engines_test(distance, seed_var1, test_var):
    k = seeds_needed(distance, seed_var1, test_var)
    assert k is not None and k >= 2
    assert k == 2 or seeds_needed(distance, seed_var1, test_var, max_seeds=k - 1) is None  # the fewest
    # simulate: k per-seed differences around the truth plus one shared test-set shift; the engine's SE is the
    # seeds' spread / k plus the known test term, on t with k - 1 df
    rng, grids = np.random.default_rng(0), 4000
    shift = rng.normal(0, math.sqrt(test_var), grids)
    seeds = distance + shift[:, None] + rng.normal(0, math.sqrt(seed_var1), (grids, k))
    se = np.sqrt(seeds.var(axis=1, ddof=1) / k + test_var)
    t = seeds.mean(axis=1) / se * np.sign(distance)
    power = float(np.mean(t > stats.t(k - 1).ppf(1 - DEFAULT_RULE.alpha)))
    assert power >= 0.75, power  # 0.8 promised at the true variance; the estimated s^2 costs a little


def test_at_the_boundary_nothing_decides():
    assert seeds_needed(0.0, 1.0, 0.1) is None


def _comparison(difference=2.0, boundary=0.0, se_seeds=0.5, se_test=0.3, k=3):
    return Comparison("no-complete-recovery", {"dataset": "sst2", "comparison": "top50<clean"},
                      {"difference": difference, "boundary": boundary, "se_seeds": se_seeds, "se_test": se_test,
                       "n_seeds": k, "n_test": 1000}, Verdict.INCONCLUSIVE, "", stratum="top 50%")


def test_options_cost_new_seeds_at_todays_test_size_and_every_seed_at_a_larger_one():
    hours = {1000: 0.1, 4000: 0.2}
    found = {o.n_test: o for o in options_for(_comparison(), lambda d, n: hours[n], [1000, 4000])}
    today, larger = found[1000], found[4000]
    assert today.new_cells == 2 * (today.seeds - 3) and today.hours == pytest.approx(today.new_cells * 0.1)
    assert larger.new_cells == 2 * larger.seeds and larger.seeds <= today.seeds  # a smaller test term


def test_the_plan_covers_every_open_comparison_of_claims_1_to_3_and_sorts_by_cost():
    kept = replication_of(RECORDS)
    table = plan_table(kept, lambda d, n: 0.1 * n / 1000, lambda d, n: min(n, 4000))
    near = {s.split(" (")[0] for s in kept.replication.near_chance}
    open_ones = [c for d in kept.replication.datasets if d.dataset not in near for c in d.comparisons
                 if c.claim in ("no-complete-recovery", "monotone-degradation", "bottom-worse-than-top")
                 and c.verdict is Verdict.INCONCLUSIVE and "se_seeds" in c.values]
    assert len(table) == len(open_ones) > 0
    costs = [float(c.split(", ")[-1].removesuffix(" h")) for c in table["cheapest"] if not c.startswith("not")]
    assert costs == sorted(costs)
    assert not table["dataset"].isin(["RTE"]).any()  # near chance: out of the pooled verdicts, out of the plan


def test_the_datasets_it_asks_for_give_80_percent_power_to_the_pooled_mean():
    k = datasets_needed(1.5, 4.0)
    assert k is not None and (k == 2 or datasets_needed(1.5, 4.0, most=k - 1) is None)
    rng, grids = np.random.default_rng(1), 4000
    gaps = 1.5 + rng.normal(0, 2.0, (grids, k))  # one gap per dataset: its spread is the between-dataset part
    t = gaps.mean(axis=1) / np.sqrt(gaps.var(axis=1, ddof=1) / k)
    assert float(np.mean(t > stats.t(k - 1).ppf(1 - DEFAULT_RULE.alpha))) >= 0.75
    assert datasets_needed(0.0, 4.0) is None


def test_the_plan_is_written_as_a_profile_that_expands_to_the_replications_cells_plus_the_new_seeds(tmp_path):
    kept = replication_of(RECORDS)
    table = plan_table(kept, lambda d, n: 0.1 * n / 1000, lambda d, n: n)
    pooled = pooled_plan_table(kept, 8)
    assert set(pooled["claim"]) <= {"no-complete-recovery", "monotone-degradation", "bottom-worse-than-top"}
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    design = design_profile(table, REPO / "params.yaml", "decide")
    params["profiles"].update(design)
    written = tmp_path / "params.yaml"
    written.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    cells = expand(load_profile("decide", written))
    replication_cells = expand(load_profile("replication", REPO / "params.yaml"))
    replication, replication_n = {c.hash for c in replication_cells}, {c.dataset: c.n_test for c in replication_cells}
    chosen = table.dropna(subset=["best_seeds"])
    for dataset, mine in chosen.groupby("dataset_id"):
        n_test = int(mine["best_n_test"].max())  # the largest test set asked for, with the most seeds at it
        assert {c.n_test for c in cells if c.dataset == dataset} == {n_test}
        seeds = {c.seed for c in cells if c.dataset == dataset}
        # each comparison's seeds at the block's test size: a larger test set than its own option needs fewer
        assert seeds == set(range(max(seeds_at(row, n_test) for row in mine.to_dict("records"))))
        assert all(seeds_at(row, n_test) <= row["best_seeds"] for row in mine.to_dict("records"))
    # seeds the replication ran at the same test size are its very cells: never computed twice
    same_size = [c for c in cells if c.seed < 3 and c.n_test == replication_n[c.dataset]]
    assert {c.hash for c in same_size} <= replication
    # a larger test set is scored once, at the epoch chosen on validation; the replication's own size as it was
    assert all(c.test_scoring == ("every_epoch" if c.n_test == replication_n[c.dataset] else "selected")
               for c in cells)
    assert any(c.test_scoring == "selected" for c in cells)


def test_a_budgeted_design_fits_its_hours_takes_the_cheapest_first_and_reuses_the_kept_cells():
    kept = replication_of(RECORDS)

    def cell_hours(dataset, n_test, n_val=None):
        return 0.1 * max(n_test, 1000) / 1000

    table = plan_table(kept, cell_hours, lambda d, n: n)
    scored = kept.cells.groupby("dataset")["n_test"].max().astype(int).to_dict()
    sizes = {h: budgeted_design(table, REPO / "params.yaml", kept, cell_hours, h) for h in (0.5, 5.0, 50.0)}
    for hours, (design, targets, cost) in sizes.items():
        assert cost <= hours and (design is None) == targets.empty
        if design is not None:
            assert cost == pytest.approx(design_hours(design, kept, cell_hours)) and cost > 0
            assert list(targets.index) == sorted(targets.index)  # cheapest first: the plan's order
    assert len(sizes[0.5][1]) <= len(sizes[5.0][1]) <= len(sizes[50.0][1]) and len(sizes[50.0][1]) > 0
    design = sizes[50.0][0]
    kept_hashes = set(kept.cells["config_hash"])
    for config in design_cells(design):
        if config.seed < 3 and config.test_scoring == "every_epoch":
            assert config.hash in kept_hashes  # the replication's own cells: never computed twice
    # an option at the size the data capped a block to is that block's own test set (MRPC: 408 of the 1,000 asked)
    mrpc = table[table["dataset_id"] == "mrpc"].dropna(subset=["best_seeds"]).head(1)
    if len(mrpc):
        assert int(mrpc["best_n_test"].iloc[0]) == scored["mrpc"] == 408
        block = design_profile(mrpc, REPO / "params.yaml", "decide", scored)["decide"]["blocks"][0]
        assert "test_scoring" not in block and block["n_test"] != 408
    # a validation size larger than the block's (harness.beyond.validation_size): every cell of that block is new
    first = table.dropna(subset=["best_seeds"]).head(1)
    dataset = first["dataset_id"].iloc[0]
    grown = design_profile(first, REPO / "params.yaml", "decide", scored, {dataset: 5000})
    (block,) = grown["decide"]["blocks"]
    assert block["n_val"] == 5000 and block["test_scoring"] == "selected"
    assert not {c.hash for c in design_cells(grown)} & kept_hashes
    assert design_profile(first, REPO / "params.yaml", "decide", scored, {dataset: 10}) == \
        design_profile(first, REPO / "params.yaml", "decide", scored)  # a smaller need keeps the block's own
