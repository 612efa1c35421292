"""The analyse stage: does fine-tuning heal the representations, or build new ones?

For the cells a profile's ``analysis:`` names (clean, top-k, bottom-k and 100%, per seed), each cell
saved every layer's pooled vectors on fixed example sets (the first ``ANALYSIS_EXAMPLES`` of its training
and test splits; ``split`` picks one) before fine-tuning (the corrupted model; the clean cell's is the pretrained model) and after.
Every measure of ``harness.method.representations`` is taken per layer and pooling and written as one long
table, ``analysis.csv``:

    setting, seed, layer, pooling, moment, measure, item, reference, value

* ``probe_accuracy`` (%), ``separation`` (the mean over labels of each label's ``min_distance``),
  ``min_distance`` (item: the label) and ``pair_distance`` (item: "a-b"), for each moment;
* ``movement`` (item: the label) and ``movement_mean``: how far each label's centroid moved in fine-tuning;
* ``spatial_similarity``: reference ``before`` (the same model before fine-tuning) or ``clean`` (the
  clean fine-tuned model of every *other* seed, averaged: for the clean cells themselves this is the
  seed-to-seed baseline that the corrupted ones are read against); NaN with fewer than 3 labels;
* ``cka``: reference ``clean`` (as above), ``pretrained`` (the pretrained model's same layer).

``by_layer`` turns it into the per-setting means the figures, REPORT.md and the fifth claim read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from harness.errors import BadResults
from harness.figures import plot_cka_heatmap, plot_layer_measures
from harness.files import write_json_atomic, write_text_atomic
from harness.grid.expand import analysis_cells, expand
from harness.grid.profiles import load_profile
from harness.method.config import METHOD_VERSION
from harness.method.data import dataset_digest
from harness.method.record import features_path, read_record, record_path, versions
from harness.method.representations import (
    POOLINGS,
    centroid_movement,
    linear_cka,
    min_distances,
    pair_distances,
    probe_accuracy,
    spatial_similarity,
)

SETTINGS = ("clean", "top", "bottom", "100%")
MOMENTS = ("before", "after")
COLUMNS = ["setting", "seed", "layer", "pooling", "moment", "measure", "item", "reference", "value"]


@dataclass(frozen=True)
class CellVectors:
    """One analysed cell: its labels and, per (moment, pooling), an array (layers + 1, examples, hidden)."""

    setting: str
    seed: int
    labels: np.ndarray
    layers: Mapping[tuple[str, str], np.ndarray]

    @property
    def n_layers(self) -> int:
        return next(iter(self.layers.values())).shape[0]


def load_cell_vectors(path: Path, setting: str, seed: int, split: str = "train") -> CellVectors:
    """A cell's saved vectors of ``split``; a file that is missing or lacks the layers is one ``BadResults``."""
    try:
        with np.load(path) as saved:
            layers = {(moment, pooling): saved[f"layers_{split}_{moment}_{pooling}"].astype(np.float32)
                      for moment in MOMENTS for pooling in POOLINGS}
            labels = saved[f"labels_{split}"]
    except (OSError, KeyError, ValueError) as error:
        raise BadResults(f"cannot read the layer vectors of the {setting} cell (seed {seed}) at {path}: {error}; "
                         "rerun its grid (`dvc repro`, or `python -m harness grid`) to save them") from error
    return CellVectors(setting, seed, labels, layers)


def _row(cell: CellVectors, layer: int, pooling: str, moment: str, measure: str, value: float, item: str = "",
         reference: str = "") -> dict:
    return {"setting": cell.setting, "seed": cell.seed, "layer": layer, "pooling": pooling, "moment": moment,
            "measure": measure, "item": item, "reference": reference, "value": value}


def measure_cell(cell: CellVectors, dims: int) -> list[dict]:
    """The measures taken on one cell alone (probe, margins, movement, similarity to itself before)."""
    rows = []
    for pooling in POOLINGS:
        for layer in range(cell.n_layers):
            distances = {}
            for moment in MOMENTS:
                vectors = cell.layers[moment, pooling][layer]
                rows.append(_row(cell, layer, pooling, moment, "probe_accuracy",
                                 probe_accuracy(vectors, cell.labels, seed=cell.seed)))
                distances[moment] = pair_distances(vectors, cell.labels, dims)
                nearest = min_distances(distances[moment])
                rows += [_row(cell, layer, pooling, moment, "pair_distance", width, f"{a}-{b}")
                         for (a, b), width in distances[moment].items()]
                rows += [_row(cell, layer, pooling, moment, "min_distance", width, str(label))
                         for label, width in nearest.items()]
                rows.append(_row(cell, layer, pooling, moment, "separation", float(np.mean(list(nearest.values())))))
            moved = centroid_movement(cell.layers["before", pooling][layer], cell.layers["after", pooling][layer],
                                      cell.labels)
            rows += [_row(cell, layer, pooling, "after", "movement", distance, str(label))
                     for label, distance in moved.items()]
            rows.append(_row(cell, layer, pooling, "after", "movement_mean", float(np.mean(list(moved.values())))))
            rows.append(_row(cell, layer, pooling, "after", "spatial_similarity",
                             spatial_similarity(distances["before"], distances["after"]), reference="before"))
    return rows


def _pairs(rows: pd.DataFrame, setting: str, seed: int, layer: int, pooling: str) -> dict[tuple[int, int], float]:
    found = rows[(rows["setting"] == setting) & (rows["seed"] == seed) & (rows["layer"] == layer)
                 & (rows["pooling"] == pooling) & (rows["moment"] == "after") & (rows["measure"] == "pair_distance")]
    return {tuple(int(x) for x in item.split("-")): value for item, value in zip(found["item"], found["value"])}


def compare_cells(cells: list[CellVectors], within: pd.DataFrame) -> list[dict]:
    """The measures between models: CKA and spatial similarity to the clean fine-tuned model of every
    other seed, and CKA to the pretrained model (the clean cell before fine-tuning)."""
    clean = {c.seed: c for c in cells if c.setting == "clean"}
    if not clean:
        raise BadResults("the analysis has no clean cell to compare with")
    pretrained = next(iter(clean.values()))
    rows = []
    for cell in cells:
        others = [c for seed, c in clean.items() if seed != cell.seed]
        for pooling in POOLINGS:
            for layer in range(cell.n_layers):
                after = cell.layers["after", pooling][layer]
                base = pretrained.layers["before", pooling][layer]
                for moment in MOMENTS:
                    rows.append(_row(cell, layer, pooling, moment, "cka",
                                     linear_cka(cell.layers[moment, pooling][layer], base), reference="pretrained"))
                if others:
                    rows.append(_row(cell, layer, pooling, "after", "cka", float(np.mean(
                        [linear_cka(after, o.layers["after", pooling][layer]) for o in others])), reference="clean"))
                    mine = _pairs(within, cell.setting, cell.seed, layer, pooling)
                    similarities = [spatial_similarity(mine, _pairs(within, "clean", o.seed, layer, pooling))
                                    for o in others]
                    defined = [s for s in similarities if math.isfinite(s)]  # NaN: fewer than 3 labels, or no gap
                    rows.append(_row(cell, layer, pooling, "after", "spatial_similarity",
                                     float(np.mean(defined)) if defined else math.nan, reference="clean"))
    return rows


def measure(cells: list[CellVectors], dims: int, jobs: int = 2) -> pd.DataFrame:
    """Every measure of every analysed cell, as the long ``analysis.csv`` table. Threads, not processes: the work
    is numpy and sklearn (which release the GIL), and a process pool pays a whole import of the package per worker
    (measured on the ci profile: 30 s against 41 s for the stage, identical tables)."""
    within = pd.DataFrame([row for rows in Parallel(n_jobs=jobs, prefer="threads")(delayed(measure_cell)(c, dims) for c in cells)
                           for row in rows], columns=COLUMNS)
    between = pd.DataFrame(compare_cells(cells, within), columns=COLUMNS)
    table = pd.concat([within, between], ignore_index=True)
    order = {s: i for i, s in enumerate(SETTINGS)}
    return table.sort_values(["setting", "seed", "pooling", "layer", "measure", "moment", "reference", "item"],
                             key=lambda col: col.map(order) if col.name == "setting" else col,
                             kind="stable").reset_index(drop=True)


def by_layer(table: pd.DataFrame, pooling: str) -> pd.DataFrame:
    """Per setting and layer, the seed means of the headline measures (one pooling): the figures' and
    the report's numbers."""
    piece = table[(table["pooling"] == pooling) & (table["item"].fillna("") == "")]
    wanted = {"cka_to_clean": ("cka", "after", "clean"), "cka_to_pretrained": ("cka", "after", "pretrained"),
              "cka_before_to_pretrained": ("cka", "before", "pretrained"),
              "separation_before": ("separation", "before", ""), "separation_after": ("separation", "after", ""),
              "probe_before": ("probe_accuracy", "before", ""), "probe_after": ("probe_accuracy", "after", ""),
              "movement": ("movement_mean", "after", ""),
              "spatial_to_clean": ("spatial_similarity", "after", "clean"),
              "spatial_before_after": ("spatial_similarity", "after", "before")}
    columns = {}
    for name, (measure_name, moment, reference) in wanted.items():
        chosen = piece[(piece["measure"] == measure_name) & (piece["moment"] == moment)
                       & (piece["reference"].fillna("") == reference)]
        columns[name] = chosen.groupby(["setting", "layer"])["value"].mean()
    frame = pd.DataFrame(columns).reset_index()
    frame["setting"] = pd.Categorical(frame["setting"], SETTINGS, ordered=True)
    return frame.sort_values(["setting", "layer"]).reset_index(drop=True)


# ---------------------------------------------------------------- the stage


def analyse(profile_name: str | None = None, *, params: str | Path = "params.yaml", cells_dir: str | Path = "results/cells",
            data_dir: str | Path = "data", results_dir: str | Path = "results", plots_dir: str | Path = "results/plots",
            jobs: int = 2) -> Path | None:
    """Measure the profile's analysis cells; write ``analysis.csv``, ``analysis_by_layer.csv``,
    ``analysis.json`` and the two figures. None (and nothing written) if the profile has no ``analysis:``."""
    profile = load_profile(profile_name, params)
    spec = profile.analysis
    if spec is None:
        return None
    digest = dataset_digest(spec.dataset, data_dir)
    chosen = analysis_cells(profile, expand(profile))
    cells, sources = [], []
    for (setting, seed), config in chosen.items():
        path = record_path(config, cells_dir, digest)
        record = read_record(path)
        if record is None:
            raise BadResults(f"no record of the analysis' {setting} cell (seed {seed}) at {path}; run the grid first")
        cells.append(load_cell_vectors(features_path(path), setting, seed, spec.split))
        sources.append({"setting": setting, "seed": seed, "identity": record["identity"], "status": record["status"],
                        "best_test_f1": record["best_test_f1"]})
    table = measure(cells, spec.dims, jobs)
    head = by_layer(table, spec.pooling)
    results_dir = Path(results_dir)
    write_text_atomic(results_dir / "analysis.csv", table.to_csv(index=False))
    write_text_atomic(results_dir / "analysis_by_layer.csv", head.to_csv(index=False))
    final = head[head["layer"] == head["layer"].max()].set_index("setting")
    write_json_atomic(results_dir / "analysis.json", {
        "profile": profile.name, "spec": {**spec.__dict__, "fraction": str(spec.fraction), "seeds": list(spec.seeds)},
        "examples": int(len(cells[0].labels)), "labels": int(len(np.unique(cells[0].labels))),
        "method_version": METHOD_VERSION, "versions": versions(), "cells": sources,
        "final_layer": {str(s): {k: (None if pd.isna(v) else float(v)) for k, v in row.items()}
                        for s, row in final.iterrows()},
    })
    plot_cka_heatmap(head, Path(plots_dir) / "cka.png", title=f"{spec.model} on {spec.dataset}, {spec.pooling} pooling")
    plot_layer_measures(head, Path(plots_dir) / "layers.png",
                        title=f"{spec.model} on {spec.dataset}, {spec.pooling} pooling (mean over {len(spec.seeds)} seeds)")
    return results_dir / "analysis.csv"
