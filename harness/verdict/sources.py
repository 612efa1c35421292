"""Where a claim's numbers come from: the paper's transcribed tables or our grid, as one tidy frame.

Sources (``load_source``): ``paper`` (claims/paper_tables.csv, the transcribed Tables 2-5) or
``results`` (results/cells.csv, one row per cell, the lr chosen once per setting over its seeds by
``harness.grid.aggregate.choose_lr``). Both become one tidy frame:
``table, model, dataset, pooling, mode, position, level, seed, n_test, f1``.
The fifth claim reads the representation analysis instead (``load_analysis``: results/analysis.csv).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import BadInput
from harness.files import read_csv
from harness.grid.aggregate import CELL_COLUMNS, SELECTION, cell_row, choose_lr
from harness.method.config import METHOD_VERSION
from harness.method.predictions import decode_labels
from harness.method.record import read_record, record_file

REPO = Path(__file__).resolve().parents[2]
PAPER_TABLES = REPO / "claims" / "paper_tables.csv"
RESULTS = REPO / "results" / "cells.csv"
REPLICATION_RECORDS = REPO / "results" / "records" / "replication"  # our measured seed spread, per dataset
DATA = REPO / "data"  # the datasets (`dvc pull`): the paper's majority-class F1 per dataset
ANALYSIS = REPO / "results" / "analysis.csv"  # with analysis.json beside it (harness.beyond.analysis)

GROUP = ["table", "model", "dataset", "pooling", "mode"]
SLICE_KEY = ["model", "dataset", "pooling", "mode"]  # what the convergence diagnostic names a slice by
TIDY = GROUP + ["position", "level", "seed", "n_test", "f1"]
# Our grid's rows also say where their evidence is: the record (identity), the epoch the protocol read,
# and the majority-class F1 (the floor); the paper's rows leave them empty.
EVIDENCE = ["identity", "epoch", "majority_f1", "failed"]
POSITIONS = ("none", "bottom", "top", "all")
METRICS = ("best", "selected")
SOURCES = ("paper", "results")

# Which training protocol each paper table reports (Sections 4.2-4.3); Table 5 = pair tasks, [CLS], full.
PAPER_PROTOCOL = {2: ("cls", "full"), 3: ("mean", "full"), 4: ("cls", "probe"), 5: ("cls", "full")}
PAPER_LEVELS = (0, 25, 50, 75, 100)
# Test-set sizes behind each paper value: Table 1 for the six classification datasets; the pair tasks
# are scored on GLUE's validation split (their test labels are hidden), as harness/method/data.py does.
PAPER_TEST_SIZES = {"sst2": 12_000, "imdb": 5_000, "ag_news": 6_000, "emotion": 4_000, "dbpedia_14": 12_000,
                    "twitter_financial_news_topic": 4_000, "mrpc": 408, "rte": 277}


def _require(frame: pd.DataFrame, columns: Iterable[str], where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BadInput(f"{where} lacks column(s) {missing}; it has {list(frame.columns)}")


def paper_frame(tables: pd.DataFrame, where: str = "paper tables", majority_f1: dict[str, float] | None = None
                ) -> pd.DataFrame:
    """The transcribed Tables 2-5 (``table,model,dataset,position,level,f1``) as a tidy frame; ``majority_f1``
    (dataset -> the majority-class F1, ``dataset_majority_f1``) marks the values at or below it as failed runs."""
    _require(tables, ["table", "model", "dataset", "position", "level", "f1"], where)
    bad_table = sorted(set(tables["table"].tolist()) - set(PAPER_PROTOCOL))
    bad_position = sorted(set(tables["position"].tolist()) - set(POSITIONS))
    bad_level = sorted(set(tables["level"].tolist()) - set(PAPER_LEVELS))
    bad_dataset = sorted(set(tables["dataset"].tolist()) - set(PAPER_TEST_SIZES))
    for name, bad, valid in (("table", bad_table, list(PAPER_PROTOCOL)), ("position", bad_position, POSITIONS),
                             ("level", bad_level, PAPER_LEVELS), ("dataset", bad_dataset, list(PAPER_TEST_SIZES))):
        if bad:
            raise BadInput(f"{where}: unknown {name} {bad}; valid: {list(valid)}")
    ends = tables[tables["position"].isin(["none", "all"])]
    inconsistent = ends[ends["level"] != ends["position"].map({"none": 0, "all": 100})]
    if not inconsistent.empty:
        raise BadInput(f"{where}: position 'none' needs level 0 and 'all' level 100; rows {list(inconsistent.index)}")
    protocol = tables["table"].map(PAPER_PROTOCOL)
    frame = tables.assign(table="T" + tables["table"].astype(str), pooling=protocol.str[0], mode=protocol.str[1],
                          level=tables["level"].astype(float), seed=0, n_test=tables["dataset"].map(PAPER_TEST_SIZES),
                          f1=tables["f1"].astype(float), identity="", epoch=0,
                          majority_f1=tables["dataset"].map(majority_f1 or {}).astype(float))
    # the failed-run rule read the same way as on our runs: at or below what a guess scores
    frame = frame.assign(failed=frame["f1"] <= frame["majority_f1"].fillna(-math.inf))
    return frame[TIDY + EVIDENCE].reset_index(drop=True)


def guess_f1(shares: Iterable[float]) -> float:
    """Weighted F1 (percent) a run reaches without learning, on a test set with these label shares: the larger of
    always predicting the most frequent label (that label's F1 2p / (1 + p), weighted by its share p; the others
    0) and guessing at the label rates (sum of p^2). A run at or below it is a failed run (Mosbach et al. 2021
    count runs at or below the majority class; a collapsed run that still predicts a few other labels lands
    between the two, as the paper's 33.97 on balanced IMDB and 44.78 on SST-2 do)."""
    shares = np.asarray(list(shares), dtype=float)
    p = float(shares.max())
    return 100.0 * max(p * 2 * p / (1 + p), float(np.sum(shares ** 2)))


def labels_guess_f1(labels: np.ndarray) -> float:
    return guess_f1(np.bincount(labels) / len(labels))


def dataset_majority_f1(data_dir: str | Path) -> dict[str, float]:
    """What a guess scores (``guess_f1``) on each dataset under ``data_dir`` (its labels pooled over the upstream
    splits that carry them), for the paper's tables, which print no run status; {} where the data is not there."""
    found = {}
    for dataset in PAPER_TEST_SIZES | {"mrpc": 0, "rte": 0}:
        files = sorted(Path(data_dir, dataset).glob("*.parquet"))
        labels = pd.concat([pd.read_parquet(f, columns=["label"])["label"] for f in files]) if files else None
        if labels is not None and len(labels):
            found[dataset] = guess_f1(labels.value_counts(normalize=True).tolist())
    return found


RESULT_COLUMNS = ["model", "dataset", "position", "level", "pooling", "mode", "lr", "seed", "n_test", "status",
                  "best_test_f1", "selected_test_f1", "selected_val_f1"]
EPOCH_OF = {"best": "best_epoch", "selected": "selected_epoch"}  # the epoch each protocol reads


def results_frame(cells: pd.DataFrame, metric: str = "selected", where: str = "results") -> pd.DataFrame:
    """Our cells as a tidy frame, at the one lr per setting that ``aggregate.choose_lr`` picks over its seeds.

    ``selected`` (the default, the verdicts' reading): test F1 at the epoch of best validation F1, lr chosen
    by the seed mean of validation F1: test data chooses nothing. ``best``: the paper's protocol (Section 4,
    "we test every epoch and choose the best"), the best epoch's test F1 and the lr by its seed mean: a
    labelled second reading, optimistic and with a shrunken spread. The seeds of a setting share their lr,
    so seed-paired comparisons stay paired. Rows whose F1 is NaN (diverged runs) are dropped;
    ``frame.attrs["notes"]`` says how many.
    """
    if metric not in METRICS:
        raise BadInput(f"metric must be one of {METRICS}, got {metric!r}")
    _require(cells, RESULT_COLUMNS, where)
    score = SELECTION[metric].score
    chosen = choose_lr(cells, metric)
    usable = chosen[chosen[score].notna()]
    notes = []
    if len(usable) < len(chosen):
        dropped = chosen.loc[chosen.index.difference(usable.index), "status"].value_counts()
        notes.append(f"{where}: dropped {len(chosen) - len(usable)} run(s) with NaN F1 at the chosen lr "
                     f"({', '.join(f'{status} {n}' for status, n in dropped.items())})")
    optional = {"identity": "", EPOCH_OF[metric]: 0, "majority_f1": float("nan")}
    usable = usable.assign(**{k: v for k, v in optional.items() if k not in usable.columns})
    frame = usable.assign(table=usable["pooling"] + "-" + usable["mode"], f1=usable[score].astype(float),
                          level=usable["level"].astype(float), identity=usable["identity"].astype(object).where(usable["identity"].notna(), "").astype(str),
                          epoch=usable[EPOCH_OF[metric]], majority_f1=usable["majority_f1"].astype(float),
                          # A failed run (Mosbach et al. 2021): its status says so, or its score as read is at or
                          # below the majority class.
                          failed=(usable["status"] == "failed_run")
                          | (usable[score].astype(float) <= usable["majority_f1"].astype(float).fillna(-math.inf))
                          )[TIDY + EVIDENCE]
    frame = frame.sort_values(GROUP + ["seed", "level"], kind="stable").reset_index(drop=True)
    failed = int(frame["failed"].sum())
    if failed:
        notes.append(f"{where}: {failed} of {len(frame)} run(s) failed (at or below the majority-class F1): left out "
                     "of the F1 comparisons, counted by `failed-runs`")
    frame.attrs["notes"] = notes
    return frame


def load_source(kind: str, path: str | Path | None = None, metric: str = "selected") -> pd.DataFrame:
    """The tidy frame of the paper's tables (``paper``) or of our results (``results``)."""
    if kind not in SOURCES:
        raise BadInput(f"source must be one of {SOURCES}, got {kind!r}")
    path = Path(path) if path is not None else (PAPER_TABLES if kind == "paper" else RESULTS)
    hint = ("run `dvc repro` first (or give --results PATH)" if kind == "results"
            else "restore claims/paper_tables.csv")
    numeric = ("level", "lr", "seed", "n_test", "best_test_f1", "selected_test_f1", "selected_val_f1", "table", "f1",
               "best_epoch", "selected_epoch", "majority_f1")
    table = read_csv(path, f"{kind} file", hint, numeric=numeric)  # missing, empty, not a CSV: one BadResults
    frame = (paper_frame(table, str(path), dataset_majority_f1(DATA)) if kind == "paper"
             else results_frame(table, metric, str(path)))
    frame.attrs.setdefault("notes", [])
    frame.attrs.update(source=kind, path=str(path), metric=metric)
    return frame




def load_predictions(frame: pd.DataFrame, cells_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """identity -> (the test set's true labels, the run's predicted labels at the epoch its protocol read),
    for every row of ``frame`` whose record in ``cells_dir`` holds predictions (records of METHOD_VERSION
    3 and later; a results CSV from elsewhere has none, and its test-set term is then approximated)."""
    found = {}
    for identity, epoch in zip(frame["identity"], frame["epoch"]):
        if not identity or not isinstance(epoch, (int, float)) or not math.isfinite(float(epoch)) or epoch < 1:
            continue
        record = read_record(record_file(cells_dir, str(identity)))
        epochs = record.get("epochs", []) if record else []
        if not record or "labels" not in record or len(epochs) < int(epoch) \
                or "test_predictions" not in epochs[int(epoch) - 1]:  # test scored at the selected epoch only
            continue
        found[str(identity)] = (decode_labels(record["labels"]["test"]),
                                decode_labels(epochs[int(epoch) - 1]["test_predictions"]))
    return found


def mark_failed(frame: pd.DataFrame, predictions: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
                ) -> pd.DataFrame:
    """``frame`` with its failed runs marked (``failed``): those already marked, those at or below their
    ``majority_f1``, and, where a run's predictions are given, those at or below what a guess scores on its own
    test labels (``guess_f1``; the records' ``failed_run`` status knows only the majority class)."""
    failed = frame["failed"].astype(bool) if "failed" in frame.columns else pd.Series(False, index=frame.index)
    if "majority_f1" in frame.columns:
        failed |= frame["f1"] <= frame["majority_f1"].astype(float).fillna(-math.inf)
    if predictions and "identity" in frame.columns:
        guesses = {identity: labels_guess_f1(labels) for identity, (labels, _) in predictions.items()}
        failed |= frame["identity"].map(guesses).astype(float).fillna(-math.inf) >= frame["f1"]
    marked = frame.assign(failed=failed)
    marked.attrs = dict(frame.attrs)
    return marked


def kept_cells(folder: str | Path) -> tuple[pd.DataFrame, int]:
    """cells.csv's rows of the records in ``folder`` made by this METHOD_VERSION, and how many records of other
    versions were passed over (a method change makes them another method's numbers)."""
    rows, other = [], 0
    for path in sorted(Path(folder).glob("*.json")):
        record = read_record(path)
        if record is None or "config" not in record or "epochs" not in record:
            continue
        if str(record.get("method_version")) != METHOD_VERSION:
            other += 1
            continue
        try:
            rows.append({**cell_row(record), "revision": record.get("versions", {}).get("revision")})
        except (KeyError, TypeError):  # a record of another layout: as missing as a torn one
            other += 1
    return pd.DataFrame(rows, columns=CELL_COLUMNS + ["revision"]), other


def evidence_note(frame: pd.DataFrame, predictions: dict) -> str | None:
    """What the test-set term of these verdicts rests on, in one line (None for the paper's tables)."""
    if frame.attrs.get("source") == "paper":
        return None
    rows = sum(bool(i) for i in frame["identity"]) if "identity" in frame.columns else 0
    if predictions and len(predictions) == len(frame):
        return f"test-set noise: paired bootstrap over the per-example predictions of all {len(frame)} runs"
    return (f"test-set noise approximated from n_test and the score (p(1-p)/n, cautious): per-example predictions "
            f"found for {len(predictions)} of {len(frame)} runs ({rows} with a record identity)")


def long_analysis(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """An analysis frame in ``load_analysis``'s long form; a short one (``setting, seed, separation``: the final
    layer's separation after fine-tuning, as the calibration simulates it) is read as that one measure."""
    if frame is None or "measure" in frame.columns or "separation" not in frame.columns:
        return frame
    long = frame[["setting", "seed"]].assign(moment="after", measure="separation", value=frame["separation"])
    long.attrs = dict(frame.attrs)
    return long


def load_analysis(path: str | Path | None = None) -> pd.DataFrame | None:
    """The representation analysis' final layer, in the pooling the head reads: ``setting, seed, moment, measure,
    value`` for every measure (claim 5 reads the separation after fine-tuning; a declared finding may read any;
    attrs: model, dataset, layer, pooling). None where there is no analysis (the profile has none, or it has not
    run)."""
    path = Path(path) if path is not None else ANALYSIS
    if not path.exists():
        return None
    hint = "run `dvc repro` (or `python -m harness analyse`) again"
    table = read_csv(path, "representation analysis", hint, ["setting", "seed", "layer", "pooling", "moment", "measure",
                                                               "value"], numeric=["seed", "layer", "value"])
    try:
        spec = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))["spec"]
    except (OSError, ValueError, KeyError) as error:
        raise BadInput(f"{path.with_suffix('.json')} (the analysis' spec) is missing or malformed: {error}; {hint}") from None
    layer = int(table["layer"].max())
    per_item = table["item"].notna() if "item" in table.columns else False  # per-label-pair rows: not one number
    chosen = table[(table["layer"] == layer) & (table["pooling"] == spec["pooling"]) & table["value"].notna()
                   & ~per_item]
    frame = chosen[["setting", "seed", "moment", "measure"]].assign(value=chosen["value"].astype(float))
    frame = frame.drop_duplicates(["setting", "seed", "moment", "measure"]).reset_index(drop=True)
    frame.attrs.update(model=spec["model"], dataset=spec["dataset"], layer=layer, pooling=spec["pooling"], path=str(path))
    return frame
