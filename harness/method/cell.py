"""One experiment cell: data -> model -> corrupt -> train -> evaluate -> one result record.

A cell's record is ``<out_dir>/<identity>.json``, the identity covering its config, the method's
version and the digest of its data (``harness.method.config.cell_identity``). A cell whose record exists is
never recomputed; one being computed by another process (its lock is held) is left to it; a run
that fails on bad input writes nothing, so a good result is never overwritten. What a cell could
fail on late is checked first: the output folders can be written (before anything is loaded) and
the data files are read and checked (before the training). Scores are percentages, as in the paper:

* ``best_test_f1``: the paper's selection (Section 4.2, "we test every epoch and choose the best"); NaN where
  the test set is scored at the selected epoch only (``test_scoring: selected``);
* ``selected_test_f1``: the honest one: the epoch with the best validation F1, scored on test;
* ``majority_f1``: always predicting the training set's majority class. A run whose best F1 does
  not beat it is a ``failed_run`` (Mosbach et al., 2021); a non-finite loss makes it ``diverged``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from harness.errors import BadInput
from harness.files import check_writable, write_atomic, write_json_atomic
from harness.method.config import METHOD_VERSION, CellConfig, cell_identity
from harness.method.corrupt import apply_corruption, encoder_layers, layers_to_corrupt
from harness.method.data import dataset_digest, dataset_spec
from harness.method.memory import rss_peak
from harness.method.models import load_classifier
from harness.method.precision import detect_hardware
from harness.method.predictions import encode_labels
from harness.method.prepare import PreparedData, prepare
from harness.method.record import cell_record, claim, features_path, versions
from harness.method.record import record_path as identity_path
from harness.method.representations import ANALYSIS_EXAMPLES, first_examples, layer_vectors
from harness.method.train import TrainOutcome, TrainSettings, body_vectors, majority_scores, train_and_evaluate


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _peak_memory(device: torch.device, memory: dict) -> dict:
    """This cell's memory peaks: the process's RSS high-water mark during the cell (Linux: reset at its
    start; elsewhere the process-wide ``ru_maxrss``, flagged by ``peak_rss_per_cell``) and, on CUDA,
    the most memory torch allocated on the device (its peak statistics reset at the cell's start)."""
    peaks = {"peak_rss_mb": memory["peak_mb"], "peak_rss_per_cell": memory["per_run"]}
    if device.type == "cuda":
        peaks["peak_cuda_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return peaks


def summarise(config: CellConfig, outcome: TrainOutcome, majority_f1: float) -> dict:
    """Selected scores and status from the per-epoch scores."""
    epochs, nan = outcome.epochs, float("nan")
    if epochs:
        selected = max(epochs, key=lambda e: e.val["f1_weighted"])  # ties: the earliest epoch
        final = epochs[-1]
        scores = {"selected_test_f1": selected.test["f1_weighted"], "selected_val_f1": selected.val["f1_weighted"],
                  "selected_epoch": selected.epoch, "final_test_f1": final.test.get("f1_weighted", nan)}
        if config.test_scoring == "every_epoch":
            best = max(epochs, key=lambda e: e.test["f1_weighted"])
            scores |= {"best_test_f1": best.test["f1_weighted"], "best_epoch": best.epoch}
        else:  # the test set was scored at the selected epoch only: no best-on-test reading exists
            scores |= {"best_test_f1": nan, "best_epoch": nan}
    else:
        scores = dict.fromkeys(("best_test_f1", "best_epoch", "selected_test_f1", "selected_val_f1",
                                "selected_epoch", "final_test_f1"), nan)
    # a failed run scores no better than the majority class: on the best test epoch where every epoch was scored
    reached = scores["best_test_f1"] if config.test_scoring == "every_epoch" else scores["selected_test_f1"]
    if outcome.diverged:
        status = "diverged"
    elif reached <= majority_f1:
        status = "failed_run"
    else:
        status = "ok"
    return {"status": status, **scores, "majority_f1": majority_f1}


def _save_vectors(path: Path, head_inputs: torch.Tensor, labels: np.ndarray, layers: dict[str, np.ndarray]) -> None:
    """``features``/``labels``: the head's inputs on the test set (t-SNE); ``layers_<split>_<moment>_<pooling>``
    and ``labels_<split>``: every layer's pooled vectors of the first training and test examples (float16
    halves the file; their scale is far inside its range)."""
    arrays = {"features": head_inputs.cpu().numpy().astype(np.float32), "labels": labels,
              **{name: vectors.astype(np.float16) if name.startswith("layers_") else vectors
                 for name, vectors in layers.items()}}
    write_atomic(path, lambda handle: np.savez(handle, **arrays))


def _capture(model, data: PreparedData, moment: str, pad_id: int, device: torch.device, precision: str
             ) -> dict[str, np.ndarray]:
    """Every layer's pooled vectors of the first training and test examples (``harness.method.representations``)."""
    found = {}
    for split, encoded in (("train", data.train), ("test", data.test)):
        subset = first_examples(encoded, ANALYSIS_EXAMPLES)
        found[f"labels_{split}"] = subset.labels
        found |= {f"layers_{split}_{moment}_{pooling}": vectors
                  for pooling, vectors in layer_vectors(model.to(device), subset, pad_id, device, precision).items()}
    return found


def _finished(config: CellConfig, data_digest: str, path: Path, save_features: bool) -> dict | None:
    record = cell_record(config, data_digest, path=path)
    if record is not None and (not save_features or features_path(path).exists()):
        return record
    return None


def run_cell(
    config: CellConfig,
    *,
    out_dir: str | Path = "results/cells",
    data_dir: str | Path = "data",
    cache_dir: str | Path = "cache/tokens",
    record_path: str | Path | None = None,
    data_digest: str | None = None,
    save_features: bool = False,
    progress: bool = True,
    device: torch.device | None = None,
    wait: bool = True,
) -> dict | None:
    """Run one cell (or return its existing record) and write ``<out_dir>/<identity>.json``.

    ``record_path`` names the record file instead (``python -m harness cell --out r.json``).
    ``data_digest``: ``dataset_digest(config.dataset, data_dir)``, computed here unless given (a grid
    computes it once per dataset). While it computes, the cell holds its lock; if another process
    holds it, this one waits for that run's record (``wait``) or returns None at once.
    """
    spec = dataset_spec(config.dataset)  # fail on an unknown dataset before anything else
    data_digest = data_digest or dataset_digest(config.dataset, data_dir)
    path = Path(record_path) if record_path is not None else identity_path(config, out_dir, data_digest)
    if (existing := _finished(config, data_digest, path, save_features)) is not None:
        return existing
    for folder in (path.parent, cache_dir):  # fail now, not after the training
        check_writable(folder)
    lock = claim(path, wait=wait)
    if lock is None:
        return None
    try:
        if (existing := _finished(config, data_digest, path, save_features)) is not None:
            return existing  # the run that held the lock has just written it
        return _compute(config, spec, data_digest, path, data_dir=data_dir, cache_dir=cache_dir,
                        save_features=save_features, progress=progress, device=device or default_device())
    finally:
        lock.release()


def _compute(config: CellConfig, spec, data_digest: str, path: Path, *, data_dir: str | Path, cache_dir: str | Path,
             save_features: bool, progress: bool, device: torch.device) -> dict:
    """Load, prepare (the data files are read and checked here), corrupt, train, evaluate, write."""
    started = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with rss_peak() as memory:
        model, tokenizer = load_classifier(config.model, spec.num_labels, seed=config.seed)
        positions = getattr(model.config, "max_position_embeddings", None)
        if positions is not None and config.max_length > positions:  # longer inputs would index past the table
            raise BadInput(f"max_length {config.max_length} exceeds {config.model}'s {positions} position embeddings")
        data: PreparedData = prepare(
            config.dataset, tokenizer, data_dir=data_dir, n_train=config.n_train, n_test=config.n_test,
            n_val=config.n_val, data_seed=config.data_seed, max_length=config.max_length, cache_dir=cache_dir,
        )
        n_layers = len(encoder_layers(model))
        corrupted_layers = layers_to_corrupt(n_layers, config.corrupt_position, config.fraction, config.rounding)
        corruption = apply_corruption(model, config.corrupt_position, config.fraction, seed=config.seed,
                                      kind=config.corruption, strength=config.strength, component=config.component,
                                      init=config.init, scope=config.scope, rounding=config.rounding)

        layers = _capture(model, data, "before", tokenizer.pad_token_id, device, config.precision) \
            if save_features else {}
        settings = TrainSettings(lr=config.lr, epochs=config.epochs, batch_size=config.batch_size, pooling=config.pooling,
                                 mode=config.mode, seed=config.seed, precision=config.precision, pooler=config.pooler,
                                 probe_dropout=config.probe_dropout,
                                 test_every_epoch=config.test_scoring == "every_epoch")
        label = f"{config.model} {config.dataset} {config.position} {config.fraction:.2f} {config.mode} lr={config.lr:g} s={config.seed}"
        outcome = train_and_evaluate(model, data.train, data.validation, data.test, settings,
                                     pad_id=tokenizer.pad_token_id, device=device, progress=progress, description=label)
        majority = majority_scores(data.train.labels, data.test.labels)["f1_weighted"]
        train_tokens = sum(e.train_tokens for e in outcome.epochs)
        train_seconds = sum(e.train_seconds for e in outcome.epochs)

    record = {
        "config": config.to_dict(),
        "config_hash": config.hash,
        "identity": cell_identity(config, data_digest),
        "method_version": METHOD_VERSION,
        "data_digest": data_digest,
        **summarise(config, outcome, majority),
        "divergence": outcome.divergence,
        "epochs": [e.as_record() for e in outcome.epochs],
        "n_layers": n_layers,
        "n_corrupted": len(corrupted_layers),
        "corrupted_layers": corrupted_layers,
        "level": 100.0 * len(corrupted_layers) / n_layers,
        "n_reset_parameters": len(corruption.parameters),
        "corruption": corruption.summary(),  # kind, component, strength, values touched, bits flipped, non-finite
        "tokens_per_s": train_tokens / train_seconds if train_seconds else float("nan"),
        "wall_s": time.perf_counter() - started,
        **_peak_memory(device, memory),
        "data": {"n_train": len(data.train), "n_val": len(data.validation), "n_test": len(data.test),
                 "notes": list(data.notes)},
        # the true labels, once; each epoch holds the predicted ones (harness.method.predictions)
        "labels": {"val": encode_labels(data.validation.labels), "test": encode_labels(data.test.labels)},
        "versions": versions(),
        "hardware": {**detect_hardware(device).to_dict(), "summary": detect_hardware(device).describe()},
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                 f" ({torch.get_num_threads()} threads)"),
    }
    if save_features and outcome.epochs:
        model.eval()
        vectors = body_vectors(model, data.test, config.pooling, tokenizer.pad_token_id, device, config.precision,
                               config.pooler)
        layers |= _capture(model, data, "after", tokenizer.pad_token_id, device, config.precision)
        _save_vectors(features_path(path), vectors, data.test.labels, layers)
    write_json_atomic(path, record)
    return record
