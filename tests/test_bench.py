"""harness.perf.bench (and bench_settings, performance_doc, cost): the side-by-side benchmark's helpers, a tiny end-to-end run, bf16 on CPU, and estimate."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.cli import main as cli_main
from harness.errors import BadInput
from harness.grid import cost as hc
from harness.method.config import CellConfig
from harness.method.data import dataset_spec
from harness.method.models import load_classifier
from harness.method.prepare import encode, make_splits
from harness.method.train import TrainSettings, length_bucketed_batches, train_and_evaluate
from harness.perf import bench as hb
from harness.perf import bench_settings as hs
from harness.perf import performance_doc as hp

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" if (ROOT / "data" / "sst2").is_dir() else Path("/work/shared/datasets")
TINY = hs.BenchSettings(model="tiny-bert", datasets=("sst2",), n_train=48, n_test=24, seeds=(0,), batch_size=16,
                        lr=1e-3, max_length=32)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny models run fastest on one thread, and a second OpenMP thread on 2 busy shared cores
    # can make each step ~100x slower (spinning at barriers): keep this module quick and steady.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    return hb.run_bench(TINY, data_dir=DATA, out=out, device=torch.device("cpu")), out


def run(runner: str, seed: int, *, dataset: str = "sst2", steps: int = 3, real: int = 600, padded: int = 800,
        train_s: float = 2.0) -> hs.RunResult:
    return hs.RunResult(runner=runner, dataset=dataset, seed=seed, steps=steps, examples=48, real_tokens=real,
                        padded_tokens=padded, train_s=train_s, eval_s=1.0, eval_real_tokens=300, wall_s=4.0,
                        train_loss=0.7, final_val_f1=50.0, final_test_f1=60.0, peak_rss_mb=500.0, rss_delta_mb=10.0)


# ---------------------------------------------------------------- counting tokens and padding


def test_padding_share_is_the_padded_fraction_of_batch_tokens():
    assert hs.padding_share(6, 8) == pytest.approx(0.25)
    assert hs.padding_share(5, 5) == 0.0
    with pytest.raises(ValueError, match="padded tokens"):
        hs.padding_share(10, 8)


def test_batch_token_counts_pad_each_batch_to_its_longest():
    lengths = np.array([2, 4, 3, 3, 7])
    real, padded = hs.batch_token_counts(lengths, [np.array([0, 1]), np.array([2, 3]), np.array([4])])
    assert (real, padded) == (19, 2 * 4 + 2 * 3 + 7)


def test_replayed_batches_are_the_loops_batches():
    lengths = np.random.default_rng(1).integers(3, 60, size=200)
    real, padded = hs.our_batch_token_counts(lengths, 16, seed=5, epochs=2)
    rng = np.random.default_rng(5)
    expected = [hs.batch_token_counts(lengths, length_bucketed_batches(lengths, 16, rng)) for _ in range(2)]
    assert (real, padded) == (sum(e[0] for e in expected), sum(e[1] for e in expected))
    assert real == 2 * lengths.sum()
    # length bucketing pads far less than batches cut from a plain shuffle
    shuffled = np.random.default_rng(5).permutation(200)
    _, random_padded = hs.batch_token_counts(lengths, [shuffled[i:i + 16] for i in range(0, 200, 16)])
    assert padded / 2 < random_padded


def test_check_equal_work_refuses_pairs_that_did_different_work():
    hb.check_equal_work([run("trainer", 0), run("ours", 0)])
    with pytest.raises(RuntimeError, match="optimiser steps"):
        hb.check_equal_work([run("trainer", 0, steps=4), run("ours", 0)])
    with pytest.raises(RuntimeError, match="real tokens"):
        hb.check_equal_work([run("trainer", 0, real=601, padded=900), run("ours", 0)])


def test_rss_peak_sees_an_allocation_inside_the_block():
    # A fresh process: after many tests (torch thread pools, freed arenas) the kernel's high-water
    # reset is not a clean baseline, which is also why `bench` measures each run from a reset.
    script = (
        "import json, numpy as np\n"
        "from harness.method.memory import rss_peak\n"
        "with rss_peak() as memory:\n"
        "    block = np.ones(40 * 2**20 // 8)  # 40 MiB, touched\n"
        "    block.sum()\n"
        "del block\n"
        "print(json.dumps(memory))\n"
    )
    memory = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                       check=True).stdout.strip().splitlines()[-1])
    assert memory["peak_mb"] > 0
    if memory["per_run"]:  # Linux: the high-water mark was reset at the start of the block
        assert memory["delta_mb"] >= 35


def test_counted_optimiser_steps_counts_only_inside_the_block():
    parameter = torch.nn.Parameter(torch.zeros(3))
    optimiser = torch.optim.SGD([parameter], lr=0.1)
    parameter.grad = torch.ones(3)
    with hb.counted_optimiser_steps() as steps:
        optimiser.step()
        optimiser.step()
    optimiser.step()
    assert steps[0] == 2


# ---------------------------------------------------------------- tables and the final line


def test_summary_speedup_is_the_ratio_of_mean_train_times():
    runs = [run("trainer", 0, train_s=3.0), run("ours", 0, train_s=1.0),
            run("trainer", 1, train_s=5.0), run("ours", 1, train_s=3.0)]
    summary = hb.summarise(runs)
    assert summary["speedup_vs_trainer"] == pytest.approx(4.0 / 2.0)
    assert summary["per_dataset"]["sst2"]["speedup"] == pytest.approx(2.0)
    assert summary["real_tokens_per_s"] == pytest.approx(1200 / 4.0)
    assert summary["per_dataset"]["sst2"]["ours"]["padding_share_mean"] == pytest.approx(0.25)
    results = {"runs": [r.as_record() for r in runs], "summary": summary}
    assert hp.final_line(results) == "speedup_vs_trainer=2.00 real_tokens_per_s=300"
    table = hp.format_tables(results)
    for header in ("samples/s", "real tok/s", "padding %", "peak RSS MiB", "ΔRSS MiB", "test F1", "2.00x"):
        assert header in table
    assert "4.0 ± 1.4" in table  # Trainer's mean train time ± std over the two seeds


def test_tiny_bench_end_to_end(tiny_results, tmp_path):
    results, out = tiny_results
    assert "NaN" not in out.read_text()  # strict JSON: one seed's std is null, not NaN
    assert json.loads(out.read_text())["summary"] == results["summary"]
    runs = results["runs"]
    assert [(r["runner"], r["seed"]) for r in runs] == [("trainer", 0), ("ours", 0)]
    trainer, ours = runs
    assert trainer["steps"] == ours["steps"] == math.ceil(48 / 16)
    assert trainer["real_tokens"] == ours["real_tokens"] > 0  # the same examples, token for token
    assert ours["padding_share"] < trainer["padding_share"]  # bucketing: hard to lose on 48 examples
    for r in runs:
        assert 0 <= r["final_test_f1"] <= 100 and math.isfinite(r["train_loss"])
        assert r["train_s"] > 0 and r["eval_s"] > 0 and r["peak_rss_mb"] > 0
    assert results["machine"]["cores"] >= 1 and results["versions"]["torch"]
    assert results["command"].startswith("python -m harness bench --model tiny-bert --datasets sst2 --n-train 48")
    assert re.fullmatch(hp.FINAL_LINE, hp.final_line(results))

    doc = hp.generate_performance_md(out, tmp_path / "PERFORMANCE.md").read_text()
    assert results["command"] in doc and hp.final_line(results) in doc
    assert "| dataset" in doc and "trainer" in doc and "ours" in doc


def test_bench_cli_renders_the_doc_from_an_existing_json(tiny_results, tmp_path, capsys):
    _, out = tiny_results
    assert cli_main(["bench", "--out", str(out), "--doc", str(tmp_path / "P.md"), "--doc-only"]) == 0
    assert (tmp_path / "P.md").read_text().startswith("# Performance")
    assert cli_main(["bench", "--out", str(out), "--doc", str(tmp_path / "Q.md"), "--doc-only",
                     "--doc-others", str(out)]) == 0
    assert "## Other settings, same benchmark" in (tmp_path / "Q.md").read_text()
    assert cli_main(["bench", "--out", str(out), "--doc-only"]) == 2
    assert "--doc-only needs --doc" in capsys.readouterr().err


def test_bench_settings_refuse_bad_input():
    with pytest.raises(BadInput, match="unknown dataset 'sst3'"):
        hs.BenchSettings(datasets=("sst3",))
    with pytest.raises(BadInput, match="at least one dataset and one seed"):
        hs.BenchSettings(seeds=())
    with pytest.raises(BadInput, match="precision"):
        hs.BenchSettings(precision="fp16")
    with pytest.raises(BadInput, match="precision"):
        hs.BenchSettings(trainer_precision="fp16")


def test_bench_settings_precision_per_runner_and_in_the_command():
    same = hs.BenchSettings(precision="bf16")
    assert same.trainer_precision_used == "bf16" and "--trainer-precision" not in same.command("x.json")
    mixed = hs.BenchSettings(precision="bf16", trainer_precision="fp32")
    assert mixed.trainer_precision_used == "fp32"
    assert "--precision bf16 --trainer-precision fp32" in mixed.command("x.json")


# ---------------------------------------------------------------- the GPU path, on the CPU


def test_bf16_autocast_training_runs_on_cpu_with_finite_loss():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        splits = make_splits("sst2", DATA, n_train=32, n_test=16, n_val=8)
    model, tokenizer = load_classifier("tiny-bert", 2)
    spec = dataset_spec("sst2")
    train, val, test = (encode(getattr(splits, s), spec, tokenizer, 32) for s in ("train", "validation", "test"))
    dtypes = set()
    query = model.bert.encoder.layer[0].attention.self.query
    hook = query.register_forward_hook(lambda module, args, output: dtypes.add(output.dtype) if module.training else None)
    outcome = train_and_evaluate(model, train, val, test, TrainSettings(lr=1e-3, epochs=2, batch_size=8, precision="bf16"),
                                 pad_id=tokenizer.pad_token_id, device=torch.device("cpu"), progress=False)
    hook.remove()
    assert dtypes == {torch.bfloat16}  # autocast really ran the matmuls in bf16
    assert not outcome.diverged and len(outcome.epochs) == 2
    assert all(math.isfinite(e.train_loss) for e in outcome.epochs)
    assert all(0 <= e.test["f1_weighted"] <= 100 for e in outcome.epochs)


# ---------------------------------------------------------------- estimate


def test_non_embedding_parameters_match_the_published_sizes():
    # BERT-base: 110M parameters of which 23.8M are embeddings; the 2-way head adds 1.5k.
    assert hc.non_embedding_parameters("bert-base-uncased") == pytest.approx(85.6e6, rel=0.01)
    assert hc.non_embedding_parameters("bert-large-uncased") == pytest.approx(303e6, rel=0.01)
    assert hc.non_embedding_parameters("minilm-l6") == pytest.approx(10.8e6, rel=0.03)


def test_cell_cost_full_and_probe():
    tokens = {"train": 1000.0, "validation": 100.0, "test": 200.0}
    full = hc.cell_cost(CellConfig(model="tiny-bert", dataset="sst2", epochs=3), tokens, n_params=10)
    assert (full.train_tokens, full.body_tokens, full.eval_tokens) == (3000.0, 0.0, 900.0)
    assert full.flops == 6 * 10 * 3000 + 2 * 10 * 900
    probe = hc.cell_cost(CellConfig(model="tiny-bert", dataset="sst2", epochs=3, mode="probe"), tokens, n_params=10)
    assert (probe.train_tokens, probe.body_tokens) == (0.0, 1000.0)  # the frozen body runs once
    assert probe.eval_tokens == 300.0  # ... and its validation and test vectors are cached: scored once
    dropout = hc.cell_cost(CellConfig(model="tiny-bert", dataset="sst2", epochs=3, mode="probe", probe_dropout=True),
                           tokens, n_params=10)
    assert (dropout.train_tokens, dropout.body_tokens, dropout.eval_tokens) == (0.0, 3000.0, 300.0)  # dropout on
    seconds = hc.predicted_seconds(full, 10, train_flops_per_s=600.0, eval_flops_per_s=200.0)
    assert seconds == pytest.approx(6 * 10 * 3000 / 600 + 2 * 10 * 900 / 200)
    assert hc.predicted_seconds(full, 10, 1200.0, 400.0) == pytest.approx(seconds / 2)


def test_estimate_profile_scales_with_model_size_and_rate():
    cells = [CellConfig(model=m, dataset="sst2", n_train=200, n_test=100, epochs=2, seed=s)
             for m in ("bert-base-uncased", "minilm-l6") for s in (0, 1)]
    rates = hc.Rates(model="minilm-l6", train_tokens_per_s=1000.0, eval_tokens_per_s=3000.0, source="test")
    table = hc.estimate_profile(cells, rates, data_dir=DATA, gpu_tokens_per_s=10000.0).set_index("model")
    assert list(table.index) == ["bert-base-uncased", "minilm-l6", "total"]
    assert table.loc["total", "cells"] == 4
    assert table.loc["total", "hours_here"] == pytest.approx(table.hours_here.iloc[:2].sum())
    # the same tokens, so time scales with non-embedding parameters; a 10x faster machine is 10x faster
    assert table.loc["bert-base-uncased", "train_tokens"] == table.loc["minilm-l6", "train_tokens"]
    ratio = hc.non_embedding_parameters("bert-base-uncased") / hc.non_embedding_parameters("minilm-l6")
    assert table.loc["bert-base-uncased", "hours_here"] / table.loc["minilm-l6", "hours_here"] == pytest.approx(ratio)
    assert table.loc["total", "hours_gpu"] == pytest.approx(table.loc["total", "hours_here"] / 10)
    # SST-2 sentences: about 10-20 tokens each (special tokens included), 200 train rows x 2 epochs per cell
    assert 2 * 2 * 200 * 10 < table.loc["minilm-l6", "train_tokens"] < 2 * 2 * 200 * 20


def test_estimate_cli_prints_per_model_and_total(tiny_results, tmp_path, capsys, machine):
    _, bench_json = tiny_results
    params = tmp_path / "params.yaml"
    params.write_text("profile: t\nprofiles:\n  t:\n    defaults: {epochs: 1, n_train: 64, n_test: 32, lrs: [1.0e-3], "
                      "seeds: [0]}\n    blocks:\n      - models: {tiny-bert: [0, 1]}\n        datasets: [sst2]\n")
    assert cli_main(["estimate", "--params", str(params), "--bench", str(bench_json), "--data-dir", str(DATA),
                     "--tokens-per-s", "1e6"]) == 0
    out = capsys.readouterr().out
    assert f"precision of the cells: {machine.precision}" in out  # the profile's auto, on this (fake) machine
    assert "profile t: 2 cells" in out and "tiny-bert" in out and "total" in out
    assert re.search(r"^predicted_hours_here=\d+\.\d+ predicted_hours_gpu=\d+\.\d+$", out, re.MULTILINE)
    assert cli_main(["estimate", "--params", str(params), "--bench", str(bench_json), "--tokens-per-s", "-1"]) == 2
