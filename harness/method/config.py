"""The identity of one experiment cell: a small frozen config, the method's version and the data.

A cell's *identity* (``cell_identity``), which names its result record, is the sha256 of three
things: the config's canonical JSON (every field, numbers normalised: ``fraction=0`` and ``0.0``
are one cell; a field added after METHOD_VERSION 2 only when it differs from the default that
reproduces the method as it was, see ``IDENTITY_DEFAULTS``), ``METHOD_VERSION`` (the code that
turns a config into numbers) and the digest of the dataset files the cell reads. How the cell is
run (workers, threads, paths) is not part of it.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from dataclasses import asdict, dataclass, fields, replace

from harness.errors import BadInput

# Bump when a change to the method's code can change a cell's numbers: every cell then gets a new
# identity and is recomputed. tests/test_method_version.py fails when the method modules change
# while METHOD_VERSION stays; `python -m harness method-digest --write` records the new state (harness/method/digest.py).
METHOD_VERSION = "3"  # 3: per-example predictions in every record (issue 20), Table-1 splits (issue 23)

INT_FIELDS = ("epochs", "seed", "data_seed", "n_train", "n_test", "n_val", "batch_size", "max_length")
OPTIONAL_INT_FIELDS = ("n_train", "n_test", "n_val")  # None: the dataset's default size
FLOAT_FIELDS = ("fraction", "lr")

SETTINGS = ("none", "bottom", "top", "all")  # none = clean (0%), all = 100% corruption
POOLINGS = ("cls", "mean")
MODES = ("full", "probe")
PRECISIONS = ("fp32", "bf16")
# When a run scores the test set: after every epoch (the paper's "we test every epoch": the best-on-test reading
# needs it), or once, at the epoch chosen on validation (that epoch's weights kept), which is all the verdicts
# read and what makes a test set of thousands affordable (harness.method.train).
TEST_SCORINGS = ("every_epoch", "selected")

# The corruption's kinds and components (harness.method.corrupt applies them; they are checked here, where
# a config is made, so a bad value fails before any model is loaded).
CORRUPTIONS = ("reinit", "noise", "shuffle", "zero", "bitflip")  # reinit: the paper's method
STRENGTHS = {  # the kinds that take a strength, and what it means
    "noise": "the noise's standard deviation as a multiple of each tensor's own, a finite number >= 0",
    "bitflip": "each bit's flip probability, in [0, 1]",
}
COMPONENTS = ("all", "attention", "ffn", "layernorm")
DEFAULT_INIT = "kaiming_uniform"

# Fields added after METHOD_VERSION 2, at the value that reproduces the method as it was before they
# existed. canonical_json leaves such a field out while it holds this value: adding an option must
# not give every existing record a new identity (and recompute GPU-days of cells that it does not
# change); a cell that sets it to anything else is a new cell. A field added later joins this table.
IDENTITY_DEFAULTS = {"corruption": "reinit", "strength": None, "component": "all", "probe_dropout": False,
                     "test_scoring": "every_epoch"}


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
    init: str = DEFAULT_INIT
    scope: str = "encoder"
    rounding: str | None = None
    precision: str = "fp32"
    # BERT's pooler (dense + tanh) between the pooled vector and the classifier, as
    # BertForSequenceClassification does; False: straight to the classifier (see models.sentence_vector).
    pooler: bool = True
    # What damage the chosen layers get (harness.method.corrupt): reinit is the paper's; noise and bitflip
    # take a strength (noise: a multiple of each tensor's std; bitflip: each bit's flip probability).
    corruption: str = "reinit"
    strength: float | None = None
    component: str = "all"  # within the chosen layers: all, attention, ffn or layernorm
    # A linear probe's frozen body during training: False runs it once in eval mode (no dropout) and
    # trains the head on the cached vectors; True runs it in train mode (dropout on) for every
    # training batch, as transformers' Trainer does (it keeps the whole model in train mode): that
    # is the paper's stack. The default stays False because it is what every probe cell computed
    # before this option existed (their identities and numbers stay valid); profiles set it
    # explicitly, True where they follow the paper's stack.
    probe_dropout: bool = False
    # every_epoch: the test set is scored after every epoch (the default, what every record before this option
    # computed); selected: once, at the epoch of best validation F1 (TEST_SCORINGS). The selected epoch, its
    # test F1 and predictions are the same either way (tests/test_cell.py); only the best-on-test reading is lost.
    test_scoring: str = "every_epoch"

    def __post_init__(self) -> None:
        for name in INT_FIELDS:  # before anything compares them: 3.0 or "3" must not pass as 3
            value = getattr(self, name)
            if not (value is None and name in OPTIONAL_INT_FIELDS):
                object.__setattr__(self, name, whole_number(name, value))
        for name in FLOAT_FIELDS:
            object.__setattr__(self, name, real_number(name, getattr(self, name)))
        for name in ("model", "dataset", "init", "scope", "corruption", "component") + (
                ("rounding",) if self.rounding is not None else ()):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise BadInput(f"{name} must be a name (a non-empty string), got {getattr(self, name)!r}")
        if not 0.0 <= self.fraction <= 1.0:
            raise BadInput(f"fraction must be in [0, 1], got {self.fraction}")
        if self.position not in SETTINGS:
            raise BadInput(f"position must be one of {SETTINGS}, got {self.position!r}")
        if self.fraction == 0.0:
            object.__setattr__(self, "position", "none")
            object.__setattr__(self, "fraction", 0.0)  # not -0.0, which JSON spells differently
        elif self.fraction == 1.0:
            object.__setattr__(self, "position", "all")
        elif self.position in ("none", "all"):
            raise BadInput(f"position {self.position!r} needs fraction {0 if self.position == 'none' else 1}; "
                           f"for fraction {self.fraction} choose 'bottom' or 'top'")
        for name, value, allowed in (("pooling", self.pooling, POOLINGS), ("mode", self.mode, MODES),
                                     ("precision", self.precision, PRECISIONS),
                                     ("test_scoring", self.test_scoring, TEST_SCORINGS)):
            if value not in allowed:
                raise BadInput(f"{name} must be one of {allowed}, got {value!r}")
        for name, ok, rule in (("lr", math.isfinite(self.lr) and self.lr > 0, "a finite number > 0"), ("epochs", self.epochs >= 1, ">= 1"),
                               ("batch_size", self.batch_size >= 1, ">= 1"), ("max_length", self.max_length >= 8, ">= 8")):
            if not ok:
                raise BadInput(f"{name} must be {rule}, got {getattr(self, name)!r}")
        for name in ("pooler", "probe_dropout"):
            if not isinstance(getattr(self, name), bool):
                raise BadInput(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.probe_dropout and self.mode != "probe":
            raise BadInput(f"probe_dropout applies to mode 'probe' only (full fine-tuning trains with dropout "
                           f"anyway), got mode {self.mode!r}")
        object.__setattr__(self, "strength", check_corruption(self.corruption, self.strength, self.component,
                                                              init=self.init, scope=self.scope))
        if self.fraction == 0.0:  # nothing is corrupted: a clean cell is one cell whatever damage was named
            for name in ("corruption", "strength", "component"):
                object.__setattr__(self, name, IDENTITY_DEFAULTS[name])
        for name in ("n_train", "n_test", "n_val"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BadInput(f"{name} must be a positive number of examples, got {value}")
        for name in ("seed", "data_seed"):  # numpy's and sklearn's seeds are unsigned 32-bit
            if not 0 <= getattr(self, name) < 2**32:
                raise BadInput(f"{name} must be in [0, 2**32), got {getattr(self, name)}")

    @property
    def corrupt_position(self) -> str:
        """The position argument for ``harness.method.corrupt.corrupt`` (100% is the whole bottom block)."""
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

    def canonical_json(self) -> str:
        """Every field, except one of ``IDENTITY_DEFAULTS`` at its default (so older records keep their identity)."""
        values = {name: value for name, value in self.to_dict().items()
                  if not (name in IDENTITY_DEFAULTS and type(value) is type(IDENTITY_DEFAULTS[name])
                          and value == IDENTITY_DEFAULTS[name])}
        return json.dumps(values, sort_keys=True, separators=(",", ":"))

    @property
    def hash(self) -> str:
        """The config alone: sha256 of the canonical JSON of every field (16 hex); see ``cell_identity``."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]


def whole_number(name: str, value: object) -> int:
    """``value`` as an int if it is one (numpy ints too); 3.0, "3" and True are refused."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    raise BadInput(f"{name} must be a whole number (an integer such as 3), got {value!r}")


def real_number(name: str, value: object) -> float:
    """``value`` as a float if it is a real number (int, float, Fraction, numpy); text and True are refused."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise BadInput(f"{name} must be a number, got {value!r}")


def check_corruption(kind: object, strength: object = None, component: object = "all", *, init: object = DEFAULT_INIT,
                     scope: object = "encoder") -> float | None:
    """Check a corruption's parameters together; return ``strength`` as a float (None where the kind takes none).

    Refused: an unknown kind or component; a strength missing for noise or bitflip, or given for
    reinit, shuffle or zero; a strength that is not a finite number >= 0, or a bitflip rate above 1;
    a non-default ``init`` with any kind but reinit (only re-initialisation draws from it); a
    component other than ``all`` with a scope wider than the encoder (components are parts of an
    encoder layer).
    """
    if kind not in CORRUPTIONS:
        raise BadInput(f"corruption kind must be one of {CORRUPTIONS}, got {kind!r}")
    if component not in COMPONENTS:
        raise BadInput(f"component must be one of {COMPONENTS}, got {component!r}")
    if kind in STRENGTHS:
        if strength is None:
            raise BadInput(f"corruption {kind!r} needs a strength: {STRENGTHS[kind]}")
        strength = real_number("strength", strength)
        if not (math.isfinite(strength) and strength >= 0):
            raise BadInput(f"strength must be a finite number >= 0 ({kind}: {STRENGTHS[kind]}), got {strength!r}")
        if kind == "bitflip" and strength > 1:
            raise BadInput(f"bitflip strength is {STRENGTHS['bitflip']}, got {strength!r}")
    elif strength is not None:
        raise BadInput(f"corruption {kind!r} takes no strength (only {' and '.join(STRENGTHS)} do), got {strength!r}")
    if kind != "reinit" and init != DEFAULT_INIT:
        raise BadInput(f"init {init!r} applies to corruption 'reinit' only (the initialiser of the fresh weights); "
                       f"with corruption {kind!r} leave init at its default ({DEFAULT_INIT})")
    if component != "all" and scope != "encoder":
        raise BadInput(f"component {component!r} is a part of the encoder layers, so it needs scope 'encoder', "
                       f"got scope {scope!r}")
    return strength


def cell_identity(config: CellConfig, data_digest: str) -> str:
    """What names a cell's record: sha256 of (canonical config, METHOD_VERSION, data digest), 16 hex.

    ``data_digest`` is ``harness.method.data.dataset_digest`` of the cell's dataset: a record is never reused
    across versions of the data or of the method.
    """
    identity = json.dumps({"config": config.canonical_json(), "method_version": METHOD_VERSION,
                           "data": data_digest}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(identity.encode()).hexdigest()[:16]
