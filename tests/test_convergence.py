"""harness/verdict/convergence.py: under-trained slices are found, plateaued ones are not."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.grid.aggregate import CELL_COLUMNS
from harness.verdict.convergence import diagnose, under_trained_slices


def cell(position: str, seed: int, last: float, earlier: float, best_epoch: int = 4, epochs: int = 4,
         dataset: str = "sst2", lr: float = 1e-4, best: float = 85.0, chosen_val: float | None = None) -> dict:
    """A cell whose chosen epoch (best validation F1, the verdicts' reading) is also its best test epoch."""
    level = {"none": 0.0, "bottom": 33.3, "top": 33.3, "all": 100.0}[position]
    return {"model": "m", "dataset": dataset, "pooling": "mean", "mode": "full", "position": position, "level": level,
            "lr": lr, "seed": seed, "best_test_f1": best, "n_epochs_run": epochs,
            "selected_val_f1": last if chosen_val is None else chosen_val,
            "last_val_f1": last, "best_earlier_val_f1": earlier, "best_epoch": best_epoch, "selected_epoch": best_epoch,
            "status": "ok"}


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows).reindex(columns=CELL_COLUMNS)


PLATEAU = [cell(p, s, 85.2, 85.0, best_epoch=3) for p in ("none", "bottom", "top", "all") for s in range(3)]


def test_a_plateaued_slice_is_not_under_trained():
    found = diagnose(frame(PLATEAU))
    assert len(found) == 1 and not found["under_trained"].item() and found["reason"].item() == "plateaued"
    assert under_trained_slices(found) == set()


def test_a_clean_model_still_rising_flags_its_slice():
    rows = [cell("none", s, 88.0, 85.0) for s in range(3)] + PLATEAU[3:]
    found = diagnose(frame(rows))
    assert found["under_trained"].item() and "clean validation F1 still rose +3.00" in found["reason"].item()
    assert under_trained_slices(found) == {("m", "sst2", "mean", "full")}


def test_most_cells_still_rising_flags_the_slice_even_with_a_converged_clean_model():
    rows = PLATEAU[:3] + [cell(p, s, 80.0, 75.0) for p in ("bottom", "top", "all") for s in range(3)]
    found = diagnose(frame(rows))
    assert found["under_trained"].item() and "75% of cells still rising" in found["reason"].item()
    assert found["share_best_last"].item() == pytest.approx(0.75)


def test_a_best_last_epoch_on_a_plateau_is_not_a_rise():
    rows = [cell(p, s, 85.3, 85.0, best_epoch=4) for p in ("none", "bottom", "top", "all") for s in range(3)]
    found = diagnose(frame(rows))
    assert found["share_best_last"].item() == 1.0 and not found["under_trained"].item()


def test_one_epoch_cannot_show_a_plateau():
    rows = [cell(p, s, 85.0, float("nan"), best_epoch=1, epochs=1) for p in ("none", "all") for s in range(2)]
    assert diagnose(frame(rows))["under_trained"].item()


def test_only_the_chosen_lr_counts_and_slices_are_separate():
    # an lr that validation does not choose (and test would not either)
    rising_other_lr = [cell("none", s, 90.0, 80.0, lr=1e-5, best=50.0, chosen_val=50.0) for s in range(3)]
    other = [cell("none", s, 90.0, 80.0, dataset="emotion") for s in range(3)]
    for metric in ("selected", "best"):
        found = diagnose(frame(PLATEAU + rising_other_lr + other), metric=metric).set_index("dataset")
        assert not found.loc["sst2", "under_trained"] and found.loc["emotion", "under_trained"]


def test_the_diagnostic_reads_the_rows_the_verdict_reads():
    """Issue 20.4: validation picks one lr, test another; each reading diagnoses its own rows."""
    by_validation = [cell("none", s, 90.0, 80.0, lr=1e-5, best=50.0, chosen_val=95.0) for s in range(3)]  # rising
    by_test = [cell("none", s, 85.2, 85.0, lr=1e-4, best=90.0, chosen_val=60.0) for s in range(3)]  # plateau
    rows = frame(by_validation + by_test)
    assert diagnose(rows)["under_trained"].item() and not diagnose(rows, metric="best")["under_trained"].item()


def test_a_results_file_without_curves_gives_no_diagnosis():
    assert diagnose(pd.DataFrame({"model": ["m"]})).empty
