"""The identity of one experiment cell: a small frozen config whose hash names its result file."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace

from harness import BadInput

SETTINGS = ("none", "bottom", "top", "all")  # none = clean (0%), all = 100% corruption
POOLINGS = ("cls", "mean")
MODES = ("full", "probe")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class CellConfig:
    """(model, dataset, corruption, pooling, training mode, lr, seed) -> one fine-tuning run.

    ``position``/``fraction`` are canonical: fraction 0 is position ``none`` and fraction 1 is
    ``all`` (bottom 100% and top 100% are the same model), so equal experiments hash equally.
    """

    model: str
    dataset: str
    position: str = "none"
    fraction: float = 0.0
    pooling: str = "cls"
    mode: str = "full"
    lr: float = 5e-5
    epochs: int = 3
    seed: int = 0  # training randomness: head init, corruption draw, data order, dropout
    data_seed: int = 0  # the train/validation/test re-split; fixed so seeds vary training only
    n_train: int | None = None  # None: the paper's Table-1 size (capped by what exists)
    n_test: int | None = None
    n_val: int | None = None  # None: 10% of the training size, at most 2,000
    batch_size: int = 32
    max_length: int = 128
    init: str = "kaiming_uniform"
    scope: str = "encoder"
    rounding: str | None = None
    precision: str = "fp32"
    # BERT's pooler (dense + tanh) between the pooled vector and the classifier, as
    # BertForSequenceClassification does; False: straight to the classifier (see models.sentence_vector).
    pooler: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise BadInput(f"fraction must be in [0, 1], got {self.fraction}")
        if self.position not in SETTINGS:
            raise BadInput(f"position must be one of {SETTINGS}, got {self.position!r}")
        if self.fraction == 0.0:
            object.__setattr__(self, "position", "none")
        elif self.fraction == 1.0:
            object.__setattr__(self, "position", "all")
        elif self.position in ("none", "all"):
            raise BadInput(f"position {self.position!r} needs fraction {0 if self.position == 'none' else 1}; "
                           f"for fraction {self.fraction} choose 'bottom' or 'top'")
        for name, value, allowed in (("pooling", self.pooling, POOLINGS), ("mode", self.mode, MODES),
                                     ("precision", self.precision, PRECISIONS)):
            if value not in allowed:
                raise BadInput(f"{name} must be one of {allowed}, got {value!r}")
        if not (self.lr > 0 and self.epochs >= 1 and self.batch_size >= 1 and self.max_length >= 8):
            raise BadInput("lr must be > 0, epochs >= 1, batch_size >= 1 and max_length >= 8")
        if not isinstance(self.pooler, bool):
            raise BadInput(f"pooler must be true or false, got {self.pooler!r}")
        for name in ("n_train", "n_test", "n_val"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BadInput(f"{name} must be a positive number of examples, got {value}")

    @property
    def corrupt_position(self) -> str:
        """The position argument for ``harness.corrupt.corrupt`` (100% is the whole bottom block)."""
        return "bottom" if self.position in ("none", "all") else self.position

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "CellConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise BadInput(f"unknown cell config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)

    def with_(self, **changes) -> "CellConfig":
        return replace(self, **changes)

    @property
    def hash(self) -> str:
        """Identity of the experiment: sha256 of the canonical JSON of every field (16 hex)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]
