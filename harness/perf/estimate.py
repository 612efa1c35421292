"""The ``estimate`` verb: this machine's speed, measured (a ``bench`` JSON or a quick calibration run), fed
to the cost model of ``harness.grid.cost`` to predict a profile's wall time here and on GPUs."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pandas as pd

from harness.errors import BadInput
from harness.files import check_writable, write_json_atomic
from harness.grid.cost import Rates, cell_frame, format_estimate, format_gpus, per_model
from harness.grid.expand import expand
from harness.grid.profiles import load_profile
from harness.grid.run import dataset_digests
from harness.method.cell import default_device
from harness.method.models import load_classifier
from harness.method.precision import detect_hardware
from harness.method.record import cell_record
from harness.method.table1 import table1_gaps
from harness.perf.bench import _warm_up, measured_run
from harness.perf.bench_settings import BenchSettings, load_bench_data
from harness.perf.performance_doc import load_bench_json


def rates_from_bench(path: str | Path) -> Rates:
    results = load_bench_json(path)
    summary = results["summary"]
    return Rates(model=results["settings"]["model"], train_tokens_per_s=summary["real_tokens_per_s"],
                 eval_tokens_per_s=summary["eval_real_tokens_per_s"],
                 source=f"{path} ({results['settings']['precision']}, {results['created']})")


def calibrate(data_dir: str | Path = "data", model: str = "minilm-l6", n_train: int = 512) -> Rates:
    """A quick measurement of our loop (one epoch of SST-2, ~10-20 s on 2 cores) when no bench JSON exists."""
    settings = BenchSettings(model=model, datasets=("sst2",), n_train=n_train, n_test=256, seeds=(0,))
    tokenizer = load_classifier(model, 2)[1]
    data = load_bench_data("sst2", tokenizer, settings, data_dir)
    device = default_device()
    _warm_up(settings, data, device)
    run = measured_run("ours", data, settings, 0, device)
    return Rates(model=model, train_tokens_per_s=run.real_tokens_per_s,
                 eval_tokens_per_s=run.eval_real_tokens / run.eval_s,
                 source=f"calibration run ({model}, SST-2, {n_train} examples)")


def print_estimate(profile_name: str | None, *, params: str | Path, bench_json: str | Path, recalibrate: bool,
                   tokens_per_s: float | None, eval_tokens_per_s: float | None, gpus: int | None, gpu_type: str,
                   pack: int, cells_per_task: int, data_dir: str | Path) -> None:
    """The predicted wall time of a profile of ``params`` (None: its ``profile:`` key), per model, here and on
    ``gpus`` GPUs; rates from ``bench_json``, or measured now where it is missing or ``recalibrate``."""
    profile = load_profile(profile_name, params)
    cells = expand(profile)
    for gap in table1_gaps(cells, data_dir):  # the grid refuses such data; an estimate on it would mislead quietly
        warnings.warn(f"this estimate counts the capped splits of data below Table 1, not Table 1's: {gap.describe()}; "
                      "`python -m harness fetch-data` gets the full sets")
    if tokens_per_s is not None and tokens_per_s <= 0:
        raise BadInput(f"--tokens-per-s must be positive, got {tokens_per_s}")
    if gpus is not None and (gpus < 1 or pack < 1 or cells_per_task < 1):
        raise BadInput(f"--gpus, --pack and --cells-per-task must be >= 1, got {gpus}, {pack}, {cells_per_task}")
    if Path(bench_json).is_file() and not recalibrate:
        rates = rates_from_bench(bench_json)
    else:
        print(f"no {bench_json}: measuring this machine with a quick calibration run ...", file=sys.stderr)
        rates = calibrate(data_dir)
    frame = cell_frame(cells, data_dir, rates, tokens_per_s, eval_tokens_per_s)
    table = per_model(frame)
    precisions = sorted({c.precision for c in cells})
    print(f"hardware: {detect_hardware().describe()}; precision of the cells: {', '.join(precisions)}")
    print(f"profile {profile.name}: {len(cells)} cells; rates: {rates.model} trains {rates.train_tokens_per_s:.0f} and "
          f"scores {rates.eval_tokens_per_s:.0f} real tokens/s here ({rates.source})")
    print(format_estimate(table))
    total = table.iloc[-1]
    line = f"predicted_hours_here={total.hours_here:.2f}"
    if "hours_gpu" in table:
        line += f" predicted_hours_gpu={total.hours_gpu:.2f}"
    print(line)
    if gpus:
        print(format_gpus(frame, gpus, gpu_type, pack, cells_per_task))


# ---------------------------------------------------------------- the estimate against what the records measured


def measured_against_estimate(profile_name: str | None, *, params: str | Path, records_dir: str | Path,
                              bench_json: str | Path, data_dir: str | Path) -> dict:
    """Per dataset and mode: the cost model's hours (one process at ``bench_json``'s rates) next to the wall time
    each kept record measured (``wall_s``: one worker, as the grid ran it), for the cells done so far."""
    profile = load_profile(profile_name, params)
    cells = expand(profile)
    if not Path(bench_json).is_file():
        raise BadInput(f"no {bench_json}: the comparison needs the measured rates the estimate used "
                       "(`python -m harness bench`)")
    rates = rates_from_bench(bench_json)
    predicted = cell_frame(cells, data_dir, rates)["hours_here"].to_numpy()
    digests = dataset_digests(cells, data_dir)
    rows, devices = [], set()
    for config, hours in zip(cells, predicted):
        record = cell_record(config, digests[config.dataset], records_dir)
        if record is not None:
            devices.add(f"{record.get('hardware', {}).get('summary', '?')}, {record.get('device', '?')}")
        rows.append({"dataset": config.dataset, "mode": config.mode, "cells": 1, "done": int(record is not None),
                     "estimated_h": hours, "estimated_done_h": hours if record is not None else 0.0,
                     "measured_h": float(record["wall_s"]) / 3600 if record is not None else 0.0})
    frame = pd.DataFrame(rows)
    frame["ratio"] = (frame["measured_h"] / frame["estimated_h"]).where(frame["done"] > 0)
    sums = frame.drop(columns="ratio").groupby(["dataset", "mode"], sort=False).sum()
    table = sums.join(frame.groupby(["dataset", "mode"], sort=False)["ratio"].median()).reset_index()
    total = {"dataset": "total", "mode": "", **frame.drop(columns=["dataset", "mode", "ratio"]).sum(),
             "ratio": frame["ratio"].median()}
    table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    # The sum's ratio carries every slowdown the machine had (other jobs, tests); the median cell's, the model's.
    table.insert(len(table.columns) - 1, "measured / estimated",
                 table["measured_h"] / table["estimated_done_h"].where(table["done"] > 0))
    table = table.rename(columns={"ratio": "median cell's ratio"})
    return {"profile": profile.name, "rates": rates.source, "records": Path(records_dir).as_posix(),
            "measured_on": sorted(devices), "table": table.to_dict("records")}


def write_cost_comparison(profile_name: str | None, *, params: str | Path, records_dir: str | Path,
                          bench_json: str | Path, data_dir: str | Path, out: str | Path) -> str:
    """``measured_against_estimate`` written to ``out`` (JSON); returns its table as text."""
    check_writable(Path(out).parent)
    document = measured_against_estimate(profile_name, params=params, records_dir=records_dir,
                                         bench_json=bench_json, data_dir=data_dir)
    write_json_atomic(out, document)
    return cost_comparison_text(document)


def cost_comparison_text(document: dict) -> str:
    table = pd.DataFrame(document["table"])
    total = table.iloc[-1]
    shown = table.astype({"cells": int, "done": int})
    for column in shown.columns[shown.dtypes == float]:
        shown[column] = shown[column].map(lambda v: "–" if pd.isna(v) else f"{v:.2f}")
    return "\n".join([
        f"Cost of profile `{document['profile']}`: {int(total['done'])} of {int(total['cells'])} cells measured "
        f"({document['records']}, on {'; '.join(document['measured_on']) or 'nothing yet'}). Estimated: "
        f"`python -m harness estimate` (one process at the rates of {document['rates']}); measured: each record's "
        "wall time (one grid worker, loading included), summed. A sum's ratio carries every slowdown the machine "
        "had while the cells ran (other jobs, tests); the median cell's ratio shrugs off a few slowed cells, but "
        "not a machine loaded for as long as a dataset's cells ran.", "",
        shown.to_markdown(index=False, disable_numparse=True,
                          colalign=["left", "left"] + ["right"] * (len(shown.columns) - 2))])
