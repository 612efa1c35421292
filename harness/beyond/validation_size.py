"""How much noise choosing the epoch on a validation set adds to a run's test F1, and the validation size at which
it stops mattering (issue 35).

Each run is read at its epoch of best validation F1. A small validation set makes that choice itself noisy: an
independent AG News run on 300 validation examples chose epoch 1 of 4 (test F1 85.2) where epochs 2-4 scored
86.8-87.9. The kept records hold every epoch's validation predictions and test F1, so the noise is measured
without a new run: for each record, draw validation sets of ``m`` examples from its own (with replacement; m = a
quarter, a half and all of them), choose the epoch again on each, and take the SD of the chosen epoch's test F1.
Beside it, the seed SD: the spread of a setting's selected test F1 over its seeds, pooled over settings. The seeds
share one validation set (the data seed is fixed), so their spread holds the part of the selection noise that
differs between runs, not the part a new validation set would bring; the ratio of the two variances can exceed 1.
Where it is large, a larger validation set buys more than more seeds. A power law through the three sizes says how the selection SD
falls with m, and where it would fall below half the seed variance: an extrapolation past the data, stated as one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from harness.method.predictions import decode_labels
from harness.method.record import read_record
from harness.verdict.decision import weighted_f1_resampled

SHARES = (0.25, 0.5, 1.0)  # validation sizes as shares of the records' own
SHARE_LABELS = ("n/4", "n/2", "n")
RESAMPLES = 400
SEED = 0
DOMINATES = 0.5  # selection "dominates" where it is at least half the seed variance
NEEDED = f"n_val for ≤ {DOMINATES:g}"  # the summary's column: the validation size a design should use


def selection_sds(record: dict, sizes: Sequence[int], resamples: int = RESAMPLES, seed: int = SEED) -> list[float]:
    """The SD of the chosen epoch's test F1 when the epoch is chosen on validation sets of each size in ``sizes``
    (drawn from the record's own validation examples, with replacement); ties go to the earliest epoch, as the
    record's own choice (``harness.method.cell.summarise``)."""
    labels = decode_labels(record["labels"]["val"])
    predictions = np.stack([decode_labels(e["val_predictions"]) for e in record["epochs"]])
    test_f1 = np.array([e["test_f1_weighted"] for e in record["epochs"]], dtype=float)
    rng = np.random.default_rng(seed)
    found = []
    for m in sizes:
        counts = rng.multinomial(m, np.full(len(labels), 1.0 / len(labels)), size=resamples)
        val_f1 = weighted_f1_resampled(labels, predictions, counts)  # (resamples, epochs)
        found.append(float(test_f1[np.argmax(val_f1, axis=1)].std(ddof=1)))
    return found


def _usable(record: dict | None) -> bool:
    return bool(record) and record.get("config", {}).get("mode") == "full" and "labels" in record \
        and len(record.get("epochs", [])) >= 2 and all("test_f1_weighted" in e for e in record["epochs"])


def selection_table(folder: str | Path, resamples: int = RESAMPLES) -> pd.DataFrame:
    """One row per full fine-tuning record of ``folder``: dataset, setting, seed, n_val, its selected test F1 and
    the selection SD at each share of its validation size (``SHARES``)."""
    rows = []
    for path in sorted(Path(folder).glob("*.json")):
        record = read_record(path)
        if not _usable(record):
            continue
        config, n_val = record["config"], len(decode_labels(record["labels"]["val"]))
        sds = selection_sds(record, [max(2, round(share * n_val)) for share in SHARES], resamples)
        rows.append({"dataset": config["dataset"], "position": config["position"], "fraction": config["fraction"],
                     "lr": config["lr"], "seed": config["seed"], "n_val": n_val,
                     "selected_test_f1": record["selected_test_f1"],
                     **{f"sd_{share:g}": sd for share, sd in zip(SHARES, sds)}})
    return pd.DataFrame(rows)


def validation_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: the selection SD (root mean square over its runs) at each validation size, the seed SD, the
    selection's share of the seed variance at today's size, the power law's exponent, and the validation size at
    which the selection variance would fall to ``DOMINATES`` of the seed variance."""
    rows = []
    for dataset, part in table.groupby("dataset", sort=False):
        n_val = int(part["n_val"].median())
        sds = [float(np.sqrt(np.mean(part[f"sd_{share:g}"] ** 2))) for share in SHARES]
        settings = part.groupby(["position", "fraction", "lr"])["selected_test_f1"]
        within = settings.var(ddof=1).dropna()
        dof = settings.count()[within.index] - 1
        seed_sd = float(np.sqrt((within * dof).sum() / dof.sum())) if dof.sum() > 0 else math.nan
        share = sds[-1] ** 2 / seed_sd ** 2 if seed_sd > 0 else math.nan
        sizes = np.array([share_ * n_val for share_ in SHARES])
        positive = np.array(sds) > 0
        slope = float(np.polyfit(np.log(sizes[positive]), np.log(np.array(sds)[positive]), 1)[0]) \
            if positive.sum() >= 2 else math.nan
        target = math.sqrt(DOMINATES) * seed_sd  # selection SD at which its variance is DOMINATES of the seeds'
        if not share > DOMINATES:
            needed = n_val  # already below
        elif slope < 0:
            needed = math.ceil(n_val * (target / sds[-1]) ** (1.0 / slope))
        else:
            needed = None  # the selection SD does not fall with the size here
        rows.append({"dataset": dataset, "runs": len(part), "n_val": n_val,
                     **{f"selection SD at {label}": sd for label, sd in zip(SHARE_LABELS, sds)},
                     "seed SD": seed_sd, "selection variance / seed variance": share, "SD ∝ n^": slope,
                     NEEDED: needed})
    return pd.DataFrame(rows)
