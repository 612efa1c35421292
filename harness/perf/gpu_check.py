"""``python -m harness gpu-check`` (or ``scripts/gpu-check``): the GPU path checked on a GPU, in under 5 minutes.

Nothing else in the test suite runs on CUDA, so this is what a session with a GPU runs. It trains a
few small MiniLM cells (``CHECK_CELLS``: a short-sequence and a long-sequence one) through the real
``harness.method.cell.run_cell``, twice each, in fp32 and in bf16 autocast, into a temporary folder (never
``results/``), and prints one table:

* deterministic: whether the two identical runs wrote the same per-epoch losses and scores, bit for
  bit (else the largest difference);
* record: whether each record is complete (``missing_fields``: every field a record carries, status
  ok, one entry per epoch, finite scores, a CUDA device and its peak memory);
* train tokens/s and peak memory, of the second run (the first pays CUDA's start-up);
* TFLOP/s reached and its share of the GPU's datasheet peak for that precision (``GPU_PEAKS``), with
  training FLOPs = 6 x non-embedding parameters x real (non-padding) training tokens, the estimate's
  cost model (``harness.grid.cost``): padding and attention scores are work the GPU also does and that
  this leaves out, so the share is a lower bound on the GPU's busy time.

Without CUDA it stops with one error line; ``--dry-run`` prints the same table from made-up records
(``fake_record``) through the same code, so the CPU-side logic is tested anywhere.
"""

from __future__ import annotations

import math
import re
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harness.errors import BadInput
from harness.grid.cost import GPU_TYPES, non_embedding_parameters
from harness.method.cell import run_cell
from harness.method.config import CellConfig
from harness.method.record import RECORD_SCORES

PRECISIONS = ("fp32", "bf16")
RUNS = 2  # identical runs per cell and precision: determinism needs two
# Small enough for the whole check to take ~1-2 minutes on one datacentre GPU (8 runs of a few seconds of
# training each, plus loading), long enough that training, not start-up, dominates each run's tokens/s.
CHECK_CELLS: tuple[tuple[str, CellConfig], ...] = (
    ("sst2 clean cls, 4k x 2 ep, b32, len 128",
     CellConfig(model="minilm-l6", dataset="sst2", pooling="cls", lr=1e-4, epochs=2, n_train=4000, n_val=500,
                n_test=1000, batch_size=32, max_length=128)),
    ("imdb bottom 2/6 mean, 2k x 1 ep, b8, len 512",
     CellConfig(model="minilm-l6", dataset="imdb", position="bottom", fraction=1 / 3, pooling="mean", pooler=False,
                lr=1e-4, epochs=1, n_train=2000, n_val=200, n_test=500, batch_size=8, max_length=512)),
)
# Device name (lower case, first match) -> the row of harness.grid.cost.GPU_TYPES (datasheet dense TFLOP/s).
# The more specific names come first: "h100 pcie" before "h100", "a100" before "a10", "l40s" before "l4".
GPU_PEAKS = (("h200 nvl", "h200-nvl"), ("h200", "h200"), ("h100 pcie", "h100-pcie"), ("h100", "h100"),
             ("a100", "a100"), ("l40s", "l40s"), ("l4", "l4"), ("a10", "a10"), ("v100", "v100"), ("t4", "t4"))
# What a record must hold besides RECORD_SCORES (harness.method.cell._compute writes them all).
RECORD_FIELDS = ("config", "config_hash", "identity", "method_version", "data_digest", "status", "divergence",
                 "epochs", "corruption", "data", "versions", "hardware", "device", "peak_cuda_allocated_mb")
TIMING = ("train_seconds",)  # per-epoch fields that may differ between identical runs


@dataclass(frozen=True)
class Measured:
    """One cell at one precision: its two runs compared, and the second run's speed and memory."""

    cell: str
    precision: str
    identical: bool
    max_difference: float  # largest |run 1 - run 2| over the per-epoch numbers (0 when identical)
    missing: tuple[str, ...]  # what the records lack (both runs'), empty when complete
    tokens_per_s: float
    peak_mib: float
    tflops: float
    peak_tflops: float | None  # the datasheet's, None for a GPU not in GPU_PEAKS

    @property
    def share_of_peak(self) -> float | None:
        return None if self.peak_tflops is None else self.tflops / self.peak_tflops


def peak_tflops(device_name: str, precision: str) -> float | None:
    """The datasheet's dense peak TFLOP/s of the GPU named ``device_name`` for ``precision`` (None: unknown GPU)."""
    name = re.sub(r"[-_]", " ", device_name.lower())
    for pattern, key in GPU_PEAKS:
        if pattern in name:
            peak = GPU_TYPES[key]
            return peak.bf16 if precision == "bf16" else peak.fp32
    return None


def achieved_tflops(non_embedding_params: int, tokens_per_s: float) -> float:
    """Training TFLOP/s: 6 FLOPs per parameter per real token (forward 2, backward 4; Kaplan et al., 2020)."""
    return 6 * non_embedding_params * tokens_per_s / 1e12


def epoch_numbers(record: dict, keys: Sequence[str]) -> np.ndarray:
    """A record's per-epoch numbers under ``keys`` (epochs x keys; NaN where one is absent)."""
    return np.array([[float(row.get(key, math.nan)) for key in keys] for row in record.get("epochs") or []],
                    dtype=np.float64).reshape(-1, len(keys))


def compare_runs(first: dict, second: dict) -> tuple[bool, float]:
    """(bit-identical, largest absolute difference) of two runs' per-epoch numbers, timing left out; the
    difference is inf where the runs do not even agree on the number of epochs or on which values are NaN."""
    keys = sorted({key for record in (first, second) for row in record.get("epochs") or [] for key in row} - set(TIMING))
    a, b = epoch_numbers(first, keys), epoch_numbers(second, keys)
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return False, math.inf
    if np.array_equal(a, b, equal_nan=True):
        return True, 0.0
    finite = np.isfinite(a) & np.isfinite(b)
    return False, float(np.abs(a - b)[finite].max()) if finite.any() else math.inf


def missing_fields(record: dict, config: CellConfig) -> tuple[str, ...]:
    """What keeps a record from being complete: absent fields and the checks that failed (empty: complete)."""
    missing = [key for key in (*RECORD_FIELDS, *RECORD_SCORES) if key not in record]
    if record.get("status") != "ok":
        missing.append(f"status ok (got {record.get('status')!r})")
    if len(record.get("epochs") or []) != config.epochs:
        missing.append(f"{config.epochs} epochs (got {len(record.get('epochs') or [])})")
    scores = [record.get(key) for key in ("best_test_f1", "selected_test_f1", "tokens_per_s")]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in scores):
        missing.append("finite scores and tokens/s")
    if not str(record.get("device", "")).startswith("cuda"):
        missing.append(f"a CUDA device (got {record.get('device')!r})")
    if (record.get("config") or {}).get("precision") != config.precision:
        missing.append(f"precision {config.precision}")
    return tuple(missing)


def measure(cell: str, config: CellConfig, records: Sequence[dict], device_name: str, params: int) -> Measured:
    """One table row from a cell's identical runs (``records``, in run order)."""
    identical, difference = compare_runs(records[0], records[1])
    missing = tuple(dict.fromkeys(m for record in records for m in missing_fields(record, config)))
    last = records[-1]
    tokens_per_s = float(last.get("tokens_per_s", math.nan))
    return Measured(cell=cell, precision=config.precision, identical=identical, max_difference=difference,
                    missing=missing, tokens_per_s=tokens_per_s, peak_mib=float(last.get("peak_cuda_allocated_mb", math.nan)),
                    tflops=achieved_tflops(params, tokens_per_s), peak_tflops=peak_tflops(device_name, config.precision))


def format_table(rows: Sequence[Measured], device_name: str, params: int, seconds: float) -> str:
    """The check's one table, with the line that says what its columns mean."""
    width = max([len("cell"), *(len(row.cell) for row in rows)])
    lines = [f"{'cell':<{width}} {'precision':<9} {'deterministic':<24} {'record':<10} {'train tok/s':>11} "
             f"{'peak MiB':>9} {'TFLOP/s':>8} {'of peak':>8}"]
    for row in rows:
        same = "yes" if row.identical else f"no (max |diff| {row.max_difference:.3g})"
        share = "?" if row.share_of_peak is None else f"{row.share_of_peak:.1%}"
        lines.append(f"{row.cell:<{width}} {row.precision:<9} {same:<24} {'complete' if not row.missing else 'INCOMPLETE':<10} "
                     f"{row.tokens_per_s:>11,.0f} {row.peak_mib:>9,.0f} {row.tflops:>8.2f} {share:>8}")
    peaks = {p: peak_tflops(device_name, p) for p in PRECISIONS}
    known = " / ".join(f"{v:g} {p}" for p, v in peaks.items() if v is not None) or "unknown: not in GPU_PEAKS"
    lines += ["",
              f"{device_name}: datasheet dense peak {known} TFLOP/s. FLOPs = 6 x {params / 1e6:.1f}M non-embedding "
              f"parameters x real (non-padding) training tokens; speed and memory are run {RUNS}'s of {RUNS}; "
              f"deterministic = every per-epoch loss and score of run 1 equals run 2's, bit for bit. {seconds:.0f} s in all."]
    for row in rows:
        if row.missing:
            lines.append(f"INCOMPLETE {row.cell} {row.precision}: {'; '.join(row.missing)}")
    return "\n".join(lines)


# ---------------------------------------------------------------- running it


def fake_record(config: CellConfig, run: int, device_name: str) -> dict:
    """A made-up but complete record for ``--dry-run``: bf16's second run differs slightly (as atomics may)."""
    rng = np.random.default_rng(zlib.crc32(f"{config.dataset} {config.precision}".encode()))  # the same every run
    epochs = [{"epoch": e + 1, "train_loss": float(rng.uniform(0.2, 0.6)), "val_f1_weighted": float(rng.uniform(80, 90)),
               "test_f1_weighted": float(rng.uniform(80, 90)), "train_tokens": 50_000, "train_seconds": 1.0 + run / 10}
              for e in range(config.epochs)]
    if config.precision == "bf16" and run == 1:
        epochs[-1]["train_loss"] += 1e-4
    speed = (2.0 if config.precision == "bf16" else 1.0) * (300_000 if config.max_length <= 128 else 150_000)
    return {**dict.fromkeys(RECORD_FIELDS, {}), **dict.fromkeys(RECORD_SCORES, 85.0), "status": "ok",
            "config": config.to_dict(), "epochs": epochs, "tokens_per_s": speed, "device": f"cuda:0 ({device_name})",
            "peak_cuda_allocated_mb": 900.0 if config.max_length <= 128 else 2400.0}


def run_records(config: CellConfig, folder: Path, data_dir: str | Path, device: str = "cuda") -> list[dict]:
    """``RUNS`` identical runs of one cell through ``run_cell``, each into its own record file."""
    records = []
    for run in range(RUNS):
        path = folder / f"{config.dataset}-{config.precision}-{run}.json"
        records.append(run_cell(config, record_path=path, data_dir=data_dir, cache_dir=folder / "tokens",
                                progress=False, device=torch.device(device)))
    return records


def gpu_check(*, data_dir: str | Path = "data", dry_run: bool = False) -> tuple[str, bool]:
    """(the table, whether every record is complete); raises BadInput without CUDA unless ``dry_run``."""
    if not dry_run and not torch.cuda.is_available():
        raise BadInput("no CUDA device here: the GPU check trains on one (run it where `nvidia-smi` shows a GPU); "
                       "`--dry-run` prints its table from made-up records")
    device_name = "NVIDIA H200 (dry run: made-up numbers)" if dry_run else torch.cuda.get_device_name(0)
    params = non_embedding_parameters("minilm-l6")
    started, rows = time.perf_counter(), []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        for cell, base in CHECK_CELLS:
            for precision in PRECISIONS:
                config = base.with_(precision=precision)
                records = ([fake_record(config, run, device_name) for run in range(RUNS)] if dry_run
                           else run_records(config, Path(folder), data_dir))
                rows.append(measure(cell, config, records, device_name, params))
    table = format_table(rows, device_name, params, time.perf_counter() - started)
    return table, all(not row.missing for row in rows)


def run_gpu_check_cli(data_dir: str | Path, dry_run: bool) -> int:
    table, complete = gpu_check(data_dir=data_dir, dry_run=dry_run)
    print(table)
    if not complete:
        print("error: some records of the GPU path are incomplete (INCOMPLETE lines above)", file=sys.stderr)
        return 1
    return 0
