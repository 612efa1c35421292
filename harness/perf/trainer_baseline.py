"""(a) of the side-by-side benchmark: transformers' ``Trainer``, as a user of the paper's stack would write it.

``Trainer`` + ``DataCollatorWithPadding`` on a ``datasets.Dataset`` tokenised with ``.map``
(tokenisation not timed), weighted F1 from ``compute_metrics``, evaluation of validation and test
every epoch; train time is the time from ``on_epoch_begin`` to ``on_epoch_end``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable

import accelerate  # noqa: F401  (transformers' Trainer needs it: fail at import, not mid-benchmark)
import datasets
import numpy as np
import pandas as pd
import torch
from sklearn.metrics import f1_score
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback

from harness.method.data import DatasetSpec
from harness.perf.bench_settings import BenchData, BenchSettings, RunResult


def hf_dataset(frame: pd.DataFrame, spec: DatasetSpec, tokenizer, max_length: int):
    """A ``datasets.Dataset`` tokenised with ``.map``, as the transformers tutorials do."""
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
    predicted = np.argmax(prediction.predictions, axis=-1)
    return {"f1_weighted": 100.0 * f1_score(prediction.label_ids, predicted, average="weighted", zero_division=0)}


def run_trainer(model, tokenizer, data: BenchData, settings: BenchSettings, seed: int,
                device: torch.device) -> RunResult:
    """Fine-tune ``model`` with ``Trainer`` as a user of the paper's stack would; time its epochs."""
    DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments = _trainer_classes()
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
