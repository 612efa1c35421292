"""The cost of a grid: every cell's tokens and FLOPs, its predicted hours from measured rates, what a
GPU cluster's wall time and a Slurm task's time limit come to (the model: ``estimate_profile``).

The rates come from measurement, above this layer (``harness.perf.estimate``: a bench JSON or a quick
calibration run of our loop); the Slurm executor takes its default time limit from here.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, BertConfig, DistilBertConfig

from harness.errors import BadInput
from harness.method.data import DatasetSpec, dataset_spec
from harness.method.models import HUB_MODELS, MODELS, OFFLINE_MODELS, TINY_MODELS, minilm_dir, tiny_config
from harness.method.prepare import encode, make_splits

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


def model_config(name: str, num_labels: int = 2):
    """A model's transformers config without loading weights (the paper's hub models offline too)."""
    if name in HUB_MODELS:  # the registry's shape, as the hub's config.json has it, so this works offline
        known = MODELS[name]
        if known.architecture == "bert":
            return BertConfig(num_labels=num_labels, hidden_size=known.hidden, num_hidden_layers=known.depth,
                              num_attention_heads=known.heads, intermediate_size=known.intermediate)
        return DistilBertConfig(num_labels=num_labels, dim=known.hidden, n_layers=known.depth, n_heads=known.heads,
                                hidden_dim=known.intermediate)
    if name in TINY_MODELS:
        return tiny_config(name, num_labels, vocab_size=30522)
    try:
        return AutoConfig.from_pretrained(minilm_dir() if name == "minilm-l6" else name, num_labels=num_labels)
    except OSError as error:
        raise BadInput(f"cannot read the config of model {name!r}: known offline are {sorted(HUB_MODELS)}, "
                       f"minilm-l6, tiny-bert, tiny-distilbert, or a local folder ({error})") from error


def non_embedding_parameters(name: str) -> int:
    """Parameters that cost FLOPs per token: all but the embedding tables (a lookup costs ~0 FLOPs).

    Counted exactly by building the classifier on PyTorch's meta device (no memory, no weights).
    """
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(model_config(name))
    embeddings = sum(p.numel() for p in model.base_model.embeddings.parameters())
    return sum(p.numel() for p in model.parameters()) - embeddings


def _token_source(model: str):
    """The tokenizer whose lengths stand for ``model``'s: every uncased BERT here shares one vocabulary."""
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
    eval_tokens: float  # real tokens scored (validation every epoch; test every epoch or once)
    flops: float


def cell_cost(config, split_tokens: dict[str, float], n_params: int) -> CellCost:
    """Tokens and FLOPs of one cell, following ``harness.method.train.train_and_evaluate``.

    ``split_tokens``: real tokens of the cell's train, validation and test splits.
    """
    epochs = config.epochs
    held_out = split_tokens["validation"] + split_tokens["test"]
    if config.mode == "probe":  # the frozen body runs once over train (every epoch with probe_dropout); the head ~0
        # the body's validation and test vectors are cached too (harness.method.train), so they are scored once
        train, body, evaluated = 0.0, (epochs if config.probe_dropout else 1) * split_tokens["train"], held_out
    elif config.test_scoring == "every_epoch":
        train, body, evaluated = epochs * split_tokens["train"], 0.0, epochs * held_out
    else:  # validation every epoch, test once at the selected epoch
        train, body, evaluated = epochs * split_tokens["train"], 0.0, epochs * split_tokens["validation"] + \
            split_tokens["test"]
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
    "h100-pcie": GpuType(51, 756), "h200-nvl": GpuType(60, 835),
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
