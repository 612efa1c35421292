"""A profile's cells: the blocks of ``params.yaml`` expanded into ``CellConfig``s, and the cells that save vectors.

A *profile* in ``params.yaml`` is a list of *blocks*; each block is one table of the paper, the
cross product

    models (each with its corruption fractions) x datasets x positions x poolings x modes x lrs x seeds

with the other ``CellConfig`` fields (epochs, n_train, n_test, batch_size, max_length, ...) fixed.
A fraction of 0 is the clean model and 1 the fully corrupted one: each is a single setting shared
by bottom and top, so ``[0, 1/4, 1/2, 3/4, 1]`` gives the paper's eight settings per model.
Fractions are exact (``1/3`` is 2 of MiniLM's 6 layers) and must be whole layers of the model.
Reading and checking a profile is ``harness.grid.profiles``; running its cells is ``harness.grid``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from itertools import product

from transformers import AutoConfig

from harness.errors import BadInput
from harness.grid.profiles import Block, Profile
from harness.method.config import DEFAULT_INIT, IDENTITY_DEFAULTS, CellConfig, check_corruption
from harness.method.corrupt import check_components, init_bound, layers_to_corrupt, parse_scope
from harness.method.data import dataset_spec
from harness.method.models import MODELS
from harness.method.precision import resolve_precision


def encoder_depth(model: str) -> int:
    """Number of encoder layers of ``model``: the registry's (``harness.method.models.MODELS``), else its config (no weights)."""
    if model in MODELS:
        return MODELS[model].depth

    try:
        config = AutoConfig.from_pretrained(model)
    except OSError as error:
        raise BadInput(f"cannot read the config of model {model!r} (known offline: "
                       f"{sorted(MODELS)}): {error}") from error
    return config.num_hidden_layers if hasattr(config, "num_hidden_layers") else config.n_layers


def model_layout(model: str):
    """``model``'s transformers config, for its layout only: the registry's architecture with default sizes
    (no download), else the config of its folder or hub id."""
    if model in MODELS:
        return AutoConfig.for_model(MODELS[model].architecture)
    try:
        return AutoConfig.from_pretrained(model)
    except OSError as error:
        raise BadInput(f"cannot read the config of model {model!r} (known offline: "
                       f"{sorted(MODELS)}): {error}") from error


def settings(fractions: Iterable[Fraction], positions: Sequence[str]) -> list[tuple[str, Fraction]]:
    """(position, fraction) pairs: clean and 100% once each, partial fractions at every position."""
    pairs = []
    for fraction in fractions:
        if fraction == 0:
            pairs.append(("none", fraction))
        elif fraction == 1:
            pairs.append(("all", fraction))
        else:
            pairs.extend((position, fraction) for position in positions)
    return pairs


def expand_block(block: Block) -> list[CellConfig]:
    for dataset in block.datasets:  # an unknown name fails here, not hours into the grid
        try:
            dataset_spec(dataset)
        except BadInput as error:
            raise BadInput(f"block {block.name!r}: {error}") from error
    fixed = dict(block.fixed)
    # "auto" (the default) becomes the precision this machine computes natively: a cell's config,
    # and so its identity, always names the arithmetic that produced it.
    fixed["precision"] = resolve_precision(str(fixed.get("precision", "auto")))
    init, scope = fixed.get("init", CellConfig.init), fixed.get("scope", CellConfig.scope)
    try:  # the corruption's own checks, which would otherwise fail only when a cell starts
        init_bound(init, 1)
        if not isinstance(scope, str):
            raise BadInput(f"scope must be text such as 'encoder+pooler', got {scope!r}")
        parse_scope(scope)
        # kind, strength, component and init together (CellConfig checks them again for every cell)
        check_corruption(fixed.get("corruption", CellConfig.corruption), fixed.get("strength", CellConfig.strength),
                         fixed.get("component", CellConfig.component), init=init, scope=scope)
    except BadInput as error:
        raise BadInput(f"block {block.name!r}: {error}") from None
    cells = []
    for model, fractions in block.models:
        n_layers = encoder_depth(model)
        if fixed.get("component", CellConfig.component) != "all":
            try:  # every parameter of the model's encoder layers belongs to one component (no weights loaded)
                check_components(model_layout(model))
            except BadInput as error:
                raise BadInput(f"block {block.name!r}, model {model}: {error}") from error
        for position, fraction in settings(fractions, block.positions):
            if position not in ("none", "all"):
                try:  # the same rule the corruption itself applies, checked before anything runs
                    layers_to_corrupt(n_layers, position, float(fraction), fixed.get("rounding"))
                except BadInput as error:
                    raise BadInput(f"block {block.name!r}, model {model}: {error}") from error
            for dataset, pooling, mode, lr, seed in product(block.datasets, block.poolings, block.modes,
                                                             block.lrs, block.seeds):
                try:
                    cells.append(CellConfig(model=model, dataset=dataset, position=position, fraction=float(fraction),
                                            pooling=pooling, mode=mode, lr=lr, seed=seed, **fixed))
                except (BadInput, TypeError) as error:  # TypeError: e.g. epochs: "three"
                    raise BadInput(f"block {block.name!r}: {error}") from error
    return cells


def expand(profile: Profile) -> list[CellConfig]:
    """Every cell of the profile: the union of its blocks, in order, each cell once; a profile whose Figure 1 or
    representation analysis names a cell outside the grid fails here, not after the grid."""
    unique = {cell.hash: cell for block in profile.blocks for cell in expand_block(block)}
    cells = list(unique.values())
    tsne_cells(profile, cells)
    analysis_cells(profile, cells)
    return cells


def tsne_cells(profile: Profile, cells: Sequence[CellConfig]) -> dict[str, list[CellConfig]]:
    """Figure 1's four panels -> the grid cells behind each (one per learning rate)."""
    spec = profile.tsne
    if spec is None:
        return {}
    wanted = {"clean": ("none", 0.0), f"top {fraction_label(spec.fraction)}": ("top", float(spec.fraction)),
              f"bottom {fraction_label(spec.fraction)}": ("bottom", float(spec.fraction)), "100%": ("all", 1.0)}
    panels = {}
    for panel, (position, fraction) in wanted.items():
        panels[panel] = [c for c in cells if (c.model, c.dataset, c.seed, c.pooling, c.mode, c.position, c.fraction)
                         == (spec.model, spec.dataset, spec.seed, spec.pooling, spec.mode, position, fraction)]
        if not panels[panel]:
            raise BadInput(f"profile {profile.name!r}: tsne panel {panel!r} ({spec.model} {spec.dataset} seed "
                           f"{spec.seed} {spec.pooling} {spec.mode}) is not a cell of the grid; add it to a block")
    return panels


def analysis_cells(profile: Profile, cells: Sequence[CellConfig]) -> dict[tuple[str, int], CellConfig]:
    """(setting, seed) -> the grid cell whose layers the representation analysis measures
    (settings ``clean``, ``top``, ``bottom``, ``100%``)."""
    spec = profile.analysis
    if spec is None:
        return {}
    wanted = {"clean": ("none", 0.0), "top": ("top", float(spec.fraction)), "bottom": ("bottom", float(spec.fraction)),
              "100%": ("all", 1.0)}
    chosen = {}
    for (setting, (position, fraction)), seed in product(wanted.items(), spec.seeds):
        found = [c for c in cells if (c.model, c.dataset, c.seed, c.pooling, c.mode, c.position, c.fraction)
                 == (spec.model, spec.dataset, seed, spec.pooling, spec.mode, position, fraction)
                 and (spec.lr is None or c.lr == spec.lr)]
        if len(found) != 1:
            what = (f"{setting} ({spec.model} {spec.dataset} seed {seed} {spec.pooling} {spec.mode}"
                    + (f" lr {spec.lr:g}" if spec.lr is not None else "") + ")")
            raise BadInput(f"profile {profile.name!r}: analysis cell {what} "
                           + ("is not a cell of the grid; add it to a block" if not found else
                              f"matches {len(found)} cells (one per lr): give the analysis an lr"))
        chosen[(setting, seed)] = found[0]
    return chosen


def saves_vectors(profile: Profile, cells: Sequence[CellConfig]) -> set[str]:
    """Hashes of the cells that save their vectors: Figure 1's t-SNE cells and the analysis' cells."""
    return ({c.hash for panel in tsne_cells(profile, cells).values() for c in panel}
            | {c.hash for c in analysis_cells(profile, cells).values()})


def fraction_label(fraction: float | Fraction) -> str:
    return f"{float(fraction):.0%}"


def describe(config: CellConfig) -> str:
    """One line naming a cell, as the paper's tables would."""
    setting = {"none": "clean", "all": "100%"}.get(config.position)
    setting = setting or f"{config.position} {Fraction(config.fraction).limit_denominator(100)}"
    damage = "" if config.corruption == IDENTITY_DEFAULTS["corruption"] else f" {config.corruption}"
    damage += "" if config.strength is None else f"({config.strength:g})"
    damage += "" if config.component == IDENTITY_DEFAULTS["component"] else f" {config.component}"
    damage += " probe-dropout" if config.probe_dropout else ""
    damage += "" if config.test_scoring == IDENTITY_DEFAULTS["test_scoring"] else f" test={config.test_scoring}"
    damage += "" if config.init == DEFAULT_INIT else f" init={config.init}"
    return (f"{config.model} {config.dataset} {setting}{damage} {config.pooling} {config.mode} lr={config.lr:g} "
            f"seed={config.seed}")
