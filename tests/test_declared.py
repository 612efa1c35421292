"""harness/verdict/declared.py and the engine's registries: claims/claims.yaml read and checked, the generated
claim tables in step with it, a finding declared without engine code, the four outcomes of two boundaries,
and failed runs as their own outcome."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness.errors import BadInput
from harness.verdict.claims import COMPARISONS, SPECS, TESTS, evaluate_claims, outcome_of
from harness.verdict.decision import Verdict
from harness.verdict.declared import BEGIN, CLAIMS_FILE, END, claims_table, load_claims, with_table
from harness.verdict.sources import EVIDENCE, TIDY, guess_f1
from harness.verdict.verdicts import aggregate

REPO = Path(__file__).resolve().parent.parent


def test_every_declared_finding_names_a_registered_generator_and_test():
    specs = load_claims()
    assert [s.name for s in specs][:5] == ["no-complete-recovery", "monotone-degradation", "bottom-worse-than-top",
                                           "probe-instability", "separation-order"]
    assert all(s.generator in COMPARISONS and s.test in TESTS for s in specs)
    assert all(b.reason for s in specs for b in s.boundaries)  # every boundary says why
    assert {s.name: s.quantifier for s in specs}["no-complete-recovery"] == "every"


@pytest.mark.parametrize("path, detail", [("README.md", False), ("claims/README.md", True)])
def test_the_claim_tables_are_generated_from_the_file(path, detail):
    text = (REPO / path).read_text(encoding="utf-8")
    table = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert table == claims_table(load_claims(), detail=detail), \
        f"{path}'s claim table drifted from claims/claims.yaml: run `python -m harness claims-tables`"


def _write(tmp_path: Path, claims: list[dict]) -> Path:
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({"claims": claims}), encoding="utf-8")
    return path


def _entry(**changes) -> dict:
    entry = yaml.safe_load(CLAIMS_FILE.read_text(encoding="utf-8"))["claims"][2]  # bottom-worse-than-top
    return {**entry, **changes}


@pytest.mark.parametrize("changes, message", [
    ({"quantifier": "most"}, "quantifier must be one of"),
    ({"boundaries": [{"value": 1, "reason": "x"}, {"value": 0, "reason": "y"}]}, "increasing order"),
    ({"boundaries": [{"value": 0}]}, "boundaries must be one or two"),
    ({"module": "not a name"}, "is not a Python name"),
    ({"verdict_boundary": 3}, "is not one of its boundaries"),
    ({"margins": {"weak_order": 5}}, "a margin needs its reason"),
])
def test_a_malformed_declaration_is_one_clear_error(tmp_path, changes, message):
    with pytest.raises(BadInput, match=message):
        load_claims(_write(tmp_path, [_entry(**changes)]))


def test_a_name_declared_twice_is_refused(tmp_path):
    with pytest.raises(BadInput, match="declared twice"):
        load_claims(_write(tmp_path, [_entry(), _entry()]))
    with pytest.raises(BadInput, match="cannot read"):
        load_claims(tmp_path / "missing.yaml")


def test_markers_are_needed_to_write_a_table():
    with pytest.raises(BadInput, match="markers"):
        with_table("no markers here", "| a |", "README.md")


def _runs(rows: list[tuple], n_test: int = 1000) -> pd.DataFrame:
    """Tidy rows (position, level, seed, f1[, failed]) of one slice on a 2-label test set of ``n_test``."""
    frame = pd.DataFrame([{"table": "mean-full", "model": "m", "dataset": "d", "pooling": "mean", "mode": "full",
                           "position": r[0], "level": r[1], "seed": r[2], "n_test": n_test, "f1": r[3],
                           "identity": "", "epoch": 1, "majority_f1": 33.3,
                           "failed": r[4] if len(r) > 4 else r[3] <= 33.3} for r in rows])
    return frame[TIDY + EVIDENCE]


def test_a_finding_declared_in_yaml_alone_is_judged(tmp_path):
    """A second paper's finding on F1, with the registered generator and test: no engine code."""
    entry = _entry(name="top-worse-than-clean", module="top_worse_than_clean", origin="ours", headline=False,
                   comparisons={"generator": "each_corrupted_below_clean"}, quantifier="average")
    specs = load_claims(_write(tmp_path, [entry]))
    frame = _runs([("none", 0, s, 85.0 + s) for s in range(3)] + [("top", 50, s, 80.0 + s) for s in range(3)])
    found = evaluate_claims(frame, "results", specs=specs)
    assert [c.claim for c in found] == ["top-worse-than-clean"] and found[0].verdict is Verdict.SUPPORTED
    assert aggregate(found, specs=specs)["top-worse-than-clean"].verdict is Verdict.SUPPORTED


def test_two_boundaries_give_four_outcomes():
    spec = next(s for s in SPECS if s.name == "no-complete-recovery")
    yes, no = 0.001, 0.5
    assert outcome_of(spec, {0: yes, 1: yes, -1: yes}, {0: no, 1: no}, 0.05).startswith("a loss beyond the margin")
    assert outcome_of(spec, {0: yes, 1: no, -1: yes}, {0: no, 1: yes}, 0.05).startswith("a real loss within")
    assert outcome_of(spec, {0: yes, 1: no, -1: yes}, {0: no, 1: no}, 0.05).endswith("its size open")
    assert outcome_of(spec, {0: no, 1: no, -1: yes}, {0: no, 1: yes}, 0.05).startswith("equivalent to none")
    assert outcome_of(spec, {0: no, 1: no, -1: no}, {0: no, 1: no}, 0.05) == "undecided"


def test_a_real_loss_of_open_size_is_named_and_claim_2_reads_it_as_a_decline():
    # a loss of ~1.5 F1 on every seed: clearly above 0, not clearly above the +1 margin
    frame = _runs([("none", 0, s, 85.0 + 0.3 * s) for s in range(3)]
                  + [("top", 50, s, 83.5 + 0.3 * s + 0.2 * (s == 1)) for s in range(3)], n_test=100_000)
    found = {c.claim: c for c in evaluate_claims(frame, "results")}
    assert found["no-complete-recovery"].verdict is Verdict.INCONCLUSIVE  # read at +1
    assert "a real loss" in found["no-complete-recovery"].outcome
    assert found["monotone-degradation"].verdict is Verdict.SUPPORTED  # read at 0: "decreases"


def test_failed_runs_are_left_out_of_the_f1_comparisons_and_counted_as_their_own_finding():
    """Issue 32.2: a corrupted seed that collapsed to the majority class must not contradict, nor support."""
    rows = [("none", 0, s, 85.0 + 0.2 * s) for s in range(3)]
    rows += [("bottom", 50, 0, 33.3), ("bottom", 50, 1, 80.2), ("bottom", 50, 2, 80.0)]
    found = [c for c in evaluate_claims(_runs(rows), "results")]
    recovery = next(c for c in found if c.claim == "no-complete-recovery")
    assert recovery.values["n_seeds"] == 2 and recovery.values["failed_low"] == 1
    assert "failed runs left out: bottom50 1 of 3" in recovery.detail
    failures = next(c for c in found if c.claim == "failed-runs")
    assert (failures.values["failed"], failures.values["runs"], failures.values["clean_failed"]) == (1, 3, 0)
    assert failures.verdict is Verdict.INCONCLUSIVE  # 1 of 3 against 0 of 3 is no evidence of a rate


def test_what_a_guess_scores():
    assert guess_f1([0.5, 0.5]) == pytest.approx(50.0)  # guessing at the rates beats the majority's 33.3
    assert guess_f1([0.9, 0.1]) == pytest.approx(100 * 0.9 * 1.8 / 1.9)  # the majority class beats 82
