"""harness/beyond/ablations.py: which variants heal fully, seed-paired comparisons, and claim 4 with the probe's
dropout on or off, on cells whose truth is built."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from harness.beyond.ablations import (
    GAIN_CLAIMS,
    compare,
    gain_dependence,
    heals,
    probe_dropout_claim4,
    variant_label,
    with_variants,
)
from harness.grid.aggregate import record_rows
from harness.method.config import DEFAULT_INIT
from harness.verdict.decision import Verdict


def _cells(f1_by_variant: dict[tuple, list[float]], mode="full", probe_dropout=False, n_test=1000) -> list[dict]:
    """Rows like ``aggregate.record_rows``: (position, corruption, strength, component) -> F1 per seed."""
    rows = []
    for (position, corruption, strength, component), f1s in f1_by_variant.items():
        for seed, f1 in enumerate(f1s):
            rows.append({"model": "minilm-l6", "dataset": "sst2", "pooling": "mean", "mode": mode, "position": position,
                         "level": {"none": 0.0, "all": 100.0}.get(position, 33.3), "n_corrupted": 2, "n_layers": 6,
                         "corruption": corruption, "strength": strength, "component": component,
                         "probe_dropout": probe_dropout, "seed": seed, "n_test": n_test,
                         "status": "diverged" if math.isnan(f1) else "ok", "best_test_f1": f1})
    return rows


CLEAN = ("none", "reinit", None, "all")
REINIT = ("all", "reinit", None, "all")
LAYERNORM = ("all", "reinit", None, "layernorm")
NOISE = ("all", "noise", 1.0, "all")
BITFLIP = ("all", "bitflip", 1e-6, "all")
SHUFFLE = ("all", "shuffle", None, "all")


def test_variant_labels_name_kind_strength_component_and_setting():
    frame = pd.DataFrame(_cells({CLEAN: [1.0], REINIT: [1.0], LAYERNORM: [1.0], NOISE: [1.0], BITFLIP: [1.0]}))
    assert list(with_variants(frame)["variant"]) == ["clean", "re-init (100%)", "noise σ=1 (100%)",
                                                     "bit-flip rate 1e-06 (100%)", "re-init LayerNorm only (100%)"]
    probe = _cells({CLEAN: [1.0]}, mode="probe", probe_dropout=True)[0]
    assert variant_label(probe) == "probe, dropout on"


def test_the_kaiming_gain_is_its_own_variant_after_its_default_twin_and_left_out_of_claim4():
    rows = _cells({CLEAN: [90.0, 91.0, 90.5], REINIT: [80.0, 81.0, 80.5]})
    rows += [{**row, "init": "kaiming_uniform_a0"} for row in _cells({REINIT: [75.0, 76.0, 75.5]})]
    frame = pd.DataFrame(rows)
    assert list(dict.fromkeys(with_variants(frame)["variant"])) == ["clean", "re-init (100%)",
                                                                    "re-init a=0 gain (100%)"]
    assert compare(frame, "re-init (100%)", "re-init a=0 gain (100%)")["difference"] == -5.0
    probes = pd.DataFrame(_cells({CLEAN: [70.0, 71.0, 72.0], REINIT: [60.0, 61.0, 62.0]}, mode="probe"))
    with_gain = probe_dropout_claim4(pd.concat([frame, probes], ignore_index=True))
    without = probe_dropout_claim4(pd.concat([frame[frame["init"].isna()], probes], ignore_index=True))
    assert [c.detail for c in with_gain["off"]] == [c.detail for c in without["off"]]  # a=0 cells are not the paper's


def test_heals_fully_when_equal_not_when_a_loss_remains_undecided_when_noisy_and_diverged_is_no():
    scores = {
        CLEAN: [84.0, 84.5, 83.8],
        LAYERNORM: [84.1, 84.3, 83.9],    # within 0.2 of clean in every seed: heals fully ...
        REINIT: [78.0, 78.6, 78.3],       # 6 points down in every seed: does not
        NOISE: [70.0, 85.0, 84.0],        # one bad seed: neither shown equal nor shown lower
        BITFLIP: [math.nan] * 3,          # non-finite from the start
    }
    frame = pd.DataFrame(_cells(scores, n_test=1_000_000))  # ... where the test set's error is negligible
    verdicts = {h.variant: h.verdict for h in heals(frame)}
    assert verdicts == {"re-init LayerNorm only (100%)": "heals fully", "re-init (100%)": "does not heal fully",
                        "noise σ=1 (100%)": "undecided", "bit-flip rate 1e-06 (100%)": "does not heal fully"}
    # on 1,000 test examples every seed shares, the same 0.2 cannot be shown below the 1-point margin
    on_1000 = {h.variant: h.verdict for h in heals(pd.DataFrame(_cells(scores)))}
    assert on_1000["re-init LayerNorm only (100%)"] == "undecided"
    gaps = {h.variant: h.gap for h in heals(frame)}
    assert gaps["re-init (100%)"] == np.mean([84.0 - 78.0, 84.5 - 78.6, 83.8 - 78.3])


def test_compare_reads_the_seed_paired_difference_both_ways():
    frame = pd.DataFrame(_cells({LAYERNORM: [84.1, 84.3, 83.9], REINIT: [78.0, 78.6, 78.3], SHUFFLE: [78.1, 78.5, 78.2]}))
    found = compare(frame, "re-init (100%)", "re-init LayerNorm only (100%)")
    assert found["reading"] == "re-init LayerNorm only (100%) higher" and found["difference"] > 5
    assert compare(frame, "re-init LayerNorm only (100%)", "re-init (100%)")["reading"] == "re-init LayerNorm only (100%) higher"
    assert compare(frame, "re-init (100%)", "shuffle (100%)")["reading"] == "no significant difference"
    assert compare(frame, "re-init (100%)", "zero (100%)")["reading"] == "not both run"


def test_claim4_is_judged_separately_with_the_probe_dropout_off_and_on():
    full = {CLEAN: [84.0, 84.4, 83.9], ("bottom", "reinit", None, "all"): [80.0, 80.5, 79.8],
            ("top", "reinit", None, "all"): [83.0, 83.4, 83.1], REINIT: [78.0, 78.5, 78.2]}
    steady = {CLEAN: [79.0, 79.1, 79.0], ("bottom", "reinit", None, "all"): [74.0, 74.1, 74.0],
              ("top", "reinit", None, "all"): [78.0, 78.1, 78.0], REINIT: [73.0, 73.1, 73.0]}
    shaky = {CLEAN: [70.0, 80.0, 75.0], ("bottom", "reinit", None, "all"): [78.0, 68.0, 73.0],
             ("top", "reinit", None, "all"): [65.0, 81.0, 72.0], REINIT: [77.0, 66.0, 79.0]}
    frame = pd.DataFrame(_cells(full) + _cells(steady, mode="probe") + _cells(shaky, mode="probe", probe_dropout=True))
    found = probe_dropout_claim4(frame)
    spread = {state: next(c for c in comparisons if c.stratum == "seed spread") for state, comparisons in found.items()}
    assert spread["off"].verdict is Verdict.CONTRADICTED  # the steady probe varies less than full fine-tuning
    assert spread["on"].verdict is Verdict.SUPPORTED      # the shaky one more


def test_a_variant_with_some_diverged_runs_is_mixed_not_healed():
    frame = pd.DataFrame(_cells({CLEAN: [84.0, 84.5, 83.8], BITFLIP: [84.1, math.nan, 83.9]}))
    (healing,) = heals(frame)
    assert healing.verdict.startswith("mixed: 1 of 3 runs diverged") and healing.seeds == 2
    assert compare(frame, "bit-flip rate 1e-06 (100%)", "clean")["reading"] != "not both run"
    only_nan = pd.DataFrame(_cells({CLEAN: [84.0, 84.5], BITFLIP: [math.nan, math.nan]}))
    assert compare(only_nan, "clean", "bit-flip rate 1e-06 (100%)")["reading"].startswith("no finite F1")


GAIN_RECORDS = Path(__file__).resolve().parents[1] / "results" / "records" / "kaiming_gain"


def test_each_gain_is_judged_alone_on_the_kept_records():
    cells = record_rows(GAIN_RECORDS)
    found = gain_dependence(cells, GAIN_RECORDS)
    assert [g.claim for g in found] == list(GAIN_CLAIMS)
    for g in found:
        assert list(g.verdicts) == [DEFAULT_INIT, "kaiming_uniform_a0"]  # the default first
        assert all(v.total > 0 for v in g.verdicts.values())  # every claim had comparisons on both gains


def test_a_gain_that_heals_fully_changes_claim_1():
    """Built truth: the a=0 cells replaced by copies of the clean cells (a corruption that costs nothing), so
    claim 1 (no complete recovery) can no longer be supported there while it is on the default gain."""
    cells = record_rows(GAIN_RECORDS)
    clean = cells[cells["position"] == "none"]
    a0 = cells[cells["init"] == "kaiming_uniform_a0"]
    healed = a0.copy()
    for column in ("selected_test_f1", "best_test_f1", "selected_val_f1", "final_test_f1", "last_val_f1"):
        healed[column] = healed["seed"].map(dict(zip(clean["seed"], clean[column])))
    healed["identity"] = ""  # no predictions: the test-set term approximated
    found = {g.claim: g for g in gain_dependence(pd.concat([cells.drop(a0.index), healed]), GAIN_RECORDS)}
    recovery = found[GAIN_CLAIMS[0]]
    assert recovery.verdicts["kaiming_uniform_a0"].supported == 0
    assert recovery.verdicts[DEFAULT_INIT].supported > 0 and recovery.differing_strata  # the settings it heals
