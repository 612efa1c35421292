"""The paper's training protocol (Section 4): fine-tune (or linear-probe) and evaluate every epoch.

Optimisation follows Hugging Face ``Trainer``'s defaults, the paper's stack (``harness.method.optim``: Adam,
linear decay to 0 without warm-up, gradient norm clipped at 1.0). After every epoch the model is scored on validation and
test with sklearn's weighted F1 (plus accuracy and macro F1), in percent as the paper reports. With
``test_every_epoch`` off, the test set is scored once instead, at the end, with the weights of the epoch of best
validation F1 (kept in memory when validation improves): the same epoch, F1 and predictions the every-epoch run
selects, since scoring in inference mode draws no randomness and changes no weight.

Speed without changing the science:
  * batches are drawn from a seeded shuffle, then sorted by length *within* mega-batches of 50
    batches, so each batch pads to a similar length while the data order stays random; the number
    of optimiser steps is exactly ceil(n / batch_size) per epoch, as with a plain shuffled loader;
  * token ids are pre-tokenised arrays (``harness.method.data.Encoded``): no tokenizer work per step;
  * evaluation runs in inference mode on length-sorted batches capped by a token budget;
  * the word-embedding table gets sparse gradients and an exact touched-rows Adam (``harness.method.optim``);
  * a linear probe runs the frozen body once per split (eval mode, no dropout, so its output is the
    same every epoch) and then trains and scores the head on the cached vectors: identical maths.
    With ``probe_dropout`` the body runs in train mode instead, as transformers' ``Trainer`` runs a
    frozen body (it keeps the whole model in train mode): dropout makes its output differ at every
    step, so the vectors are recomputed for every training batch (without gradients); validation
    and test still see the eval-mode body, computed once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch import nn
from tqdm.auto import tqdm

from harness.method.models import head_logits, head_parameters, sentence_vector
from harness.method.optim import Optimiser
from harness.method.predictions import encode_labels
from harness.method.prepare import Encoded

MEGA_BATCHES = 50  # batches per length-sorted chunk: wide enough to group lengths, narrow enough to stay random
EVAL_TOKENS = 2048  # padded tokens per evaluation batch: measured fastest on 2 CPU cores (cache-sized)


@dataclass(frozen=True)
class TrainSettings:
    lr: float
    epochs: int
    batch_size: int = 32
    pooling: str = "cls"
    mode: str = "full"  # full fine-tuning or "probe" (frozen body, head only: Table 4)
    seed: int = 0
    precision: str = "fp32"  # "bf16": autocast for the forward pass
    max_grad_norm: float = 1.0
    pooler: bool = True  # BERT's pooler between the pooled vector and the classifier
    probe_dropout: bool = False  # probe: the frozen body in train mode (dropout on) as Trainer runs it; see CellConfig
    test_every_epoch: bool = True  # False: test scored once, at the epoch chosen on validation (CellConfig.test_scoring)


@dataclass
class EpochScores:
    epoch: int
    train_loss: float
    val: dict[str, float]
    test: dict[str, float]  # empty where the test set was not scored after this epoch
    train_tokens: int
    train_seconds: float
    val_predictions: np.ndarray
    test_predictions: np.ndarray | None

    def as_record(self) -> dict:
        return {
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            **{f"val_{k}": v for k, v in self.val.items()},
            **{f"test_{k}": v for k, v in self.test.items()},
            "train_tokens": self.train_tokens,
            "train_seconds": self.train_seconds,
            # the evidence of every verdict: each example's predicted label (harness.method.predictions)
            "val_predictions": encode_labels(self.val_predictions),
            **({"test_predictions": encode_labels(self.test_predictions)} if self.test_predictions is not None else {}),
        }


@dataclass
class TrainOutcome:
    epochs: list[EpochScores] = field(default_factory=list)
    diverged: bool = False
    divergence: str | None = None


# ---------------------------------------------------------------- batching


def length_bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled example indices cut into batches that pad little: sort within random mega-batches."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * MEGA_BATCHES
    batches = []
    for start in range(0, len(order), chunk):
        mega = order[start : start + chunk]
        mega = mega[np.argsort(lengths[mega], kind="stable")]
        batches.extend(mega[i : i + batch_size] for i in range(0, len(mega), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def token_budget_batches(lengths: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """Length-sorted evaluation batches of at most ``max_tokens`` padded tokens each."""
    order = np.argsort(lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        end = start + 1
        while end < len(order) and (end - start + 1) * lengths[order[end]] <= max_tokens:
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def collate(data: Encoded, index: np.ndarray, pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Pad the chosen examples to the longest among them."""
    starts, ends = data.offsets[index], data.offsets[index + 1]
    width = int((ends - starts).max())
    input_ids = np.full((len(index), width), pad_id, dtype=np.int64)
    token_types = np.zeros((len(index), width), dtype=np.int64)
    mask = np.zeros((len(index), width), dtype=np.int64)
    for row, (s, e) in enumerate(zip(starts, ends)):
        input_ids[row, : e - s] = data.input_ids[s:e]
        token_types[row, : e - s] = data.token_type_ids[s:e]
        mask[row, : e - s] = 1
    return {
        "input_ids": torch.from_numpy(input_ids).to(device, non_blocking=True),
        "token_type_ids": torch.from_numpy(token_types).to(device, non_blocking=True),
        "attention_mask": torch.from_numpy(mask).to(device, non_blocking=True),
    }


# ---------------------------------------------------------------- evaluation


def classification_scores(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """Weighted F1 (the paper's metric), macro F1 and accuracy, in percent."""
    return {
        "f1_weighted": 100.0 * f1_score(labels, predictions, average="weighted", zero_division=0),
        "f1_macro": 100.0 * f1_score(labels, predictions, average="macro", zero_division=0),
        "accuracy": 100.0 * accuracy_score(labels, predictions),
    }


def majority_scores(train_labels: np.ndarray, test_labels: np.ndarray) -> dict[str, float]:
    """Scores of always predicting the training set's most frequent class (Mosbach et al.'s bar)."""
    majority = np.bincount(train_labels).argmax()
    return classification_scores(test_labels, np.full_like(test_labels, majority))


def _autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@torch.inference_mode()
def body_vectors(model, data: Encoded, pooling: str, pad_id: int, device: torch.device, precision: str = "fp32",
                 pooler: bool = True) -> torch.Tensor:
    """The vectors that enter the head, for every example in order (model must be in eval mode)."""
    out = torch.empty((len(data), model.config.hidden_size), dtype=torch.float32, device=device)
    for index in token_budget_batches(data.lengths, EVAL_TOKENS):
        with _autocast(device, precision):
            vector = sentence_vector(model, pooling=pooling, pooler=pooler, **collate(data, index, pad_id, device))
        out[torch.from_numpy(index).to(device)] = vector.float()
    return out


@torch.inference_mode()
def predict(model, data: Encoded, pooling: str, pad_id: int, device: torch.device, precision: str = "fp32",
            pooler: bool = True) -> np.ndarray:
    """Predicted label ids in the original order (eval mode: no dropout)."""
    model.eval()
    with _autocast(device, precision):
        logits = head_logits(model, body_vectors(model, data, pooling, pad_id, device, precision, pooler))
    return logits.argmax(-1).cpu().numpy()


# ---------------------------------------------------------------- training


def _train_batches(
    model, train: Encoded, settings: TrainSettings, rng: np.random.Generator, pad_id: int, device: torch.device,
    probe_vectors: torch.Tensor | None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
    """(logits, labels, real tokens) per optimiser step of one epoch."""
    labels = torch.tensor(train.labels, device=device)
    for index in length_bucketed_batches(train.lengths, settings.batch_size, rng):
        index_t = torch.from_numpy(index).to(device)
        tokens = int(train.lengths[index].sum())
        with _autocast(device, settings.precision):
            if probe_vectors is not None:
                logits = head_logits(model, probe_vectors[index_t])
            elif settings.mode == "probe":  # probe_dropout: the frozen body, dropout on, recomputed every step
                with torch.no_grad():
                    vector = sentence_vector(model, pooling=settings.pooling, pooler=settings.pooler,
                                             **collate(train, index, pad_id, device))
                logits = head_logits(model, vector)
            else:
                vector = sentence_vector(model, pooling=settings.pooling, pooler=settings.pooler,
                                         **collate(train, index, pad_id, device))
                logits = head_logits(model, vector)
        yield logits.float(), labels[index_t], tokens


def train_and_evaluate(
    model,
    train: Encoded,
    validation: Encoded,
    test: Encoded,
    settings: TrainSettings,
    *,
    pad_id: int,
    device: torch.device,
    progress: bool = True,
    description: str = "",
) -> TrainOutcome:
    """Train for ``settings.epochs`` epochs, scoring validation after each one, and test after each one too or
    (``test_every_epoch`` off) once, at the epoch of best validation F1 (ties: the earliest).

    A non-finite loss stops the run and marks it diverged (the epochs before it are kept).
    """
    torch.manual_seed(settings.seed)  # dropout masks
    rng = np.random.default_rng(settings.seed)  # data order
    model.to(device)

    probe_vectors, frozen_eval = None, None
    if settings.mode == "probe":
        for parameter in model.base_model.parameters():
            parameter.requires_grad_(False)
        model.eval()
        if settings.probe_dropout:  # the training vectors change with every dropout mask: none cached
            val_v, test_v = (body_vectors(model, split, settings.pooling, pad_id, device, settings.precision,
                                          settings.pooler).clone()
                             for split in (validation, test))
            probe_vectors, frozen_eval = None, {"val": val_v, "test": test_v}
        else:
            train_v, val_v, test_v = (body_vectors(model, split, settings.pooling, pad_id, device, settings.precision,
                                                   settings.pooler).clone()
                                      for split in (train, validation, test))
            probe_vectors, frozen_eval = train_v, {"val": val_v, "test": test_v}
        parameters = head_parameters(model)
    else:
        parameters = [p for p in model.parameters() if p.requires_grad]

    def evaluate(split: str, data: Encoded) -> np.ndarray:
        """Each example's predicted label."""
        if frozen_eval is not None:  # the frozen body's outputs do not change between epochs
            model.eval()
            with torch.inference_mode():
                return head_logits(model, frozen_eval[split]).argmax(-1).cpu().numpy()
        return predict(model, data, settings.pooling, pad_id, device, settings.precision, settings.pooler)

    steps_per_epoch = math.ceil(len(train) / settings.batch_size)
    optimiser = Optimiser.for_model(model, parameters, settings.lr, steps_per_epoch * settings.epochs,
                                    settings.max_grad_norm)
    loss_fn = nn.CrossEntropyLoss()
    outcome = TrainOutcome()
    chosen: tuple[EpochScores, dict[str, torch.Tensor]] | None = None  # test once: the best validation epoch so far

    bar = tqdm(total=steps_per_epoch * settings.epochs, desc=description or "train", disable=not progress,
               unit="step", dynamic_ncols=True, leave=False)
    for epoch in range(1, settings.epochs + 1):
        model.train(settings.mode == "full" or settings.probe_dropout)
        if settings.mode == "probe":
            model.dropout.train()  # the head's dropout still regularises the probe
        started, tokens, loss_sum, steps = time.perf_counter(), 0, 0.0, 0
        for logits, labels, batch_tokens in _train_batches(model, train, settings, rng, pad_id, device, probe_vectors):
            loss = loss_fn(logits, labels)
            if not torch.isfinite(loss):
                outcome.diverged, outcome.divergence = True, f"non-finite loss {loss.item()} at epoch {epoch} step {steps + 1}"
                break
            optimiser.zero_grad()
            loss.backward()
            optimiser.clip_and_step()
            loss_sum, steps, tokens = loss_sum + loss.item(), steps + 1, tokens + batch_tokens
            bar.update()
            bar.set_postfix(epoch=epoch, loss=f"{loss_sum / steps:.4f}")
        if outcome.diverged:
            break
        train_seconds = time.perf_counter() - started
        val_predictions = evaluate("val", validation)
        test_predictions = evaluate("test", test) if settings.test_every_epoch else None
        scores = EpochScores(
            epoch=epoch,
            train_loss=loss_sum / steps,
            val=classification_scores(validation.labels, val_predictions),
            test=classification_scores(test.labels, test_predictions) if test_predictions is not None else {},
            train_tokens=tokens,
            train_seconds=train_seconds,
            val_predictions=val_predictions,
            test_predictions=test_predictions,
        )
        outcome.epochs.append(scores)
        if not settings.test_every_epoch and (chosen is None or scores.val["f1_weighted"] > chosen[0].val["f1_weighted"]):
            chosen = scores, {name: value.detach().clone() for name, value in model.state_dict().items()}
        bar.set_postfix(epoch=epoch, loss=f"{scores.train_loss:.4f}", val_f1=f"{scores.val['f1_weighted']:.2f}")
    bar.close()
    if chosen is not None:  # the test set, once, with the chosen epoch's weights
        scores, weights = chosen
        model.load_state_dict(weights)
        scores.test_predictions = evaluate("test", test)
        scores.test = classification_scores(test.labels, scores.test_predictions)
    return outcome
