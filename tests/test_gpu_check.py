"""harness/perf/gpu_check.py: the CPU side of the GPU check (peaks, FLOP/s, determinism, completeness, the table),
and the check itself where CUDA is present."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from harness.cli import main
from harness.method.config import CellConfig
from harness.perf.gpu_check import (
    CHECK_CELLS,
    RUNS,
    Measured,
    achieved_tflops,
    compare_runs,
    fake_record,
    format_table,
    gpu_check,
    measure,
    missing_fields,
    peak_tflops,
    run_records,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
CONFIG = CHECK_CELLS[0][1].with_(precision="fp32")


@pytest.mark.parametrize("name, fp32, bf16", [
    ("NVIDIA H200", 67, 989), ("NVIDIA H200 NVL", 60, 835), ("NVIDIA H100 80GB HBM3", 67, 989),
    ("NVIDIA H100 PCIe", 51, 756), ("NVIDIA A100-SXM4-80GB", 19.5, 312), ("NVIDIA A100 80GB PCIe", 19.5, 312),
    ("NVIDIA A10", 31.2, 125), ("NVIDIA L40S", 91.6, 362), ("NVIDIA L4", 30.3, 121), ("Tesla V100-SXM2-16GB", 15.7, 125),
])
def test_peak_by_gpu_name_most_specific_first(name, fp32, bf16):
    assert (peak_tflops(name, "fp32"), peak_tflops(name, "bf16")) == (fp32, bf16)


def test_unknown_gpu_has_no_peak_and_the_table_says_so():
    assert peak_tflops("NVIDIA GeForce RTX 4090 D", "fp32") is None
    row = Measured("c", "fp32", True, 0.0, (), 1000.0, 10.0, 0.06, None)
    assert row.share_of_peak is None
    table = format_table([row], "NVIDIA GeForce RTX 4090 D", 10**7, 1.0)
    assert table.splitlines()[1].endswith("?") and "unknown: not in GPU_PEAKS" in table


def test_training_flops_are_six_per_parameter_per_token():
    assert achieved_tflops(10**8, 10_000) == pytest.approx(6.0)
    row = measure("c", CONFIG, [fake_record(CONFIG, r, "NVIDIA H100 PCIe") for r in range(RUNS)], "NVIDIA H100 PCIe",
                  10**7)
    assert row.tflops == pytest.approx(6 * 10**7 * 300_000 / 1e12)
    assert row.share_of_peak == pytest.approx(row.tflops / 51)


def test_runs_are_compared_bit_for_bit_without_their_timing():
    first = fake_record(CONFIG, 0, "gpu")
    timing_only = {**first, "epochs": [{**e, "train_seconds": e["train_seconds"] + 5} for e in first["epochs"]]}
    assert compare_runs(first, timing_only) == (True, 0.0)
    nudged = {**first, "epochs": [{**e, "train_loss": e["train_loss"] + 0.25} for e in first["epochs"]]}
    same, difference = compare_runs(first, nudged)
    assert not same and difference == pytest.approx(0.25)
    assert compare_runs(first, {**first, "epochs": first["epochs"][:1]}) == (False, math.inf)
    with_nan = {**first, "epochs": [{**e, "train_loss": math.nan} for e in first["epochs"]]}
    assert compare_runs(with_nan, with_nan) == (True, 0.0) and compare_runs(first, with_nan) == (False, math.inf)


def test_a_record_is_complete_only_with_every_field_status_epochs_scores_and_cuda():
    good = fake_record(CONFIG, 0, "gpu")
    assert missing_fields(good, CONFIG) == ()
    broken = {k: v for k, v in good.items() if k != "peak_cuda_allocated_mb"}
    broken.update(status="diverged", device="cpu (2 threads)", best_test_f1=math.nan, epochs=good["epochs"][:1])
    found = missing_fields(broken, CONFIG)
    assert found[0] == "peak_cuda_allocated_mb" and len(found) == 5
    assert missing_fields(good, CONFIG.with_(precision="bf16")) == ("precision bf16",)


def test_incomplete_records_are_named_under_the_table():
    records = [fake_record(CONFIG, r, "NVIDIA H200") for r in range(RUNS)]
    records[1] = {**records[1], "status": "failed_run"}
    row = measure("sst2 check", CONFIG, records, "NVIDIA H200", 10**7)
    table = format_table([row], "NVIDIA H200", 10**7, 3.0)
    assert "INCOMPLETE" in table.splitlines()[1]
    assert table.splitlines()[-1] == "INCOMPLETE sst2 check fp32: status ok (got 'failed_run')"


def test_real_records_carry_every_field_the_check_asks_for(tmp_path):
    """The same plumbing on the CPU with a tiny model: only the CUDA-only field is absent, and the CPU runs repeat
    (a tiny model may not beat the majority class in one epoch: its status is not what this test is about)."""
    config = CellConfig(model="tiny-bert", dataset="sst2", n_train=32, n_test=16, n_val=8, epochs=1, lr=1e-3,
                        batch_size=16, max_length=32, precision="fp32")
    records = run_records(config, tmp_path, DATA, device="cpu")
    missing = missing_fields(records[0], config)
    assert [m for m in missing if " " not in m] == ["peak_cuda_allocated_mb"]  # field names; checks have spaces
    assert any(m.startswith("a CUDA device") for m in missing)
    assert compare_runs(*records) == (True, 0.0)


def test_dry_run_prints_one_row_per_cell_and_precision(capsys):
    assert main(["gpu-check", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["cell", "precision", "deterministic"]
    assert len([line for line in lines[1:] if "complete" in line]) == 2 * len(CHECK_CELLS)
    assert "dry run: made-up numbers" in lines[-1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the real check runs below")
def test_without_cuda_one_error_line(capsys):
    assert main(["gpu-check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: no CUDA device here") and "--dry-run" in err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_gpu_path_on_a_gpu():
    table, complete = gpu_check(data_dir=DATA)
    print(table)
    assert complete, table
