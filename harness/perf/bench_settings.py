"""What one side-by-side benchmark is: its settings, the rows both runners see, and one run's result.

Shared by ``harness.perf.bench`` (our loop, the measured runs) and ``harness.perf.trainer_baseline``
(transformers' ``Trainer``); the token counts here are how both sides' padding is compared.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import BadInput
from harness.method.data import DatasetSpec, dataset_spec
from harness.method.prepare import Encoded, encode, make_splits
from harness.method.train import length_bucketed_batches

RUNNERS = ("trainer", "ours")


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
    precision: str = "fp32"  # ours: "bf16" autocasts the forward pass (harness.method.train)
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
