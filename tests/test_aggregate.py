"""Aggregation of synthetic result records: the tables, the lr choices and the DVC metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.errors import BadInput
from harness.files import write_json_atomic
from harness.grid.aggregate import CELL_COLUMNS, aggregate, level_curves, read_cells, summarise
from harness.method.config import METHOD_VERSION, CellConfig, cell_identity
from harness.method.record import record_path

SETTINGS = [("none", 0.0), ("bottom", 0.5), ("top", 0.5), ("all", 1.0)]
DIGESTS = {"sst2": "sst2-files", "emotion": "emotion-files"}  # stand-ins for harness.method.data.dataset_digest


def grid(model="minilm-l6", dataset="sst2", lrs=(1e-5, 5e-5), seeds=(0, 1, 2), mode="full") -> list[CellConfig]:
    return [CellConfig(model=model, dataset=dataset, position=p, fraction=f, lr=lr, seed=s, mode=mode, epochs=2)
            for p, f in SETTINGS for lr in lrs for s in seeds]


def score(config: CellConfig) -> tuple[float, float]:
    """A made-up (best test F1, validation F1): bottom hurts more than top, lr 5e-5 wins on test,
    1e-5 wins on validation, and seeds spread the scores by +-1."""
    base = {"none": 90.0, "top": 85.0, "bottom": 80.0, "all": 70.0}[config.position]
    test = base + (2.0 if config.lr == 5e-5 else 0.0) + (config.seed - 1)
    val = base + (1.0 if config.lr == 1e-5 else 0.0)
    return test, val


def record(config: CellConfig, status: str = "ok") -> dict:
    test, val = score(config)
    if status == "diverged":
        test = val = float("nan")
    n_corrupted = round(config.fraction * 6)
    return {
        "config": config.to_dict(), "config_hash": config.hash, "status": status,
        "identity": cell_identity(config, DIGESTS[config.dataset]), "method_version": METHOD_VERSION,
        "data_digest": DIGESTS[config.dataset],
        "best_test_f1": test, "best_epoch": 2, "selected_test_f1": test - 0.5, "selected_val_f1": val,
        "selected_epoch": 1, "majority_f1": 33.0, "final_test_f1": test - 1.0, "n_layers": 6,
        "n_corrupted": n_corrupted, "level": 100.0 * n_corrupted / 6, "tokens_per_s": 1000.0, "wall_s": 10.0,
        "data": {"n_train": 500, "n_val": 50, "n_test": 200, "notes": []},
    }


def write(cells_dir: Path, configs, status="ok") -> None:
    for config in configs:
        write_json_atomic(record_path(config, cells_dir, DIGESTS[config.dataset]), record(config, status))


def test_tables_and_lr_choices(tmp_path):
    cells = grid()
    write(tmp_path / "cells", cells)
    summary = aggregate("t", cells, tmp_path / "cells", tmp_path, DIGESTS)

    table = pd.read_csv(tmp_path / "cells.csv")
    assert list(table.columns) == CELL_COLUMNS and len(table) == len(cells) == 24
    assert list(summary["position"]) == ["none", "bottom", "top", "all"]
    bottom = summary[summary["position"] == "bottom"].iloc[0]
    # the paper's choice: the lr with the best mean test F1; mean and std over the three seeds
    assert bottom["best_lr"] == 5e-5
    assert bottom["best_f1_mean"] == pytest.approx(82.0) and bottom["best_f1_std"] == pytest.approx(1.0)
    # the held-out choice: the lr with the best mean validation F1, scored on test
    assert bottom["selected_lr"] == 1e-5 and bottom["selected_f1_mean"] == pytest.approx(79.5)
    assert bottom["n_seeds"] == 3 and bottom["n_ok"] == 6 and bottom["n_diverged"] == 0
    assert (bottom["level"], bottom["n_corrupted"]) == (50.0, 3)


def test_summary_json_is_nested_dvc_metrics(tmp_path):
    cells = grid()
    write(tmp_path / "cells", cells)
    summary = aggregate("t", cells, tmp_path / "cells", tmp_path, DIGESTS)
    metrics = json.loads((tmp_path / "summary.json").read_text())
    assert metrics["cells"] == {"expected": 24, "found": 24, "missing": 0, "ok": 24, "failed_run": 0, "diverged": 0}
    settings = metrics["f1"]["minilm-l6"]["sst2"]["cls_full"]
    assert set(settings) == {"clean", "bottom_3of6", "top_3of6", "all"}
    top = summary[(summary["pooling"] == "cls") & (summary["mode"] == "full") & (summary["position"] == "top")]
    assert settings["top_3of6"]["selected_f1_mean"] == pytest.approx(top["selected_f1_mean"].item())
    # one number a setting, so `dvc metrics show` prints a readable row (issue 22.5); summary.csv has the rest
    assert set(settings["clean"]) == {"selected_f1_mean"}


def test_stale_records_of_other_profiles_are_left_out(tmp_path):
    cells, other = grid(), grid(dataset="emotion", lrs=(2e-5,))
    write(tmp_path / "cells", cells + other)
    (tmp_path / "cells" / f".{cell_identity(cells[0], DIGESTS['sst2'])}.json.abc.tmp").write_text("{")
    summary = aggregate("t", cells, tmp_path / "cells", tmp_path, DIGESTS)
    assert set(summary["dataset"]) == {"sst2"}
    assert len(pd.read_csv(tmp_path / "cells.csv")) == 24


def test_missing_and_diverged_cells(tmp_path, capsys):
    cells = grid()
    diverged = [c for c in cells if c.position == "all" and c.lr == 5e-5]
    present = [c for c in cells if c.seed != 2 or c.position != "none"]
    write(tmp_path / "cells", [c for c in present if c not in diverged])
    write(tmp_path / "cells", diverged, status="diverged")
    summary = aggregate("t", cells, tmp_path / "cells", tmp_path, DIGESTS)
    assert "2 of 24 cells" in capsys.readouterr().err
    metrics = json.loads((tmp_path / "summary.json").read_text())  # strict JSON: NaN written as null
    assert metrics["cells"]["missing"] == 2 and metrics["cells"]["diverged"] == len(diverged)
    full = summary[summary["position"] == "all"].iloc[0]
    assert full["n_diverged"] == 3 and full["best_lr"] == 1e-5  # a diverged lr never wins
    assert summary[summary["position"] == "none"].iloc[0]["n_seeds"] == 2


def test_all_diverged_setting_is_null_in_json(tmp_path):
    cells = [c for c in grid() if c.position != "all"] + [c for c in grid() if c.position == "all"]
    write(tmp_path / "cells", [c for c in cells if c.position != "all"])
    write(tmp_path / "cells", [c for c in cells if c.position == "all"], status="diverged")
    aggregate("t", cells, tmp_path / "cells", tmp_path, DIGESTS)
    text = (tmp_path / "summary.json").read_text()
    assert "NaN" not in text
    assert json.loads(text)["f1"]["minilm-l6"]["sst2"]["cls_full"]["all"]["selected_f1_mean"] is None


def test_level_curves_share_clean_and_full_points():
    frame, _ = read_cells([], "nowhere", DIGESTS)
    assert list(frame.columns) == CELL_COLUMNS and frame.empty
    rows = []
    for config in grid():
        row = {k: v for k, v in record(config).items() if k in CELL_COLUMNS}
        rows.append({**config.to_dict(), **row, "n_train": 500, "n_test": 200})
    curves = level_curves(summarise(pd.DataFrame(rows).reindex(columns=CELL_COLUMNS)))
    for series in ("bottom", "top"):
        part = curves[curves["series"] == series]
        assert list(part["level"]) == [0.0, 50.0, 100.0]
    assert np.allclose(curves["f1_high"] - curves["f1"], curves["best_f1_std"])


def test_cells_differing_outside_the_summary_keys_are_refused(tmp_path):
    cells = grid(seeds=(0,))
    longer = [c.with_(epochs=5) for c in cells]
    write(tmp_path / "cells", cells + longer)
    with pytest.raises(BadInput, match="differ elsewhere"):
        aggregate("t", cells + longer, tmp_path / "cells", tmp_path, DIGESTS)


def test_no_records_at_all_says_what_to_run(tmp_path):
    with pytest.raises(BadInput, match="python -m harness grid --profile t"):
        aggregate("t", grid(), tmp_path / "cells", tmp_path, DIGESTS)


def test_probe_and_full_are_separate_slices(tmp_path):
    cells = grid(seeds=(0,)) + grid(seeds=(0,), mode="probe")
    write(tmp_path / "cells", cells)
    summary = aggregate("t", cells, tmp_path / "cells", tmp_path, DIGESTS)
    assert len(summary) == 8 and set(summary["mode"]) == {"full", "probe"}
    assert math.isnan(summary["best_f1_std"].iloc[0])  # one seed: no spread
