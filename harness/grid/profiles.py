"""A profile of ``params.yaml``, read and checked: its blocks (the paper's tables) and Figure 1's t-SNE cells.

A *profile* is a list of *blocks*; each block is one table of the paper, the cross product

    models (each with its corruption fractions) x datasets x positions x poolings x modes x lrs x seeds

with the other ``CellConfig`` fields (epochs, n_train, n_test, batch_size, max_length, ...) fixed.
``harness.grid`` expands a profile into cells and runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import yaml

from harness.errors import BadInput
from harness.method.config import real_number, whole_number

# Block keys that take a list of values (the grid's axes) ...
AXES = ("models", "datasets", "positions", "poolings", "modes", "lrs", "seeds")
# ... and those that fix one CellConfig field for every cell of the block.
FIXED = ("epochs", "n_train", "n_test", "n_val", "batch_size", "max_length", "data_seed", "init", "scope",
         "rounding", "precision", "pooler", "corruption", "strength", "component", "probe_dropout",
         "test_scoring")
AXIS_DEFAULTS = {"positions": ("bottom", "top"), "poolings": ("cls",), "modes": ("full",)}


@dataclass(frozen=True)
class Block:
    """One table of the paper: a cross product of cells."""

    name: str
    models: tuple[tuple[str, tuple[Fraction, ...]], ...]  # (model, its corruption fractions)
    datasets: tuple[str, ...]
    positions: tuple[str, ...]
    poolings: tuple[str, ...]
    modes: tuple[str, ...]
    lrs: tuple[float, ...]
    seeds: tuple[int, ...]
    fixed: tuple[tuple[str, object], ...]  # CellConfig field -> value, shared by the block's cells


# Figure 1's vectors: "head_input", what the classifier reads (the pooler's output where the cell has one),
# or "cls", the final layer's [CLS] token output, what the paper plots ("[CLS] tokens gained from the
# fine-tuned BERT models", Section 4.4); harness.figures reads both from a cell's saved vectors.
TSNE_VECTORS = ("head_input", "cls")


@dataclass(frozen=True)
class TsneSpec:
    """Figure 1: which cells save their test-set features (clean, top-k, bottom-k and 100%), and which vectors."""

    model: str
    dataset: str
    fraction: Fraction
    seed: int = 0
    pooling: str = "cls"
    mode: str = "full"
    vectors: str = "head_input"


@dataclass(frozen=True)
class AnalysisSpec:
    """How healing changes the representations (``harness.beyond.analysis``): which cells save every layer's
    vectors (clean, top-k, bottom-k and 100% at ``fraction``, for each seed) and how they are measured."""

    model: str
    dataset: str
    fraction: Fraction
    seeds: tuple[int, ...]
    pooling: str = "mean"  # the cells' pooling: the vectors the head reads (the other pooling's are measured too)
    mode: str = "full"
    lr: float | None = None  # needed where the block has several lrs
    dims: int = 50  # principal components the margins are measured in (see harness.method.representations)
    split: str = "train"  # whose first examples: "train" (fine-tuned on; Zhou & Srikumar's choice) or "test"


@dataclass(frozen=True)
class Profile:
    name: str
    blocks: tuple[Block, ...]
    tsne: TsneSpec | None = None
    analysis: AnalysisSpec | None = None
    # Run cells that ask for Table 1's sizes on data that cannot give them (harness.method.table1): an explicit,
    # recorded choice; without it the grid refuses before any cell.
    allow_data_below_table1: bool = False


# ---------------------------------------------------------------- reading params.yaml


def parse_fraction(value: object) -> Fraction:
    """``0``, ``1``, ``0.25``, ``"1/3"`` -> an exact fraction in [0, 1]."""
    try:
        if isinstance(value, bool):  # YAML's true is not a fraction of anything
            raise TypeError(value)
        fraction = Fraction(value) if isinstance(value, (int, str)) else Fraction(str(value))
    except (TypeError, ValueError, ZeroDivisionError) as error:
        raise BadInput(f"corruption fraction must be a number or 'a/b' in [0, 1], got {value!r}") from error
    if not 0 <= fraction <= 1:
        raise BadInput(f"corruption fraction must be in [0, 1], got {value!r}")
    return fraction


def _as_list(block: str, key: str, value: object) -> list:
    if isinstance(value, (list, tuple)):
        if not value:
            raise BadInput(f"block {block!r}: {key} is empty")
        return list(value)
    return [value]


def _lr(block: str, value: object) -> float:
    if isinstance(value, str):  # PyYAML reads 5e-5 (no dot) as a string: accept YAML's spelling of a number
        try:
            value = float(value)
        except ValueError:
            pass
    try:
        return real_number("lrs", value)
    except BadInput as error:
        raise BadInput(f"block {block!r}: {error}") from None


def _yaml_number(value: object) -> object:
    """PyYAML reads 1e-6 (no dot) as a string: YAML's spelling of a number becomes the number; anything else stays."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def _seed(block: str, value: object) -> int:
    try:
        return whole_number("seeds", value)
    except BadInput as error:
        raise BadInput(f"block {block!r}: {error}") from None


def parse_block(raw: dict, defaults: dict, index: int) -> Block:
    """A block from its params entry, with the profile's ``defaults`` filling what it leaves out."""
    if not isinstance(raw, dict):
        raise BadInput(f"block {index} must be a mapping of {AXES + FIXED}, got {raw!r}")
    values = {**defaults, **raw}
    name = str(values.pop("name", f"block{index}"))
    unknown = set(values) - set(AXES) - set(FIXED)
    if unknown:
        raise BadInput(f"block {name!r}: unknown keys {sorted(unknown)}; known: name, {', '.join(AXES + FIXED)}")
    for key in ("models", "datasets", "lrs", "seeds"):
        if key not in values:
            raise BadInput(f"block {name!r} needs {key!r} (in the block or the profile's defaults)")
    models = values["models"]
    if not isinstance(models, dict) or not models:
        raise BadInput(f"block {name!r}: models must map each model to its corruption fractions, "
                       f"e.g. {{bert-base-uncased: [0, 1/4, 1/2, 3/4, 1]}}; got {models!r}")
    return Block(
        name=name,
        models=tuple((str(m), tuple(parse_fraction(f) for f in _as_list(name, m, fs))) for m, fs in models.items()),
        datasets=tuple(str(d) for d in _as_list(name, "datasets", values["datasets"])),
        positions=tuple(_as_list(name, "positions", values.get("positions", AXIS_DEFAULTS["positions"]))),
        poolings=tuple(_as_list(name, "poolings", values.get("poolings", AXIS_DEFAULTS["poolings"]))),
        modes=tuple(_as_list(name, "modes", values.get("modes", AXIS_DEFAULTS["modes"]))),
        lrs=tuple(_lr(name, lr) for lr in _as_list(name, "lrs", values["lrs"])),
        seeds=tuple(_seed(name, s) for s in _as_list(name, "seeds", values["seeds"])),
        fixed=tuple((key, _yaml_number(values[key]) if key == "strength" else values[key]) for key in FIXED
                    if key in values),
    )


def parse_tsne(raw: dict) -> TsneSpec:
    known = {"model", "dataset", "fraction", "seed", "pooling", "mode", "vectors"}
    if not isinstance(raw, dict) or set(raw) - known or not {"model", "dataset", "fraction"} <= set(raw):
        raise BadInput("tsne must be a mapping with model, dataset, fraction (and optionally seed, pooling, mode, "
                       f"vectors); got {raw!r}")
    fraction = parse_fraction(raw["fraction"])
    if fraction in (0, 1):
        raise BadInput(f"tsne fraction must be partial (top-k vs bottom-k), got {raw['fraction']!r}")
    if raw.get("vectors", "head_input") not in TSNE_VECTORS:
        raise BadInput(f"tsne vectors must be one of {TSNE_VECTORS}, got {raw['vectors']!r}")
    return TsneSpec(**{**raw, "fraction": fraction})


def parse_analysis(raw: dict) -> AnalysisSpec:
    required, optional = {"model", "dataset", "fraction", "seeds"}, {"pooling", "mode", "lr", "dims", "split"}
    if not isinstance(raw, dict) or set(raw) - required - optional or not required <= set(raw):
        raise BadInput(f"analysis must be a mapping with {sorted(required)} (and optionally {sorted(optional)}); "
                       f"got {raw!r}")
    fraction = parse_fraction(raw["fraction"])
    if fraction in (0, 1):
        raise BadInput(f"analysis fraction must be partial (top-k vs bottom-k), got {raw['fraction']!r}")
    seeds = tuple(_seed("analysis", s) for s in _as_list("analysis", "seeds", raw["seeds"]))
    if len(set(seeds)) < 2:
        raise BadInput(f"analysis needs >= 2 seeds (a verdict compares settings over seeds), got {list(seeds)}")
    dims = whole_number("analysis dims", raw.get("dims", 50))
    if dims < 2:
        raise BadInput(f"analysis dims must be >= 2, got {dims}")
    lr = _lr("analysis", raw["lr"]) if raw.get("lr") is not None else None
    split = raw.get("split", "train")
    if split not in ("train", "test"):
        raise BadInput(f"analysis split must be 'train' or 'test', got {split!r}")
    return AnalysisSpec(model=str(raw["model"]), dataset=str(raw["dataset"]), fraction=fraction, seeds=seeds,
                        pooling=str(raw.get("pooling", "mean")), mode=str(raw.get("mode", "full")), lr=lr, dims=dims,
                        split=split)


def read_params(params_path: str | Path = "params.yaml") -> dict:
    path = Path(params_path)
    if not path.is_file():
        raise BadInput(f"params file {path} not found")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise BadInput(f"{path} is not UTF-8 text: {error}") from None
    except yaml.YAMLError as error:  # one line, not the parser's report
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise BadInput(f"{path}{where}: not valid YAML ({problem}); fix the syntax there") from None
    if not isinstance(params, dict):
        raise BadInput(f"{path} must be a mapping with 'profile:' and 'profiles:', got {type(params).__name__}")
    if not isinstance(params.get("profiles"), dict) or not params["profiles"]:
        raise BadInput(f"{path} has no 'profiles:' mapping")
    return params


def load_profile(name: str | None = None, params_path: str | Path = "params.yaml") -> Profile:
    """The profile ``name`` of ``params.yaml`` (default: its top-level ``profile:`` key)."""
    params = read_params(params_path)
    profiles = params["profiles"]
    name = name or params.get("profile")
    if not isinstance(name, str) or name not in profiles:
        raise BadInput(f"unknown profile {name!r}: {params_path} defines {', '.join(profiles)}")
    raw = profiles[name]
    if not isinstance(raw, dict) or not isinstance(raw.get("blocks"), list) or not raw["blocks"]:
        raise BadInput(f"profile {name!r} needs a non-empty 'blocks:' list")
    known = ("defaults", "blocks", "tsne", "analysis", "allow_data_below_table1")
    unknown = set(raw) - set(known)
    if unknown:
        raise BadInput(f"profile {name!r}: unknown keys {sorted(unknown)}; known: {', '.join(known)}")
    allow_below = raw.get("allow_data_below_table1", False)
    if not isinstance(allow_below, bool):
        raise BadInput(f"profile {name!r}: allow_data_below_table1 must be true or false, got {allow_below!r}")
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise BadInput(f"profile {name!r}: defaults must be a mapping of block keys, got {defaults!r}")
    blocks = tuple(parse_block(block, defaults, i) for i, block in enumerate(raw["blocks"]))
    tsne = parse_tsne(raw["tsne"]) if raw.get("tsne") else None
    analysis = parse_analysis(raw["analysis"]) if raw.get("analysis") else None
    profile = Profile(name=name, blocks=blocks, tsne=tsne, analysis=analysis, allow_data_below_table1=allow_below)
    return profile


def load_raw_profile(name: str, params_path: str | Path = "params.yaml") -> dict:
    """The profile ``name`` as params.yaml writes it (checked by ``load_profile`` first): for a tool that writes a
    new profile from an old one's blocks."""
    load_profile(name, params_path)
    return read_params(params_path)["profiles"][name]
