"""An epoch of transformers' Trainer against an epoch of our loop, in the same pytest run.

Run only when asked (``pytest tests/`` never collects this folder):

    python -m pytest benchmarks/ --benchmark-enable

Each case times rounds of (Trainer epoch, our epoch) on the same rows from the same weights; the
ratio of their training times lands in ``benchmark.extra_info`` (``--benchmark-json`` keeps it).
Nothing here asserts a time, which depends on the machine and its load: only that both runners
did the same work and scored sensibly. ``python -m harness bench`` is the full-size comparison.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
import torch

from harness.method.data import dataset_spec
from harness.method.models import load_classifier
from harness.perf import bench as hb
from harness.perf import bench_settings as hs

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" if (ROOT / "data" / "sst2").is_dir() else Path("/work/shared/datasets")
ROUNDS = 3
CASES = {  # model -> a small cell (10 steps: too few for F1 to mean much, enough to time an epoch)
    "tiny-bert": hs.BenchSettings(model="tiny-bert", datasets=("sst2",), n_train=256, n_test=128, lr=1e-3),
    "minilm-l6": hs.BenchSettings(model="minilm-l6", datasets=("sst2",), n_train=320, n_test=160, lr=5e-5),
}


@pytest.mark.parametrize("model", list(CASES))
def test_trainer_epoch_vs_our_epoch(benchmark, model):
    settings = CASES[model]
    tokenizer = load_classifier(model, dataset_spec("sst2").num_labels)[1]
    data = hs.load_bench_data("sst2", tokenizer, settings, DATA)
    device = torch.device("cpu")
    runs: dict[str, list[hs.RunResult]] = {runner: [] for runner in hs.RUNNERS}

    def one_round() -> None:  # Trainer, then ours, seeds 0, 1, 2 ...
        seed = len(runs["ours"])
        for runner in hs.RUNNERS:
            runs[runner].append(hb.measured_run(runner, data, settings, seed, device))

    benchmark.group = f"{model} sst2 n={settings.n_train}: one Trainer epoch + one our epoch"
    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1, warmup_rounds=1)

    trainer_s = statistics.mean(r.train_s for r in runs["trainer"])
    ours_s = statistics.mean(r.train_s for r in runs["ours"])
    benchmark.extra_info.update({
        "rounds": len(runs["ours"]),
        "trainer_train_s": trainer_s,
        "ours_train_s": ours_s,
        "speedup_vs_trainer": trainer_s / ours_s,
        "trainer_real_tokens_per_s": statistics.mean(r.real_tokens_per_s for r in runs["trainer"]),
        "ours_real_tokens_per_s": statistics.mean(r.real_tokens_per_s for r in runs["ours"]),
        "trainer_padding_share": statistics.mean(r.padding_share for r in runs["trainer"]),
        "ours_padding_share": statistics.mean(r.padding_share for r in runs["ours"]),
    })

    hb.check_equal_work(runs["trainer"] + runs["ours"])  # same optimiser steps on the same real tokens
    steps = -(-settings.n_train // settings.batch_size)
    for run in runs["trainer"] + runs["ours"]:
        assert run.steps == steps
        assert 0 <= run.final_test_f1 <= 100 and 0 <= run.final_val_f1 <= 100
        assert math.isfinite(run.train_loss) and run.train_s > 0
