"""Speed, measured side by side with transformers' ``Trainer``, and wall time predicted from it.

``python -m harness bench`` trains the same cell twice per seed, in one process, alternating:

(a) what a user of the paper's stack would write: ``Trainer`` + ``DataCollatorWithPadding`` on a
    ``datasets.Dataset`` tokenised with ``.map`` (tokenisation not timed), weighted F1 from
    ``compute_metrics``, evaluation of validation and test every epoch;
(b) our cell's loop, ``harness.method.train.train_and_evaluate``, on exactly the same train/validation/test
    rows (``harness.method.prepare.make_splits`` + ``encode``), starting from the same weights
    (``load_classifier(model, n, seed=seed)``), with the same batch size, learning rate, epochs,
    maximum length and seed.

Train time is the time inside the training epochs only (Trainer: ``on_epoch_begin`` to
``on_epoch_end``, which fire before its per-epoch evaluation; ours: ``EpochScores.train_seconds``).
Both runs take the same number of optimiser steps and train on the same real (non-padding)
tokens; both are checked, so the speedup compares equal work:

    speedup = mean Trainer train time / mean our train time.

Real tokens/s = non-padding tokens trained / train time. The padding share is padded tokens
over all tokens of the training batches (Trainer: counted in its collator; ours: its length-
bucketed batches replayed from the seed). Peak memory is the resident-set high-water mark of the
process during one run (Linux: ``VmHWM``, reset before each run through ``/proc/self/clear_refs``;
elsewhere the process-wide ``ru_maxrss``, which never goes down), and its rise over the RSS the run
started from.

Where the rest lives: ``harness.perf.bench_settings`` (the settings, the rows both runners see, one run's
result), ``harness.perf.trainer_baseline`` (side (a)), ``harness.method.memory`` (the RSS peak),
``harness.perf.performance_doc`` (the tables and ``docs/PERFORMANCE.md``), and ``harness.grid.cost``
(``python -m harness estimate``: such a measurement turned into a predicted wall time for a profile).
"""

from __future__ import annotations

import os
import platform
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from harness.files import write_json_atomic
from harness.method.cell import default_device
from harness.method.data import dataset_spec
from harness.method.memory import rss_peak
from harness.method.models import load_classifier
from harness.method.precision import detect_hardware
from harness.method.record import versions
from harness.method.train import TrainSettings, train_and_evaluate
from harness.perf.bench_settings import (
    RUNNERS,
    BenchData,
    BenchSettings,
    RunResult,
    load_bench_data,
    our_batch_token_counts,
)
from harness.perf.performance_doc import final_line, format_tables, generate_performance_md
from harness.perf.trainer_baseline import _trainer_classes, run_trainer

# ---------------------------------------------------------------- measuring


@contextmanager
def counted_optimiser_steps() -> Iterator[list[int]]:
    """Count every ``optimizer.step()`` taken inside the block (yields a one-element counter)."""
    counter = [0]

    def hook(optimiser, args, kwargs) -> None:
        counter[0] += 1

    handle = register_optimizer_step_post_hook(hook)
    try:
        yield counter
    finally:
        handle.remove()


# ---------------------------------------------------------------- (b) our cell's loop


def run_ours(model, tokenizer, data: BenchData, settings: BenchSettings, seed: int, device: torch.device) -> RunResult:
    """Fine-tune ``model`` with the cell's ``train_and_evaluate`` on the same rows."""
    train, validation, test = (data.encoded[s] for s in ("train", "validation", "test"))
    train_settings = TrainSettings(lr=settings.lr, epochs=settings.epochs, batch_size=settings.batch_size,
                                   seed=seed, precision=settings.precision)
    started = time.perf_counter()
    with counted_optimiser_steps() as steps:
        outcome = train_and_evaluate(model, train, validation, test, train_settings, pad_id=tokenizer.pad_token_id,
                                     device=device, progress=False)
    wall = time.perf_counter() - started
    if outcome.diverged:
        raise RuntimeError(f"our loop diverged on {data.spec.name} seed {seed}: {outcome.divergence}")
    real, padded = our_batch_token_counts(train.lengths, settings.batch_size, seed, settings.epochs)
    trained = sum(e.train_tokens for e in outcome.epochs)
    if trained != real:
        raise RuntimeError(f"replayed batches hold {real} real tokens but the loop trained on {trained}: "
                           "harness.method.train's batching changed; update our_batch_token_counts")
    train_s = sum(e.train_seconds for e in outcome.epochs)
    final = outcome.epochs[-1]
    return RunResult(
        runner="ours", dataset=data.spec.name, seed=seed, steps=steps[0], examples=len(train) * settings.epochs,
        real_tokens=real, padded_tokens=padded, train_s=train_s, eval_s=wall - train_s,
        eval_real_tokens=(int(validation.lengths.sum()) + int(test.lengths.sum())) * settings.epochs, wall_s=wall,
        train_loss=final.train_loss, final_val_f1=final.val["f1_weighted"], final_test_f1=final.test["f1_weighted"],
    )


RUN = {"trainer": run_trainer, "ours": run_ours}


def measured_run(runner: str, data: BenchData, settings: BenchSettings, seed: int, device: torch.device) -> RunResult:
    """One run from a freshly loaded model (same weights for both runners), with its memory peak."""
    model, tokenizer = load_classifier(settings.model, data.spec.num_labels, seed=seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with rss_peak() as memory:
        result = RUN[runner](model, tokenizer, data, settings, seed, device)
    gpu = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    del model
    return RunResult(**{**asdict(result), "peak_rss_mb": memory["peak_mb"], "rss_delta_mb": memory["delta_mb"],
                        "peak_gpu_mb": gpu})


# ---------------------------------------------------------------- the benchmark


def machine() -> dict:
    """CPU model, cores and threads (and GPU), so a number is never read without its machine."""
    cpu = platform.processor() or platform.machine()
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu = match.group(1).strip() if match else cpu
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    hardware = detect_hardware()
    return {"cpu": cpu, "cores": cores, "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
            "hardware": hardware.describe(), "capability": hardware.capability, "native_bf16": hardware.native_bf16,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            # OpenMP's settings decide how threads behave when other processes share the cores
            "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")
                    if k in os.environ}}


def bench_versions() -> dict:
    found = dict(versions())
    try:
        found["accelerate"] = version("accelerate")
    except PackageNotFoundError:
        found["accelerate"] = "absent"
    return found


def check_equal_work(runs: Sequence[RunResult]) -> None:
    """Both runners took the same optimiser steps on the same real tokens, per dataset and seed."""
    by_key: dict[tuple[str, int], dict[str, RunResult]] = {}
    for run in runs:
        by_key.setdefault((run.dataset, run.seed), {})[run.runner] = run
    for (dataset, seed), pair in by_key.items():
        if set(pair) != set(RUNNERS):
            continue
        trainer, ours = pair["trainer"], pair["ours"]
        if trainer.steps != ours.steps:
            raise RuntimeError(f"{dataset} seed {seed}: Trainer took {trainer.steps} optimiser steps, ours {ours.steps}")
        if trainer.real_tokens != ours.real_tokens:
            raise RuntimeError(f"{dataset} seed {seed}: Trainer trained on {trainer.real_tokens} real tokens, "
                               f"ours on {ours.real_tokens}: the two did not see the same examples")


def _warm_up(settings: BenchSettings, data: BenchData, device: torch.device) -> None:
    """One untimed forward and backward pass, so the first timed run pays no one-off kernel set-up."""
    model, tokenizer = load_classifier(settings.model, data.spec.num_labels)
    model.to(device).train()
    texts = [data.frames["train"][name].head(settings.batch_size).tolist() for name in data.spec.text_fields]
    batch = tokenizer(*texts, truncation=True, max_length=settings.max_length, padding=True, return_tensors="pt")
    model(**batch.to(device)).logits.sum().backward()


def run_bench(settings: BenchSettings, *, data_dir: str | Path = "data", out: str | Path | None = None,
              device: torch.device | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Trainer and ours, alternating, for every dataset and seed; the results (and ``out`` JSON)."""
    device = device or default_device()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    _trainer_classes()  # fail on a missing dependency before any training
    started, load_before = time.perf_counter(), os.getloadavg()
    runs: list[RunResult] = []
    sizes: dict[str, dict] = {}
    for name in settings.datasets:
        tokenizer = load_classifier(settings.model, dataset_spec(name).num_labels)[1]
        data = load_bench_data(name, tokenizer, settings, data_dir)
        sizes[name] = {split: {"rows": len(e), "mean_tokens": float(e.lengths.mean())} for split, e in data.encoded.items()}
        _warm_up(settings, data, device)
        for seed in settings.seeds:
            for runner in RUNNERS:
                run = measured_run(runner, data, settings, seed, device)
                runs.append(run)
                if log:
                    log(f"{name} seed {seed} {runner:<7} {run.steps} steps  train {run.train_s:6.1f} s  "
                        f"{run.real_tokens_per_s:7.0f} real tok/s  test F1 {run.final_test_f1:5.1f}")
    check_equal_work(runs)
    results = {
        "command": settings.command(out or "results/bench.json"),
        "settings": asdict(settings),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine(), "device": str(device), "load_average_before": load_before,
                    "load_average_after": os.getloadavg()},
        "versions": bench_versions(),
        "data": sizes,
        "runs": [run.as_record() for run in runs],
        "summary": summarise(runs),
        "wall_s": time.perf_counter() - started,
    }
    if out is not None:
        write_json_atomic(out, results)
    return results


# ---------------------------------------------------------------- summaries and tables


def summarise(runs: Sequence[RunResult]) -> dict:
    """Means per dataset and runner, speedups, and the headline numbers."""
    frame = pd.DataFrame([run.as_record() for run in runs])
    columns = ["train_s", "samples_per_s", "real_tokens_per_s", "padding_share", "peak_rss_mb", "rss_delta_mb",
               "final_test_f1", "eval_s", "wall_s"]
    per_dataset = {}
    for dataset, group in frame.groupby("dataset", sort=False):
        stats = group.groupby("runner")[columns].agg(["mean", "std"])
        entry = {runner: {f"{col}_{stat}": _number(stats.loc[runner, (col, stat)]) for col in columns
                          for stat in ("mean", "std")} for runner in stats.index}
        if set(RUNNERS) <= set(entry):
            entry["speedup"] = entry["trainer"]["train_s_mean"] / entry["ours"]["train_s_mean"]
        per_dataset[dataset] = entry
    ours, trainer = frame[frame.runner == "ours"], frame[frame.runner == "trainer"]
    both = len(ours) and len(trainer)
    return {
        "per_dataset": per_dataset,
        "speedup_vs_trainer": float(trainer.train_s.mean() / ours.train_s.mean()) if both else None,
        "real_tokens_per_s": float(ours.real_tokens.sum() / ours.train_s.sum()) if len(ours) else None,
        "eval_real_tokens_per_s": float(ours.eval_real_tokens.sum() / ours.eval_s.sum()) if len(ours) else None,
        "trainer_real_tokens_per_s": float(trainer.real_tokens.sum() / trainer.train_s.sum()) if len(trainer) else None,
    }


def _number(value) -> float | None:
    """A float for the JSON, or None where there is none (the std of one seed): JSON has no NaN."""
    return None if pd.isna(value) else float(value)


# ---------------------------------------------------------------- the ``bench`` verb


def bench(settings: BenchSettings, *, data_dir: str | Path, out: str | Path, doc: str | Path | None,
          doc_others: Sequence[str | Path]) -> None:
    """``run_bench`` with its progress on stderr, then its tables printed (and rendered to ``doc`` if given)."""
    results = run_bench(settings, data_dir=data_dir, out=out, log=lambda line: print(line, file=sys.stderr, flush=True))
    if doc:
        generate_performance_md(results, doc, doc_others)
    print(format_tables(results))
    print(f"\n(written to {out}; load average {results['machine']['load_average_before'][0]:.2f} at start: "
          "other work on the machine makes these numbers noisy)")
    print(f"hardware: {results['machine']['hardware']}; precision: ours {settings.precision}, "
          f"Trainer {settings.trainer_precision_used}" + (" (same on both sides)" if settings.trainer_precision_used
                                                           == settings.precision else " (cross-precision pairing)"))
    print(final_line(results))
