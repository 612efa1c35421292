"""Speed, measured side by side with transformers' ``Trainer``, and wall time predicted from it.

``python -m harness bench`` trains the same cell twice per seed, in one process, alternating:

(a) what a user of the paper's stack would write: ``Trainer`` + ``DataCollatorWithPadding`` on a
    ``datasets.Dataset`` tokenised with ``.map`` (tokenisation not timed), weighted F1 from
    ``compute_metrics``, evaluation of validation and test every epoch;
(b) our cell's loop, ``harness.train.train_and_evaluate``, on exactly the same train/validation/test
    rows (``harness.data.make_splits`` + ``encode``), starting from the same weights
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

``python -m harness estimate`` turns such a measurement into a predicted wall time for a profile;
its cost model is explained in ``estimate_profile``. ``generate_performance_md`` renders a bench
JSON as ``docs/PERFORMANCE.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from harness import BadInput
from harness.data import DatasetSpec, Encoded, dataset_spec, encode, make_splits
from harness.models import load_classifier
from harness.precision import resolve_precision
from harness.train import TrainSettings, length_bucketed_batches, train_and_evaluate

RUNNERS = ("trainer", "ours")
FINAL_LINE = re.compile(r"^speedup_vs_trainer=(\d+\.\d+) real_tokens_per_s=(\d+)$")


# ---------------------------------------------------------------- settings and results


@dataclass(frozen=True)
class BenchSettings:
    """One side-by-side benchmark: a cell (model, lr, batch, epochs, length) on datasets x seeds."""

    model: str = "minilm-l6"
    datasets: tuple[str, ...] = ("sst2", "ag_news")
    n_train: int = 500  # small enough that the defaults take a few minutes on 2 idle cores
    n_test: int = 250
    n_val: int | None = None  # None: the cell's default (10% of n_train)
    epochs: int = 1
    seeds: tuple[int, ...] = (0, 1, 2)
    batch_size: int = 32
    lr: float = 5e-5
    max_length: int = 128
    data_seed: int = 0
    precision: str = "fp32"  # ours: "bf16" autocasts the forward pass (harness.train)
    trainer_precision: str | None = None  # Trainer's (its bf16=True); None: the same as ours
    threads: int | None = None  # torch CPU threads; None: torch's choice

    @property
    def trainer_precision_used(self) -> str:
        return self.trainer_precision or self.precision

    def __post_init__(self) -> None:
        if not self.datasets or not self.seeds:
            raise BadInput("bench needs at least one dataset and one seed")
        for name in self.datasets:
            dataset_spec(name)  # BadInput naming the known datasets
        for precision in (self.precision, self.trainer_precision_used):
            if precision not in ("fp32", "bf16"):
                raise BadInput(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        if self.n_train < 1 or self.n_test < 1 or self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise BadInput("n_train, n_test, epochs and batch_size must be >= 1 and lr > 0")
        if self.threads is not None and self.threads < 1:
            raise BadInput(f"threads must be >= 1, got {self.threads}")

    def command(self, out: str | Path) -> str:
        """The ``python -m harness bench`` command line that runs exactly these settings."""
        parts = ["python -m harness bench", f"--model {self.model}", f"--datasets {' '.join(self.datasets)}",
                 f"--n-train {self.n_train}", f"--n-test {self.n_test}"]
        if self.n_val is not None:
            parts.append(f"--n-val {self.n_val}")
        parts += [f"--epochs {self.epochs}", f"--seeds {' '.join(map(str, self.seeds))}",
                  f"--batch-size {self.batch_size}", f"--lr {self.lr:g}", f"--max-length {self.max_length}",
                  f"--data-seed {self.data_seed}", f"--precision {self.precision}"]
        if self.trainer_precision is not None:
            parts.append(f"--trainer-precision {self.trainer_precision}")
        if self.threads is not None:
            parts.append(f"--threads {self.threads}")
        return " ".join(parts + [f"--out {out}"])


@dataclass(frozen=True)
class RunResult:
    """One training run (one runner, dataset and seed) and what it cost."""

    runner: str  # "trainer" or "ours"
    dataset: str
    seed: int
    steps: int  # optimiser steps
    examples: int  # training examples seen (n_train x epochs)
    real_tokens: int  # non-padding tokens trained on
    padded_tokens: int  # all tokens of the training batches, padding included
    train_s: float  # inside the training epochs only
    eval_s: float  # validation + test scoring, every epoch
    eval_real_tokens: int
    wall_s: float  # the whole fit: set-up, training and evaluation
    train_loss: float
    final_val_f1: float
    final_test_f1: float
    peak_rss_mb: float | None = None  # filled by measured_run
    rss_delta_mb: float | None = None  # peak during the run minus RSS at its start
    peak_gpu_mb: float | None = None

    @property
    def samples_per_s(self) -> float:
        return self.examples / self.train_s

    @property
    def real_tokens_per_s(self) -> float:
        return self.real_tokens / self.train_s

    @property
    def padding_share(self) -> float:
        return padding_share(self.real_tokens, self.padded_tokens)

    def as_record(self) -> dict:
        return {**asdict(self), "samples_per_s": self.samples_per_s, "real_tokens_per_s": self.real_tokens_per_s,
                "padding_share": self.padding_share}


def padding_share(real_tokens: int, padded_tokens: int) -> float:
    """Share of the batches' tokens that are padding."""
    if padded_tokens < real_tokens or padded_tokens <= 0:
        raise ValueError(f"padded tokens ({padded_tokens}) must be positive and >= real tokens ({real_tokens})")
    return 1.0 - real_tokens / padded_tokens


def batch_token_counts(lengths: np.ndarray, batches: Sequence[np.ndarray]) -> tuple[int, int]:
    """(real, padded) tokens of batches that each pad to their longest example."""
    real = sum(int(lengths[b].sum()) for b in batches)
    padded = sum(len(b) * int(lengths[b].max()) for b in batches)
    return real, padded


def our_batch_token_counts(lengths: np.ndarray, batch_size: int, seed: int, epochs: int) -> tuple[int, int]:
    """(real, padded) training tokens of our loop, its length-bucketed batches replayed from the seed.

    ``train_and_evaluate`` draws every epoch's batches from one ``default_rng(seed)``; which
    examples share a batch decides the padding, so the replay gives its exact padded count.
    """
    rng = np.random.default_rng(seed)
    counts = [batch_token_counts(lengths, length_bucketed_batches(lengths, batch_size, rng)) for _ in range(epochs)]
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


# ---------------------------------------------------------------- measuring


def _status_kib(field_name: str) -> int | None:
    try:
        match = re.search(rf"^{field_name}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


@contextmanager
def rss_peak() -> Iterator[dict]:
    """Measure a block's resident-set peak (MiB): yields a dict filled with ``peak_mb`` and ``delta_mb``."""
    reset = False
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux >= 4.0: VmHWM := current RSS
        reset = True
    except OSError:
        pass
    start = _status_kib("VmRSS")
    start_mb = start / 1024 if start is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    measured: dict = {}
    yield measured
    hwm = _status_kib("VmHWM") if reset else None
    peak_mb = hwm / 1024 if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    measured.update(peak_mb=peak_mb, delta_mb=max(0.0, peak_mb - start_mb), per_run=reset)


@contextmanager
def counted_optimiser_steps() -> Iterator[list[int]]:
    """Count every ``optimizer.step()`` taken inside the block (yields a one-element counter)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    counter = [0]

    def hook(optimiser, args, kwargs) -> None:
        counter[0] += 1

    handle = register_optimizer_step_post_hook(hook)
    try:
        yield counter
    finally:
        handle.remove()


# ---------------------------------------------------------------- the data both runners see


@dataclass(frozen=True)
class BenchData:
    """One dataset's train/validation/test rows, as frames (for the Trainer) and token arrays (ours)."""

    spec: DatasetSpec
    frames: dict[str, pd.DataFrame]  # "train", "validation", "test"
    encoded: dict[str, Encoded]


def load_bench_data(name: str, tokenizer, settings: BenchSettings, data_dir: str | Path) -> BenchData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a capped split is noted in make_splits; the benchmark does not care
        splits = make_splits(name, data_dir, n_train=settings.n_train, n_test=settings.n_test, n_val=settings.n_val,
                             data_seed=settings.data_seed)
    spec = dataset_spec(name)
    frames = {"train": splits.train, "validation": splits.validation, "test": splits.test}
    encoded = {split: encode(frame, spec, tokenizer, settings.max_length) for split, frame in frames.items()}
    return BenchData(spec=spec, frames=frames, encoded=encoded)


def hf_dataset(frame: pd.DataFrame, spec: DatasetSpec, tokenizer, max_length: int):
    """A ``datasets.Dataset`` tokenised with ``.map``, as the transformers tutorials do."""
    import datasets

    table = datasets.Dataset.from_pandas(frame[[*spec.text_fields, "label"]], preserve_index=False)

    def tokenise(batch: dict) -> dict:
        return tokenizer(*(batch[name] for name in spec.text_fields), truncation=True, max_length=max_length)

    quiet = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # one "Map" bar per split would bury the benchmark's lines
    try:
        return table.map(tokenise, batched=True, remove_columns=list(spec.text_fields))
    finally:
        if not quiet:
            datasets.enable_progress_bars()


# ---------------------------------------------------------------- (a) transformers' Trainer


def _trainer_classes():
    try:
        import accelerate  # noqa: F401  (Trainer needs it; fail here with one clear line)
        from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments
    except ImportError as error:
        raise BadInput(f"the Trainer side of the benchmark needs accelerate>=1.1 "
                       f"(pip install 'accelerate>=1.1'): {error}") from error
    return DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments


class _CountingCollator:
    """A collator that also counts the tokens of the batches it makes while ``counting`` is on."""

    def __init__(self, collate: Callable[[list[dict]], dict]):
        self.collate, self.counting, self.real, self.padded = collate, False, 0, 0

    def __call__(self, features: list[dict]) -> dict:
        batch = self.collate(features)
        if self.counting:
            self.real += int(batch["attention_mask"].sum())
            self.padded += int(batch["attention_mask"].numel())
        return batch


def _weighted_f1(prediction) -> dict[str, float]:
    from sklearn.metrics import f1_score

    predicted = np.argmax(prediction.predictions, axis=-1)
    return {"f1_weighted": 100.0 * f1_score(prediction.label_ids, predicted, average="weighted", zero_division=0)}


def run_trainer(model, tokenizer, data: BenchData, settings: BenchSettings, seed: int,
                device: torch.device) -> RunResult:
    """Fine-tune ``model`` with ``Trainer`` as a user of the paper's stack would; time its epochs."""
    DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments = _trainer_classes()
    from transformers.trainer_callback import PrinterCallback
    train, validation, test = (hf_dataset(data.frames[s], data.spec, tokenizer, settings.max_length)
                               for s in ("train", "validation", "test"))
    collator = _CountingCollator(DataCollatorWithPadding(tokenizer))

    class EpochClock(TrainerCallback):
        """Training time and token counts of the epochs, excluding the evaluation that follows each."""

        seconds, started = 0.0, 0.0

        def on_epoch_begin(self, args, state, control, **kwargs):
            collator.counting, self.started = True, time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            self.seconds += time.perf_counter() - self.started
            collator.counting = False

    clock = EpochClock()
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as output_dir:
        args = TrainingArguments(
            output_dir=output_dir, per_device_train_batch_size=settings.batch_size,
            per_device_eval_batch_size=settings.batch_size, learning_rate=settings.lr,
            num_train_epochs=settings.epochs, eval_strategy="epoch", save_strategy="no", report_to=[], seed=seed,
            use_cpu=device.type == "cpu", bf16=settings.trainer_precision_used == "bf16", disable_tqdm=True,
        )
        trainer = Trainer(model=model, args=args, data_collator=collator, train_dataset=train,
                          eval_dataset={"validation": validation, "test": test}, processing_class=tokenizer,
                          compute_metrics=_weighted_f1, callbacks=[clock])
        trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout (disable_tqdm=True adds it)
        started = time.perf_counter()
        output = trainer.train()
        wall = time.perf_counter() - started
    evals = [entry for entry in trainer.state.log_history if "eval_test_f1_weighted" in entry
             or "eval_validation_f1_weighted" in entry]
    eval_s = sum(entry.get("eval_validation_runtime", 0.0) + entry.get("eval_test_runtime", 0.0) for entry in evals)
    final = {k: v for entry in evals for k, v in entry.items()}  # the last epoch's values win
    eval_tokens = (int(data.encoded["validation"].lengths.sum()) + int(data.encoded["test"].lengths.sum())) * settings.epochs
    return RunResult(
        runner="trainer", dataset=data.spec.name, seed=seed, steps=trainer.state.global_step,
        examples=len(train) * settings.epochs, real_tokens=collator.real, padded_tokens=collator.padded,
        train_s=clock.seconds, eval_s=eval_s, eval_real_tokens=eval_tokens, wall_s=wall,
        train_loss=float(output.training_loss), final_val_f1=final["eval_validation_f1_weighted"],
        final_test_f1=final["eval_test_f1_weighted"],
    )


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
                           "harness.train's batching changed; update our_batch_token_counts")
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
    from harness.precision import detect_hardware

    hardware = detect_hardware()
    return {"cpu": cpu, "cores": cores, "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
            "hardware": hardware.describe(), "capability": hardware.capability, "native_bf16": hardware.native_bf16,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            # OpenMP's settings decide how threads behave when other processes share the cores
            "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")
                    if k in os.environ}}


def bench_versions() -> dict:
    from harness.results import versions

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
    from harness.cell import default_device

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
        from harness.results import write_json_atomic

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


def runs_frame(results: dict) -> pd.DataFrame:
    """One row per run, in readable units."""
    frame = pd.DataFrame(results["runs"])
    return pd.DataFrame({
        "dataset": frame.dataset, "seed": frame.seed, "runner": frame.runner, "steps": frame.steps,
        "train s": frame.train_s.round(1), "samples/s": frame.samples_per_s.round(1),
        "real tok/s": frame.real_tokens_per_s.round(0).astype(int), "padding %": (100 * frame.padding_share).round(1),
        "peak RSS MiB": frame.peak_rss_mb.round(0), "ΔRSS MiB": frame.rss_delta_mb.round(0),
        "eval s": frame.eval_s.round(1), "test F1": frame.final_test_f1.round(2),
    })


def summary_frame(results: dict) -> pd.DataFrame:
    """Per dataset and runner: means (± std over seeds) and the speedup."""
    rows = []
    for dataset, entry in results["summary"]["per_dataset"].items():
        for runner in RUNNERS:
            if runner not in entry:
                continue
            s = entry[runner]
            rows.append({
                "dataset": dataset, "runner": runner,
                "train s": _pm(s["train_s_mean"], s["train_s_std"], 1),
                "samples/s": f"{s['samples_per_s_mean']:.1f}", "real tok/s": f"{s['real_tokens_per_s_mean']:.0f}",
                "padding %": f"{100 * s['padding_share_mean']:.1f}", "peak RSS MiB": f"{s['peak_rss_mb_mean']:.0f}",
                "ΔRSS MiB": f"{s['rss_delta_mb_mean']:.0f}", "eval s": f"{s['eval_s_mean']:.1f}",
                "test F1": _pm(s["final_test_f1_mean"], s["final_test_f1_std"], 2),
                "speedup": f"{entry['speedup']:.2f}x" if runner == "ours" and "speedup" in entry else "",
            })
    return pd.DataFrame(rows)


def _pm(mean: float, std: float | None, digits: int) -> str:
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_tables(results: dict) -> str:
    """The terminal report: every run, then the means."""
    return ("runs\n" + runs_frame(results).to_string(index=False) + "\n\nmeans over seeds\n"
            + summary_frame(results).to_string(index=False))


def final_line(results: dict) -> str:
    """The last line ``bench`` prints, for scripts: ``speedup_vs_trainer=<x> real_tokens_per_s=<y>``."""
    summary = results["summary"]
    return f"speedup_vs_trainer={summary['speedup_vs_trainer']:.2f} real_tokens_per_s={summary['real_tokens_per_s']:.0f}"


def _load(bench_json: str | Path | dict) -> dict:
    return json.loads(Path(bench_json).read_text()) if not isinstance(bench_json, dict) else bench_json


def _trainer_precision(settings: dict) -> str:
    """The Trainer's precision in a bench JSON's settings (absent or null: the same as ours)."""
    return settings.get("trainer_precision") or settings["precision"]


def _other_run_section(results: dict) -> list[str]:
    """A further bench run (e.g. another precision) as a short section: its command, headline, means."""
    settings, summary = results["settings"], results["summary"]
    load = ", ".join(f"{x:.2f}" for x in results["machine"]["load_average_before"])
    return [
        f"### Ours {settings['precision']} against Trainer {_trainer_precision(settings)}",
        "",
        "```bash",
        results["command"],
        "```",
        "",
        f"`{final_line(results)}`; Trainer {summary['trainer_real_tokens_per_s']:.0f} real tokens/s; "
        f"load average at start {load}; created {results['created']}.",
        "",
        # Runs from before the precision rule recorded no CPU capability: say so rather than guess.
        f"Machine: {results['machine']['cpu']}, "
        f"{results['machine'].get('hardware') or 'CPU capability not recorded (a run from before precision: auto)'}.",
        "",
        summary_frame(results).to_markdown(index=False),
        "",
    ]


def generate_performance_md(bench_json: str | Path | dict, out: str | Path = "docs/PERFORMANCE.md",
                            others: Sequence[str | Path | dict] = ()) -> Path:
    """Render a bench JSON as ``docs/PERFORMANCE.md``: the command, the machine, and the tables.

    ``others``: further bench JSONs (other precisions or sizes), each rendered as a short section.
    """
    results = _load(bench_json)
    settings, m, v, summary = results["settings"], results["machine"], results["versions"], results["summary"]
    load = ", ".join(f"{x:.2f}" for x in m["load_average_before"])
    steps = "/".join(sorted({str(run["steps"]) for run in results["runs"]}))
    lines = [
        "# Performance: our training loop against transformers' Trainer",
        "",
        "Generated by `harness.bench.generate_performance_md` from the JSON that this command wrote; do not edit by hand:",
        "",
        "```bash",
        results["command"],
        "```",
        "",
        f"**Headline**: `{final_line(results)}` (train time of Trainer / ours, same optimiser steps on the same real tokens; "
        f"real tokens/s of our loop). Trainer: {summary['trainer_real_tokens_per_s']:.0f} real tokens/s; our evaluation: "
        f"{summary['eval_real_tokens_per_s']:.0f} real tokens/s.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, device `{m['device']}`"
        + (f", GPU {m['gpu']}" if m.get("gpu") else "")
        + (f" ({m['hardware']})" if m.get("hardware") else "")
        + "".join(f", {k}={val}" for k, val in m.get("env", {}).items()) + f"; load average at start {load} "
        "(other work on the machine slows both runners and makes the numbers noisy). "
        f"Created {results['created']}; total wall time {results['wall_s']:.0f} s.",
        "",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "",
        f"Cell: `{settings['model']}`, batch size {settings['batch_size']}, lr {settings['lr']:g}, "
        f"{settings['epochs']} epoch(s), max length {settings['max_length']}, precision: ours {settings['precision']}, "
        f"Trainer {_trainer_precision(settings)}, "
        f"{settings['n_train']:,} training and {settings['n_test']:,} test examples per dataset, seeds "
        f"{', '.join(map(str, settings['seeds']))}. Mean tokens per training example: "
        + ", ".join(f"{name} {sizes['train']['mean_tokens']:.1f}" for name, sizes in results["data"].items()) + ".",
        "",
        *([f"The runners differ in precision here (ours {settings['precision']}, Trainer "
           f"{_trainer_precision(settings)}): the speedup includes what {settings['precision']} buys; F1 shows whether "
           "it changed the result. Same-precision runs, where given, are under *Other settings*.", ""]
          if _trainer_precision(settings) != settings["precision"] else []),
        "## Means over seeds",
        "",
        summary_frame(results).to_markdown(index=False),
        "",
        *(["## Other settings, same benchmark", ""] + [line for other in others for line in _other_run_section(_load(other))]
          if others else []),
        "## Every run (in the order run: Trainer and ours alternate)",
        "",
        runs_frame(results).to_markdown(index=False),
        "",
        "## How it is measured",
        "",
        "- **Trainer**: `Trainer` + `DataCollatorWithPadding` on a `datasets.Dataset` tokenised with `.map` "
        "(not timed), `eval_strategy=\"epoch\"` on validation and test, weighted F1 from `compute_metrics`.",
        "- **Ours**: `harness.train.train_and_evaluate` (length-bucketed batches, pre-tokenised arrays, fused AdamW, "
        "exact touched-rows Adam for the word-embedding table) "
        "on the same train/validation/test rows from `harness.data.make_splits`.",
        "- Both start from the same weights (`load_classifier(model, n, seed=seed)`), and every pair is checked to take "
        "the same number of optimiser steps on the same number of real tokens.",
        "- *train s*: time inside the training epochs only; *real tok/s*: non-padding tokens trained / train s; "
        "*padding %*: padded share of the training batches; *peak RSS*: the process's resident-set high-water mark "
        "during the run (reset before each run on Linux); *eval s*: validation and test scoring.",
        "- Speedup = mean Trainer train time / mean our train time.",
        f"- *test F1*: weighted F1 on the test split after the last epoch ({steps} optimiser steps per run). "
        "Both runners optimise the same way but draw different batches and dropout masks, so F1 differs run to run; "
        "after few steps it says little about quality (a model that has not left the majority class scores "
        "~40 on SST-2): raise `--n-train` (e.g. 2000) to compare F1.",
        "",
    ]
    from harness.results import write_text_atomic

    return write_text_atomic(out, "\n".join(lines))


# ---------------------------------------------------------------- estimate: wall time of a profile


@dataclass(frozen=True)
class Rates:
    """Measured throughput of a reference model in our loop: real tokens/s, training and evaluation."""

    model: str
    train_tokens_per_s: float
    eval_tokens_per_s: float
    source: str

    def flops_per_s(self) -> tuple[float, float]:
        """(training, inference) FLOP/s of this machine, from the reference model's rates."""
        n = non_embedding_parameters(self.model)
        return self.train_tokens_per_s * 6 * n, self.eval_tokens_per_s * 2 * n


# The paper's hub models, by their published config.json, so the estimate works offline.
KNOWN_SHAPES = {
    "bert-base-uncased": ("bert", {}),
    "bert-large-uncased": ("bert", {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                                    "intermediate_size": 4096}),
    "distilbert-base-uncased": ("distilbert", {}),
}


def model_config(name: str, num_labels: int = 2):
    """A model's transformers config without loading weights (the paper's hub models offline too)."""
    from transformers import AutoConfig, BertConfig, DistilBertConfig

    from harness.models import TINY_MODELS, minilm_dir, tiny_config

    if name in KNOWN_SHAPES:
        kind, shape = KNOWN_SHAPES[name]
        return (BertConfig if kind == "bert" else DistilBertConfig)(num_labels=num_labels, **shape)
    if name in TINY_MODELS:
        return tiny_config(name, num_labels, vocab_size=30522)
    try:
        return AutoConfig.from_pretrained(minilm_dir() if name == "minilm-l6" else name, num_labels=num_labels)
    except OSError as error:
        raise BadInput(f"cannot read the config of model {name!r}: known offline are {sorted(KNOWN_SHAPES)}, "
                       f"minilm-l6, tiny-bert, tiny-distilbert, or a local folder ({error})") from error


def non_embedding_parameters(name: str) -> int:
    """Parameters that cost FLOPs per token: all but the embedding tables (a lookup costs ~0 FLOPs).

    Counted exactly by building the classifier on PyTorch's meta device (no memory, no weights).
    """
    from transformers import AutoModelForSequenceClassification

    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(model_config(name))
    embeddings = sum(p.numel() for p in model.base_model.embeddings.parameters())
    return sum(p.numel() for p in model.parameters()) - embeddings


def rates_from_bench(path: str | Path) -> Rates:
    results = _load(path)
    summary = results["summary"]
    return Rates(model=results["settings"]["model"], train_tokens_per_s=summary["real_tokens_per_s"],
                 eval_tokens_per_s=summary["eval_real_tokens_per_s"],
                 source=f"{path} ({results['settings']['precision']}, {results['created']})")


def calibrate(data_dir: str | Path = "data", model: str = "minilm-l6", n_train: int = 512) -> Rates:
    """A quick measurement of our loop (one epoch of SST-2, ~10-20 s on 2 cores) when no bench JSON exists."""
    settings = BenchSettings(model=model, datasets=("sst2",), n_train=n_train, n_test=256, seeds=(0,))
    tokenizer = load_classifier(model, 2)[1]
    data = load_bench_data("sst2", tokenizer, settings, data_dir)
    from harness.cell import default_device

    device = default_device()
    _warm_up(settings, data, device)
    run = measured_run("ours", data, settings, 0, device)
    return Rates(model=model, train_tokens_per_s=run.real_tokens_per_s,
                 eval_tokens_per_s=run.eval_real_tokens / run.eval_s,
                 source=f"calibration run ({model}, SST-2, {n_train} examples)")


def _token_source(model: str):
    """The tokenizer whose lengths stand for ``model``'s: every uncased BERT here shares one vocabulary."""
    from transformers import AutoTokenizer

    from harness.models import HUB_MODELS, OFFLINE_MODELS, minilm_dir

    if model in HUB_MODELS or model in OFFLINE_MODELS:
        return "uncased-wordpiece", AutoTokenizer.from_pretrained(minilm_dir())
    try:
        return model, AutoTokenizer.from_pretrained(model)
    except OSError as error:
        raise BadInput(f"cannot load the tokenizer of {model!r} to count tokens: {error}") from error


def mean_tokens(frame: pd.DataFrame, spec: DatasetSpec, tokenizer, max_length: int, sample: int = 2000) -> float:
    """Mean tokenised length (special tokens included, truncated) over a seeded sample of rows."""
    rows = frame.sample(n=min(sample, len(frame)), random_state=0) if len(frame) > sample else frame
    return float(encode(rows, spec, tokenizer, max_length).lengths.mean())


@dataclass(frozen=True)
class CellCost:
    """Predicted cost of one cell: real tokens through training and evaluation, and seconds."""

    model: str
    train_tokens: float  # real tokens through training passes (forward + backward)
    body_tokens: float  # real tokens through frozen-body forward passes (a probe's cached features)
    eval_tokens: float  # real tokens scored (validation + test, every epoch)
    flops: float


def cell_cost(config, split_tokens: dict[str, float], n_params: int) -> CellCost:
    """Tokens and FLOPs of one cell, following ``harness.train.train_and_evaluate``.

    ``split_tokens``: real tokens of the cell's train, validation and test splits.
    """
    epochs = config.epochs
    evaluated = epochs * (split_tokens["validation"] + split_tokens["test"])
    if config.mode == "probe":  # the frozen body runs once over train; the head's epochs cost ~0
        train, body = 0.0, split_tokens["train"]
    else:
        train, body = epochs * split_tokens["train"], 0.0
    flops = 6 * n_params * train + 2 * n_params * (body + evaluated)
    return CellCost(model=config.model, train_tokens=train, body_tokens=body, eval_tokens=evaluated, flops=flops)


def predicted_seconds(cost: CellCost, n_params: int, train_flops_per_s: float, eval_flops_per_s: float) -> float:
    return 6 * n_params * cost.train_tokens / train_flops_per_s + 2 * n_params * (cost.body_tokens + cost.eval_tokens) / eval_flops_per_s


def estimate_profile(cells: Sequence, rates: Rates, *, data_dir: str | Path = "data",
                     gpu_tokens_per_s: float | None = None, gpu_eval_tokens_per_s: float | None = None) -> pd.DataFrame:
    """Predicted wall time of every cell, summed per model (one process, cells one after another).

    The model: a transformer spends ~2N FLOPs per token on a forward pass and ~6N on a forward
    plus backward pass, N being its non-embedding parameters (Kaplan et al., 2020; the attention
    scores add 4 x layers x length x hidden per token, under 3% here at 128 tokens, and are left
    out). A cell of ``epochs`` epochs therefore costs

        6N x epochs x train tokens              full fine-tuning (a probe: 2N x train tokens, once)
      + 2N x epochs x (validation + test tokens)  scoring every epoch,

    where tokens are real (non-padding) tokens: our loop pads little, so padding is not modelled.
    Token counts come from the real data: the cell's split sizes (``make_splits``) times the mean
    tokenised length of a 2,000-row sample of each split (uncased BERTs share one vocabulary, so
    MiniLM's tokenizer counts for all of them). This machine's FLOP rates come from the measured
    real tokens/s of a reference model in our loop: training rate x 6N_ref, evaluation rate x 2N_ref.
    What the model leaves out: per-step overheads (optimiser update ~ all parameters, Python) are
    folded into the reference rate at the reference datasets' lengths, so much shorter sequences
    run slower per token than predicted and longer ones faster; model and data loading are not
    counted. For a GPU, ``gpu_tokens_per_s`` is the reference model's training rate measured there
    (``python -m harness bench`` on it); its evaluation rate defaults to the same ratio to training
    as on this machine.
    """
    return per_model(cell_frame(cells, data_dir, rates, gpu_tokens_per_s, gpu_eval_tokens_per_s))


def cell_frame(cells: Sequence, data_dir: str | Path = "data", rates: Rates | None = None,
               gpu_tokens_per_s: float | None = None, gpu_eval_tokens_per_s: float | None = None) -> pd.DataFrame:
    """One row per cell: its tokens, FLOPs and, given ``rates``, predicted hours (see ``estimate_profile``)."""
    here = rates.flops_per_s() if rates else None
    gpu = None
    if rates and gpu_tokens_per_s is not None:
        n_ref = non_embedding_parameters(rates.model)
        gpu_eval = gpu_eval_tokens_per_s or gpu_tokens_per_s * rates.eval_tokens_per_s / rates.train_tokens_per_s
        gpu = (gpu_tokens_per_s * 6 * n_ref, gpu_eval * 2 * n_ref)
    params: dict[str, int] = {}
    tokenizers: dict[str, tuple[str, object]] = {}
    split_tokens: dict[tuple, dict[str, float]] = {}
    rows = []
    for config in cells:
        if config.model not in params:
            params[config.model] = non_embedding_parameters(config.model)
            tokenizers[config.model] = _token_source(config.model)
        token_name, tokenizer = tokenizers[config.model]
        key = (token_name, config.dataset, config.n_train, config.n_test, config.n_val, config.data_seed,
               config.max_length)
        if key not in split_tokens:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                splits = make_splits(config.dataset, data_dir, n_train=config.n_train, n_test=config.n_test,
                                     n_val=config.n_val, data_seed=config.data_seed)
            spec = dataset_spec(config.dataset)
            split_tokens[key] = {s: len(getattr(splits, s)) * mean_tokens(getattr(splits, s), spec, tokenizer,
                                                                          config.max_length)
                                 for s in ("train", "validation", "test")}
        n = params[config.model]
        cost = cell_cost(config, split_tokens[key], n)
        rows.append({"model": config.model, "cells": 1, "train_tokens": cost.train_tokens + cost.body_tokens,
                     "eval_tokens": cost.eval_tokens, "pflops": cost.flops / 1e15,
                     **({"hours_here": predicted_seconds(cost, n, *here) / 3600} if here else {}),
                     **({"hours_gpu": predicted_seconds(cost, n, *gpu) / 3600} if gpu else {}),
                     "precision": config.precision, "params": n})
    return pd.DataFrame(rows)


def per_model(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-cell frame summed per model, with a total row."""
    table = frame.drop(columns=["precision", "params"]).groupby("model", sort=False).sum().reset_index()
    table.insert(1, "non_embedding_params_M", [frame.params[frame.model == m].iloc[0] / 1e6 for m in table.model])
    total = table.drop(columns=["model", "non_embedding_params_M"]).sum()
    return pd.concat([table, pd.DataFrame([{"model": "total", **total}])], ignore_index=True)


# ---------------------------------------------------------------- estimate: N GPUs, packing, Slurm time limit


@dataclass(frozen=True)
class GpuType:
    """A GPU's datasheet peak, dense (no sparsity), in TFLOP/s."""

    fp32: float  # plain FP32: our fp32 cells leave TF32 off, as PyTorch does by default
    bf16: float  # BF16 tensor cores (bf16 cells autocast the forward pass); FP16 where the chip has no BF16


# NVIDIA's datasheets (SXM parts where there are two). Measured rates replace them: `--tokens-per-s`.
GPU_TYPES = {
    "t4": GpuType(8.1, 65), "v100": GpuType(15.7, 125), "a10": GpuType(31.2, 125), "l4": GpuType(30.3, 121),
    "a100": GpuType(19.5, 312), "l40s": GpuType(91.6, 362), "h100": GpuType(67, 989), "h200": GpuType(67, 989),
}
# ASSUMPTIONS, not measurements (no GPU was at hand): the share of peak that BERT fine-tuning at
# batch 32 reaches in our loop, and how busy one small-model cell keeps a GPU by itself.
GPU_UTILISATION = 0.4
SMALL_CELL_GPU_SHARE = 0.5
SMALL_MODEL_PARAMS = 50e6  # non-embedding parameters under which a model counts as small (DistilBERT, MiniLM)


def datasheet_hours(frame: pd.DataFrame, gpu_type: str) -> pd.Series:
    """Each cell's hours on one GPU of ``gpu_type``, at the assumed share of its datasheet peak."""
    if gpu_type not in GPU_TYPES:
        raise BadInput(f"unknown gpu type {gpu_type!r}; known: {', '.join(GPU_TYPES)}")
    peak = GPU_TYPES[gpu_type]
    tflops = frame.precision.map({"bf16": peak.bf16, "fp32": peak.fp32}) * GPU_UTILISATION
    return frame.pflops * 1e3 / tflops / 3600


def gpu_wall_hours(hours: Sequence[float], gpus: int, small: Sequence[bool] = (), pack: int = 1) -> float:
    """Wall time of cells on ``gpus`` GPUs: their GPU-hours spread evenly, or the longest cell if longer.

    ``pack`` > 1 runs that many small cells at once on a GPU: each alone keeps it only
    ``SMALL_CELL_GPU_SHARE`` busy, so together they finish min(pack, 1 / share) times sooner.
    """
    small = list(small) or [False] * len(hours)
    gain = [min(pack, 1 / SMALL_CELL_GPU_SHARE) if pack > 1 and is_small else 1.0 for is_small in small]
    gpu_hours = sum(h / g for h, g in zip(hours, gain))
    longest = max(h * pack / g if g > 1 else h for h, g in zip(hours, gain))  # a packed cell shares its GPU
    return max(gpu_hours / gpus, longest)


def timeout_min(longest_cell_hours: float, cells_per_task: int = 1) -> int:
    """A Slurm time limit for one array task: its cells at the longest predicted cell, x2, + 10 min, in 10s."""
    return int(-(-(2 * 60 * longest_cell_hours * cells_per_task + 10) // 10) * 10)


def suggested_timeout_min(cells: Sequence, gpu_type: str, cells_per_task: int = 1, data_dir: str | Path = "data") -> int:
    """``timeout_min`` for these cells on ``gpu_type`` (the slurm executor's default)."""
    return timeout_min(datasheet_hours(cell_frame(cells, data_dir), gpu_type).max(), cells_per_task)


def format_gpus(frame: pd.DataFrame, gpus: int, gpu_type: str | None, pack: int, cells_per_task: int = 1) -> str:
    """Lines for ``estimate --gpus N``: wall time, what packing buys, the Slurm time limit.

    Per-cell GPU hours: the measured rate (``hours_gpu``, from --tokens-per-s) where there is one,
    else ``gpu_type``'s datasheet peak at an assumed utilisation.
    """
    if "hours_gpu" in frame:
        hours, source = frame.hours_gpu, "the GPU rate given by --tokens-per-s"
    else:
        peak = GPU_TYPES[gpu_type]
        hours = datasheet_hours(frame, gpu_type)
        source = (f"{gpu_type}: ASSUMED {GPU_UTILISATION:.0%} of its datasheet {peak.fp32:g} fp32 / {peak.bf16:g} bf16 "
                  "TFLOP/s; `bench` there and --tokens-per-s replace it")
    small = frame.params < SMALL_MODEL_PARAMS
    one, packed = gpu_wall_hours(list(hours), gpus), gpu_wall_hours(list(hours), gpus, list(small), pack)
    small_models = ", ".join(sorted(set(frame.model[small]))) or "none in this profile"
    return "\n".join([
        f"on {gpus} GPU(s) ({source}):",
        f"  one cell per GPU: {one:.1f} h wall ({hours.sum():.1f} GPU-hours; longest cell {hours.max():.2f} h)",
        f"  {pack} small-model cells per GPU ({small_models}; ASSUMED: one alone keeps a GPU "
        f"{SMALL_CELL_GPU_SHARE:.0%} busy): {packed:.1f} h wall, {one - packed:.1f} h saved",
        f"slurm: timeout_min={timeout_min(hours.max(), cells_per_task)} for an array task of {cells_per_task} cell(s) "
        "(longest cell x2 + 10 min; what run.slurm.timeout_min: null uses)",
        f"predicted_wall_hours={one:.2f} predicted_wall_hours_packed={packed:.2f}",
    ])


def format_estimate(table: pd.DataFrame) -> str:
    shown = table.copy()
    for column in ("train_tokens", "eval_tokens"):
        shown[column] = (shown[column] / 1e6).map("{:.1f}M".format)
    shown["non_embedding_params_M"] = shown["non_embedding_params_M"].map(lambda x: "" if pd.isna(x) else f"{x:.1f}")
    shown["cells"] = shown["cells"].astype(int)
    for column in [c for c in shown.columns if c.startswith("hours") or c == "pflops"]:
        shown[column] = shown[column].map("{:.2f}".format)
    return shown.rename(columns={"non_embedding_params_M": "non-emb. params (M)", "train_tokens": "train tokens",
                                 "eval_tokens": "eval tokens", "pflops": "PFLOP", "hours_here": "hours here",
                                 "hours_gpu": "hours GPU"}).to_string(index=False)


# ---------------------------------------------------------------- command line


def add_cli(subparsers) -> None:
    defaults = BenchSettings()
    p = subparsers.add_parser("bench", help="time our training loop against transformers' Trainer, side by side",
                              description="Train the same cell with transformers' Trainer and with our loop, "
                                          "alternating, and print samples/s, real tokens/s, padding, memory and F1.")
    p.add_argument("--model", default=defaults.model)
    p.add_argument("--datasets", nargs="+", default=list(defaults.datasets))
    p.add_argument("--n-train", type=int, default=defaults.n_train)
    p.add_argument("--n-test", type=int, default=defaults.n_test)
    p.add_argument("--n-val", type=int, default=None, help="default: 10%% of --n-train")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--seeds", nargs="+", type=int, default=list(defaults.seeds))
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--max-length", type=int, default=defaults.max_length)
    p.add_argument("--data-seed", type=int, default=defaults.data_seed)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="our loop's precision: bf16 autocasts the forward pass; auto (default): bf16 where the "
                        "hardware computes it natively, else fp32")
    p.add_argument("--trainer-precision", default=None, choices=["fp32", "bf16"],
                   help="the Trainer's precision (its bf16=True); default: the same as --precision")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--out", default="results/bench.json", help="JSON of every number (default: %(default)s)")
    p.add_argument("--doc", default=None, help="also write this markdown report (e.g. docs/PERFORMANCE.md)")
    p.add_argument("--doc-only", action="store_true", help="only render --doc from an existing --out JSON")
    p.add_argument("--doc-others", nargs="*", default=[], metavar="JSON",
                   help="further bench JSONs (e.g. another --precision) to render as sections of --doc")
    p.set_defaults(func=bench_cli)

    e = subparsers.add_parser("estimate", help="predict the wall time of a profile from measured speed",
                              description=estimate_profile.__doc__.split("\n\n")[0])
    e.add_argument("--profile", default=None, help="a profile of --params (default: its 'profile:' key)")
    e.add_argument("--params", default="params.yaml")
    e.add_argument("--bench", default="results/bench.json",
                   help="measured rates (from `python -m harness bench`); missing: a quick calibration run")
    e.add_argument("--calibrate", action="store_true", help="measure this machine now even if --bench exists")
    e.add_argument("--tokens-per-s", type=float, default=None,
                   help="also predict for a GPU: its training real tokens/s for the reference model in our loop")
    e.add_argument("--eval-tokens-per-s", type=float, default=None, help="the GPU's evaluation real tokens/s")
    e.add_argument("--gpus", type=int, default=None, help="also predict the wall time on N GPUs (with --gpu-type)")
    e.add_argument("--gpu-type", default="a100", choices=sorted(GPU_TYPES),
                   help="datasheet peak for --gpus, at an assumed utilisation (default: %(default)s)")
    e.add_argument("--pack", type=int, default=2, help="small-model cells per GPU for the packing line (default: 2)")
    e.add_argument("--cells-per-task", type=int, default=1, help="cells per Slurm array task, for its time limit")
    e.add_argument("--data-dir", default="data")
    e.set_defaults(func=estimate_cli)


def bench_cli(args: argparse.Namespace) -> int:
    if args.doc_only:
        if not args.doc:
            raise BadInput("--doc-only needs --doc PATH")
        print(generate_performance_md(args.out, args.doc, args.doc_others))
        return 0
    settings = BenchSettings(model=args.model, datasets=tuple(args.datasets), n_train=args.n_train, n_test=args.n_test,
                             n_val=args.n_val, epochs=args.epochs, seeds=tuple(args.seeds), batch_size=args.batch_size,
                             lr=args.lr, max_length=args.max_length, data_seed=args.data_seed,
                             precision=resolve_precision(args.precision), trainer_precision=args.trainer_precision,
                             threads=args.threads)
    results = run_bench(settings, data_dir=args.data_dir, out=args.out,
                        log=lambda line: print(line, file=sys.stderr, flush=True))
    if args.doc:
        generate_performance_md(results, args.doc, args.doc_others)
    print(format_tables(results))
    print(f"\n(written to {args.out}; load average {results['machine']['load_average_before'][0]:.2f} at start: "
          "other work on the machine makes these numbers noisy)")
    print(f"hardware: {results['machine']['hardware']}; precision: ours {settings.precision}, "
          f"Trainer {settings.trainer_precision_used}" + (" (same on both sides)" if settings.trainer_precision_used
                                                           == settings.precision else " (cross-precision pairing)"))
    print(final_line(results))
    return 0


def estimate_cli(args: argparse.Namespace) -> int:
    from harness.grid import expand, load_profile

    profile = load_profile(args.profile, args.params)
    cells = expand(profile)
    if args.tokens_per_s is not None and args.tokens_per_s <= 0:
        raise BadInput(f"--tokens-per-s must be positive, got {args.tokens_per_s}")
    if args.gpus is not None and (args.gpus < 1 or args.pack < 1 or args.cells_per_task < 1):
        raise BadInput(f"--gpus, --pack and --cells-per-task must be >= 1, got {args.gpus}, {args.pack}, "
                       f"{args.cells_per_task}")
    if Path(args.bench).is_file() and not args.calibrate:
        rates = rates_from_bench(args.bench)
    else:
        print(f"no {args.bench}: measuring this machine with a quick calibration run ...", file=sys.stderr)
        rates = calibrate(args.data_dir)
    frame = cell_frame(cells, args.data_dir, rates, args.tokens_per_s, args.eval_tokens_per_s)
    table = per_model(frame)
    from harness.precision import detect_hardware

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
    if args.gpus:
        print(format_gpus(frame, args.gpus, args.gpu_type, args.pack, args.cells_per_task))
    return 0
