"""A profile's result records as tables: one row per cell, and the paper's per-setting summary.

* ``results/cells.csv``: one row per cell of the profile (records of other profiles, method
  versions or data versions that share ``results/cells/`` are left out: only the profile's own
  cell identities are read, see ``harness.method.record.cell_record``).
* ``results/summary.csv`` and the DVC metrics ``results/summary.json``: for every slice (model,
  dataset, pooling, mode) and corruption setting, the mean and standard deviation over seeds at two
  learning-rate choices, both made by ``choose_lr``, the one selection rule that tables, plots,
  verdicts and REPORT.md share (the lr is chosen once per setting over its seeds, so seeds stay paired):
    - ``best_*``: the paper's protocol (Section 4): per run the best epoch's test F1, and the lr
      whose seed-mean of it is highest ("we employ different learning rates ... and choose the best");
    - ``selected_*``: the held-out protocol: per run the test F1 at the epoch of best validation F1,
      and the lr whose seed-mean validation F1 is highest. Test data never chooses anything here.
  Status counts (``n_ok``, ``n_failed_run``, ``n_diverged``) cover every lr and seed of the setting.
* ``results/f1_by_level.csv``: the F1-against-corruption-level curves for ``dvc plots``, bottom and
  top as two series that share the clean (0%) and fully corrupted (100%) points.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.errors import BadInput, BadResults
from harness.files import check_writable, write_text_atomic
from harness.grid.expand import expand
from harness.grid.profiles import load_profile
from harness.grid.run import dataset_digests
from harness.method.config import CellConfig
from harness.method.record import RecordWarning, cell_record, read_record

CELL_COLUMNS = [
    "config_hash", "identity", "model", "dataset", "position", "level", "n_corrupted", "n_layers", "fraction", "pooling", "mode",
    "lr", "epochs", "seed", "data_seed", "n_train", "n_test", "status", "best_test_f1", "best_epoch",
    "selected_test_f1", "selected_val_f1", "selected_epoch", "majority_f1", "final_test_f1", "tokens_per_s", "wall_s",
    # what the convergence diagnostic reads (harness.verdict.convergence): the validation curve's end
    "n_epochs_run", "last_val_f1", "best_earlier_val_f1", "precision", "hardware",
]
SLICE = ["model", "dataset", "pooling", "mode"]
SETTING = ["position", "level", "n_corrupted", "n_layers"]
POSITION_ORDER = ["none", "bottom", "top", "all"]  # clean, then bottom and top by level, then 100%
STATUSES = ["ok", "failed_run", "diverged"]


def cell_row(record: dict) -> dict:
    """The cells.csv row of one result record (sizes are those actually used, after any cap)."""
    config = record["config"]
    row = {key: config[key] for key in ("model", "dataset", "position", "fraction", "pooling", "mode", "lr", "epochs",
                                         "seed", "data_seed")}
    row.update({key: record[key] for key in ("config_hash", "identity", "level", "n_corrupted", "n_layers", "status",
                                             "best_test_f1", "best_epoch", "selected_test_f1", "selected_val_f1",
                                             "selected_epoch", "majority_f1", "final_test_f1", "tokens_per_s",
                                             "wall_s")})
    row.update(n_train=record["data"]["n_train"], n_test=record["data"]["n_test"])
    val = [epoch["val_f1_weighted"] for epoch in record.get("epochs", [])]
    row.update(n_epochs_run=len(val), last_val_f1=val[-1] if val else math.nan,
               best_earlier_val_f1=max(val[:-1]) if len(val) > 1 else math.nan,
               precision=config.get("precision", "fp32"), hardware=record.get("hardware", {}).get("summary", ""))
    return row


def _row_or_none(record: dict, cells_dir: str | Path) -> dict | None:
    try:
        return cell_row(record)
    except (KeyError, TypeError) as error:  # a record of another layout is as missing as a torn one
        warnings.warn(f"the record of cell {record['identity']} in {cells_dir} lacks {error}: counted as missing",
                      RecordWarning, stacklevel=3)
        return None


def read_cells(cells: Sequence[CellConfig], cells_dir: str | Path, digests: Mapping[str, str]) -> tuple[pd.DataFrame, list[CellConfig]]:
    """cells.csv's table for ``cells``, and the cells that have no (usable) record yet.

    ``digests``: dataset -> the digest of its files (``harness.grid.run.dataset_digests``).
    """
    rows, missing = [], []
    for config in cells:
        record = cell_record(config, digests[config.dataset], cells_dir)
        row = _row_or_none(record, cells_dir) if record is not None else None
        if row is None:
            missing.append(config)
        else:
            rows.append(row)
    return pd.DataFrame(rows, columns=CELL_COLUMNS), missing


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    order = frame["position"].map(POSITION_ORDER.index)
    return frame.assign(_order=order).sort_values(SLICE + ["_order", "level"], kind="stable").drop(columns="_order")


@dataclass(frozen=True)
class Selection:
    """What a protocol reports (``score``) and what chooses its lr (``chooser``)."""

    score: str
    chooser: str


SELECTION = {"best": Selection("best_test_f1", "best_test_f1"),  # the paper's: best epoch, on test
             "selected": Selection("selected_test_f1", "selected_val_f1")}  # held out: validation chooses


def choose_lr(cells: pd.DataFrame, metric: str = "selected") -> pd.DataFrame:
    """The rows of ``cells`` at the one lr chosen per slice and setting: the fewest diverged seeds (NaN
    scores), then the highest seed mean of the protocol's chooser, then the smallest lr. A diverged seed
    counts against its lr: an lr whose seeds mostly diverged never wins on its one survivor."""
    chooser = SELECTION[metric].chooser
    keys = SLICE + ["position", "level"]
    means = cells.groupby(keys + ["lr"], as_index=False).agg(
        mean=(chooser, "mean"), diverged=(chooser, lambda f1: int(f1.isna().sum())))
    ranked = (means.sort_values("lr").sort_values("mean", ascending=False, na_position="last", kind="stable")
              .sort_values("diverged", kind="stable"))
    chosen = pd.MultiIndex.from_frame(ranked.drop_duplicates(keys)[keys + ["lr"]])
    return cells[pd.MultiIndex.from_frame(cells[keys + ["lr"]]).isin(chosen)]


def summarise(cells: pd.DataFrame) -> pd.DataFrame:
    """Mean +- std over seeds per slice and setting, at the paper's and at the held-out lr choice."""
    keys = SLICE + SETTING
    repeated = cells[cells.duplicated(keys + ["lr", "seed"], keep=False)]
    if not repeated.empty:
        raise BadInput(f"cells {sorted(repeated.config_hash)} share model, dataset, pooling, mode, setting, lr and "
                       "seed but differ elsewhere (epochs, sizes, ...); split them into separate profiles")
    paper = choose_lr(cells, "best").groupby(keys, as_index=False).agg(
        best_lr=("lr", "first"), n_seeds=("seed", "size"), best_f1_mean=("best_test_f1", "mean"),
        best_f1_std=("best_test_f1", "std"), majority_f1=("majority_f1", "mean"))
    held_out = choose_lr(cells, "selected").groupby(keys, as_index=False).agg(
        selected_lr=("lr", "first"), selected_f1_mean=("selected_test_f1", "mean"),
        selected_f1_std=("selected_test_f1", "std"))
    counts = (cells.groupby(keys)["status"].value_counts().unstack(fill_value=0)
              .reindex(columns=STATUSES, fill_value=0).add_prefix("n_").reset_index())
    summary = paper.merge(held_out, on=keys).merge(counts, on=keys)
    return _ordered(summary).reset_index(drop=True)


def level_curves(summary: pd.DataFrame) -> pd.DataFrame:
    """F1 against corruption level, one series per position; clean and 100% belong to both."""
    curves = []
    for series in ("bottom", "top"):
        part = summary[summary["position"].isin(["none", series, "all"])].assign(series=series)
        curves.append(part)
    curves = pd.concat(curves, ignore_index=True)
    spread = curves["best_f1_std"].fillna(0.0)  # one seed: no error bar
    curves = curves.assign(f1=curves["best_f1_mean"], f1_low=curves["best_f1_mean"] - spread,
                           f1_high=curves["best_f1_mean"] + spread,
                           slice=curves["model"] + " " + curves["pooling"] + " " + curves["mode"])
    columns = ["slice"] + SLICE + ["series", "level", "f1", "f1_low", "f1_high", "best_f1_std", "selected_f1_mean",
                                   "selected_f1_std", "majority_f1"]
    return curves.sort_values(SLICE + ["series", "level"], kind="stable")[columns].reset_index(drop=True)


def setting_key(row: pd.Series) -> str:
    if row["position"] == "none":
        return "clean"
    if row["position"] == "all":
        return "all"
    return f"{row['position']}_{row['n_corrupted']}of{row['n_layers']}"


def _finite(value):
    """JSON has no NaN: missing means null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value.item() if hasattr(value, "item") else value


def metrics(profile: str, cells: pd.DataFrame, summary: pd.DataFrame, n_expected: int) -> dict:
    """summary.json: cell counts, then slice -> setting -> scores (nested, as ``dvc metrics`` shows them)."""
    status = cells["status"].value_counts()
    result = {
        "profile": profile,
        "cells": {"expected": n_expected, "found": len(cells), "missing": n_expected - len(cells),
                  **{s: int(status.get(s, 0)) for s in STATUSES}},
        "wall_s_total": _finite(float(cells["wall_s"].sum())),
        "f1": {},
    }
    # few enough for `dvc metrics show` / `dvc exp show` to print a readable row: the verdicts' reading
    # (selected on validation); summary.csv has the rest (its spread, the paper's best-on-test reading)
    fields = ["selected_f1_mean"]
    for _, row in summary.iterrows():
        node = result["f1"].setdefault(row["model"], {}).setdefault(row["dataset"], {})
        node = node.setdefault(f"{row['pooling']}_{row['mode']}", {})
        node[setting_key(row)] = {field: _finite(row[field]) for field in fields}
    return result


def aggregate(profile_name: str, cells: Sequence[CellConfig], cells_dir: str | Path, out_dir: str | Path,
              digests: Mapping[str, str]) -> pd.DataFrame:
    """Write cells.csv, summary.csv, summary.json and f1_by_level.csv for ``cells``; return the summary."""
    check_writable(out_dir)
    frame, missing = read_cells(cells, cells_dir, digests)
    if frame.empty:
        raise BadResults(f"no result records of profile {profile_name!r} in {cells_dir} (for this method version "
                         f"and data): run `python -m harness grid --profile {profile_name}` first")
    if missing:
        print(f"warning: {len(missing)} of {len(cells)} cells of profile {profile_name!r} have no record yet; "
              "the summary covers the others", file=sys.stderr)
    summary = summarise(frame)
    out = Path(out_dir)
    write_text_atomic(out / "cells.csv", frame.to_csv(index=False, float_format="%.6g"))
    write_text_atomic(out / "summary.csv", summary.to_csv(index=False, float_format="%.6g"))
    write_text_atomic(out / "f1_by_level.csv", level_curves(summary).to_csv(index=False, float_format="%.6g"))
    write_text_atomic(out / "summary.json", json.dumps(metrics(profile_name, frame, summary, len(cells)), indent=1) + "\n")
    return summary


def aggregate_profile(profile_name: str | None, *, params: str | Path, cells_dir: str | Path, out_dir: str | Path,
                      data_dir: str | Path) -> None:
    """``aggregate`` for the profile of ``params`` named ``profile_name`` (None: its ``profile:`` key)."""
    profile = load_profile(profile_name, params)
    cells = expand(profile)
    summary = aggregate(profile.name, cells, cells_dir, out_dir, dataset_digests(cells, data_dir))
    print(f"profile {profile.name}: {len(summary)} settings summarised in {out_dir}", file=sys.stderr)


def record_rows(folder: str | Path) -> pd.DataFrame:
    """Every result record in ``folder`` (e.g. a profile's records kept in git) as one row each: its cells.csv
    row plus every config field (corruption kind, component, budget, ...), without expanding a profile."""
    rows = []
    for path in sorted(Path(folder).glob("*.json")):
        record = read_record(path)
        if record is not None and "config" in record and "epochs" in record:
            row = _row_or_none(record, folder)
            if row is not None:
                rows.append({**record["config"], **row, "n_train": record["data"]["n_train"],
                             "revision": record.get("versions", {}).get("revision")})
    return pd.DataFrame(rows)
