"""One experiment cell: data -> model -> corrupt -> train -> evaluate -> one result record.

A cell's identity is its config hash: ``<out_dir>/<hash>.json``. A cell whose record exists is
never recomputed, and a run that fails on bad input writes nothing, so a good result is never
overwritten. Scores are percentages, as in the paper:

* ``best_test_f1``: the paper's selection (Section 4.2, "we test every epoch and choose the best");
* ``selected_test_f1``: the honest one: the epoch with the best validation F1, scored on test;
* ``majority_f1``: always predicting the training set's majority class. A run whose best F1 does
  not beat it is a ``failed_run`` (Mosbach et al., 2021); a non-finite loss makes it ``diverged``.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from harness.config import CellConfig
from harness.corrupt import corrupt, encoder_layers, layers_to_corrupt
from harness.data import PreparedData, dataset_spec, prepare
from harness.models import load_classifier
from harness.precision import detect_hardware
from harness.results import features_path, read_record, versions, write_json_atomic
from harness.train import TrainOutcome, TrainSettings, body_vectors, majority_scores, train_and_evaluate


def result_path(config: CellConfig, out_dir: str | Path) -> Path:
    return Path(out_dir) / f"{config.hash}.json"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def summarise(config: CellConfig, outcome: TrainOutcome, majority_f1: float) -> dict:
    """Selected scores and status from the per-epoch scores."""
    epochs = outcome.epochs
    if epochs:
        best = max(epochs, key=lambda e: e.test["f1_weighted"])
        selected = max(epochs, key=lambda e: e.val["f1_weighted"])  # ties: the earliest epoch
        final = epochs[-1]
        scores = {
            "best_test_f1": best.test["f1_weighted"], "best_epoch": best.epoch,
            "selected_test_f1": selected.test["f1_weighted"], "selected_val_f1": selected.val["f1_weighted"],
            "selected_epoch": selected.epoch, "final_test_f1": final.test["f1_weighted"],
        }
    else:
        scores = dict.fromkeys(("best_test_f1", "best_epoch", "selected_test_f1", "selected_val_f1",
                                "selected_epoch", "final_test_f1"), float("nan"))
    if outcome.diverged:
        status = "diverged"
    elif scores["best_test_f1"] <= majority_f1:
        status = "failed_run"
    else:
        status = "ok"
    return {"status": status, **scores, "majority_f1": majority_f1}


def _save_features(path: Path, vectors: torch.Tensor, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as handle:
        np.savez(handle, features=vectors.cpu().numpy().astype(np.float32), labels=labels)
    os.replace(handle.name, path)


def run_cell(
    config: CellConfig,
    *,
    out_dir: str | Path = "results/cells",
    data_dir: str | Path = "data",
    cache_dir: str | Path = "cache/tokens",
    record_path: str | Path | None = None,
    save_features: bool = False,
    progress: bool = True,
    device: torch.device | None = None,
) -> dict:
    """Run one cell (or return its existing record) and write ``<out_dir>/<hash>.json``.

    ``record_path`` names the record file instead (``python -m harness cell --out r.json``).
    """
    path = Path(record_path) if record_path is not None else result_path(config, out_dir)
    existing = read_record(path)
    if existing is not None and existing.get("config_hash") == config.hash:
        if not save_features or features_path(path).exists():
            return existing

    device = device or default_device()
    started = time.perf_counter()
    spec = dataset_spec(config.dataset)  # fail on an unknown dataset before loading a model
    model, tokenizer = load_classifier(config.model, spec.num_labels, seed=config.seed)
    data: PreparedData = prepare(
        config.dataset, tokenizer, data_dir=data_dir, n_train=config.n_train, n_test=config.n_test,
        n_val=config.n_val, data_seed=config.data_seed, max_length=config.max_length, cache_dir=cache_dir,
    )
    n_layers = len(encoder_layers(model))
    corrupted_layers = layers_to_corrupt(n_layers, config.corrupt_position, config.fraction, config.rounding)
    reset = corrupt(model, config.corrupt_position, config.fraction, seed=config.seed, init=config.init,
                    scope=config.scope, rounding=config.rounding)

    settings = TrainSettings(lr=config.lr, epochs=config.epochs, batch_size=config.batch_size, pooling=config.pooling,
                             mode=config.mode, seed=config.seed, precision=config.precision, pooler=config.pooler)
    label = f"{config.model} {config.dataset} {config.position} {config.fraction:.2f} {config.mode} lr={config.lr:g} s={config.seed}"
    outcome = train_and_evaluate(model, data.train, data.validation, data.test, settings,
                                 pad_id=tokenizer.pad_token_id, device=device, progress=progress, description=label)
    majority = majority_scores(data.train.labels, data.test.labels)["f1_weighted"]
    train_tokens = sum(e.train_tokens for e in outcome.epochs)
    train_seconds = sum(e.train_seconds for e in outcome.epochs)

    record = {
        "config": config.to_dict(),
        "config_hash": config.hash,
        **summarise(config, outcome, majority),
        "divergence": outcome.divergence,
        "epochs": [e.as_record() for e in outcome.epochs],
        "n_layers": n_layers,
        "n_corrupted": len(corrupted_layers),
        "corrupted_layers": corrupted_layers,
        "level": 100.0 * len(corrupted_layers) / n_layers,
        "n_reset_parameters": len(reset),
        "tokens_per_s": train_tokens / train_seconds if train_seconds else float("nan"),
        "wall_s": time.perf_counter() - started,
        "peak_memory_mb": _peak_memory_mb(device),
        "data": {"n_train": len(data.train), "n_val": len(data.validation), "n_test": len(data.test),
                 "notes": list(data.notes)},
        "versions": versions(),
        "hardware": {**detect_hardware(device).to_dict(), "summary": detect_hardware(device).describe()},
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                 f" ({torch.get_num_threads()} threads)"),
    }
    if save_features and outcome.epochs:
        model.eval()
        vectors = body_vectors(model, data.test, config.pooling, tokenizer.pad_token_id, device, config.precision,
                               config.pooler)
        _save_features(features_path(path), vectors, data.test.labels)
    write_json_atomic(path, record)
    return record
