"""harness/beyond/validation_size.py: the noise that choosing the epoch on validation adds, on records whose truth
is built, and on the kept replication."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.beyond.validation_size import SHARES, selection_sds, selection_table, validation_summary
from harness.method.predictions import encode_labels
from harness.report.replication import validation_part

RECORDS = Path(__file__).resolve().parents[1] / "results" / "records" / "replication"


def _record(val_accuracy: list[float], test_f1: list[float], n_val: int = 400, seed: int = 0) -> dict:
    """A binary run whose epoch e gets each validation example right with probability ``val_accuracy[e]``."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n_val)
    epochs = []
    for accuracy, f1 in zip(val_accuracy, test_f1):
        right = rng.random(n_val) < accuracy
        epochs.append({"val_predictions": encode_labels(np.where(right, labels, 1 - labels)), "test_f1_weighted": f1})
    return {"labels": {"val": encode_labels(labels)}, "epochs": epochs}


def test_a_clear_best_epoch_is_chosen_every_time_and_close_epochs_make_the_choice_noisy():
    clear = _record([0.60, 0.95, 0.70], [80.0, 90.0, 84.0])
    assert selection_sds(clear, [100, 400]) == [0.0, 0.0]  # epoch 2 wins on any validation set
    close = _record([0.85, 0.86, 0.855], [85.0, 89.0, 87.0])
    small, large = selection_sds(close, [50, 1600])
    assert small > 1.0  # the choice flips between epochs whose test F1 differ by up to 4 points
    assert large < small  # a larger validation set chooses more steadily


def test_ties_go_to_the_earliest_epoch_as_the_records_own_choice():
    same = _record([0.8, 0.8], [70.0, 90.0])
    same["epochs"][1]["val_predictions"] = same["epochs"][0]["val_predictions"]  # identical epochs on validation
    assert selection_sds(same, [200]) == [0.0]  # always epoch 1, never a mix of 70 and 90


def test_the_summary_reads_the_power_law_at_the_size_where_selection_stops_dominating():
    # selection SD exactly 2 / sqrt(m / 100): slope -1/2; seed SD 1.0, so the variance ratio at n = 400 is 1.0
    n = 400
    rows = [{"dataset": "sst2", "position": position, "fraction": 0.5, "lr": 1e-4, "seed": seed, "n_val": n,
             "selected_test_f1": 80.0 + (1.0 if seed == 0 else -1.0 if seed == 1 else 0.0),
             **{f"sd_{share:g}": 2.0 / math.sqrt(share * n / 100) for share in SHARES}}
            for position in ("bottom", "top") for seed in (0, 1, 2)]
    (summary,) = validation_summary(pd.DataFrame(rows)).to_dict("records")
    assert summary["seed SD"] == pytest.approx(1.0)
    assert summary["selection variance / seed variance"] == pytest.approx(1.0)
    assert summary["SD ∝ n^"] == pytest.approx(-0.5)
    assert summary["n_val for ≤ 0.5"] == 800  # half the variance: twice the examples at slope -1/2


def test_on_the_kept_replication_every_dataset_is_measured_and_the_report_names_where_selection_dominates():
    table = selection_table(RECORDS, resamples=100)
    assert set(table["dataset"]) >= {"sst2", "ag_news", "emotion"} and (table[[f"sd_{s:g}" for s in SHARES]] >= 0).all().all()
    summary = validation_summary(table)
    assert (summary["selection SD at n"] <= summary["selection SD at n/4"] + 0.2).all()  # more examples, steadier
    text = "\n".join(validation_part({"validation": summary.to_dict("records")}))
    dominated = summary.loc[summary["selection variance / seed variance"] > 0.5, "dataset"]
    assert ("above 0.5 of the seeds'" in text) == (len(dominated) > 0)
    assert validation_part({}) == []
