"""The paper's corruption method (Section 3), exactly.

For every chosen encoder layer:
  * every LayerNorm weight := 1.0 and bias := 0.0;
  * every other weight matrix is re-initialised from a Kaiming-uniform distribution;
  * every bias := 0.0.

The layers are the contiguous bottom or top block covering ``fraction`` of the encoder's layers
(the paper's "25% (1-3)" on BERT-base is bottom layers 1-3, i.e. 0-based indices 0, 1, 2).

The paper says "Kaiming uniform" without the gain. Our default, ``kaiming_uniform``, is what
``torch.nn.Linear`` itself uses (``a=sqrt(5)``, i.e. U(-1/sqrt(fan_in), +1/sqrt(fan_in))); the
alternatives are ``kaiming_uniform_a0`` (He et al.'s ReLU gain: U(+-sqrt(6/fan_in))) and
``normal_0.02`` (BERT's own initialiser, as Zhang et al. 2021 used for top-layer re-init).

Scope: by default only the encoder layers are touched (embeddings and pooler stay pretrained);
``scope="encoder+embeddings"``, ``"encoder+pooler"`` or ``"encoder+embeddings+pooler"`` widen it.
Extra scopes are corrupted whenever at least one layer is (a clean model stays clean).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable

import torch
from torch import nn

from harness import BadInput

POSITIONS = ("bottom", "top")
ROUNDINGS = ("floor", "ceil", "nearest")
INITS = ("kaiming_uniform", "kaiming_uniform_a0", "normal_0.02")
SCOPE_PARTS = ("encoder", "embeddings", "pooler")

# Where each supported architecture keeps its encoder blocks, embeddings and pooler, relative to
# ``model.base_model``. An architecture not listed here is refused, never guessed.
ARCHITECTURES: dict[str, dict[str, str | None]] = {
    "bert": {"layers": "encoder.layer", "embeddings": "embeddings", "pooler": "pooler"},
    "distilbert": {"layers": "transformer.layer", "embeddings": "embeddings", "pooler": None},
}


def layers_to_corrupt(
    n_layers: int, position: str, fraction: float, rounding: str | None = None
) -> list[int]:
    """0-based indices of the contiguous bottom/top block holding ``fraction`` of ``n_layers``.

    A fraction that is not a whole number of layers (25% of 6 = 1.5) is refused unless
    ``rounding`` names a rule: ``floor``, ``ceil`` or ``nearest`` (ties round up).
    """
    if position not in POSITIONS:
        raise BadInput(f"position must be one of {POSITIONS}, got {position!r}")
    if not isinstance(n_layers, int) or n_layers < 1:
        raise BadInput(f"n_layers must be a positive integer, got {n_layers!r}")
    if not (isinstance(fraction, (int, float)) and 0.0 <= fraction <= 1.0):
        raise BadInput(f"fraction must be a number in [0, 1] (0 = clean, 1 = all layers), got {fraction!r}")
    if rounding is not None and rounding not in ROUNDINGS:
        raise BadInput(f"rounding must be None or one of {ROUNDINGS}, got {rounding!r}")

    exact = fraction * n_layers
    nearest_whole = round(exact)
    if math.isclose(exact, nearest_whole, abs_tol=1e-9):
        count = int(nearest_whole)
    elif rounding is None:
        raise BadInput(
            f"fraction {fraction} of {n_layers} layers is {exact:g} layers, not a whole number; "
            f"choose a fraction that is a multiple of 1/{n_layers} or pass rounding as one of {ROUNDINGS}"
        )
    elif rounding == "floor":
        count = math.floor(exact)
    elif rounding == "ceil":
        count = math.ceil(exact)
    else:
        # Snap float noise first: 15/22 of 11 layers is 7.4999999..., a tie that must round up.
        count = math.floor(round(exact, 9) + 0.5)

    if position == "bottom":
        return list(range(count))
    return list(range(n_layers - count, n_layers))


def init_bound(init: str, fan_in: int) -> float | None:
    """Half-width of the uniform re-initialisation, or None for the (unbounded) normal init."""
    if init == "kaiming_uniform":
        return 1.0 / math.sqrt(fan_in)
    if init == "kaiming_uniform_a0":
        return math.sqrt(6.0 / fan_in)
    if init == "normal_0.02":
        return None
    raise BadInput(f"init must be one of {INITS}, got {init!r}")


def _initialiser(init: str) -> Callable[[torch.Tensor, torch.Generator], None]:
    if init == "kaiming_uniform":
        return lambda t, g: nn.init.kaiming_uniform_(t, a=math.sqrt(5), generator=g)
    if init == "kaiming_uniform_a0":
        return lambda t, g: nn.init.kaiming_uniform_(t, a=0.0, generator=g)
    if init == "normal_0.02":
        return lambda t, g: nn.init.normal_(t, mean=0.0, std=0.02, generator=g)
    raise BadInput(f"init must be one of {INITS}, got {init!r}")


def _parameter_seed(seed: int, name: str) -> int:
    # One generator per parameter, keyed by its name: a layer gets the same fresh weights whether
    # 2 or 6 layers are corrupted, so settings differ only in *which* layers were reset.
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def architecture(model: nn.Module) -> dict[str, str | None]:
    """The layout entry for ``model``'s architecture (by ``config.model_type``)."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in ARCHITECTURES:
        raise BadInput(
            f"unsupported architecture {model_type!r}: corruption knows {sorted(ARCHITECTURES)}; "
            "add its layer path to harness.corrupt.ARCHITECTURES"
        )
    return ARCHITECTURES[model_type]


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The encoder's transformer blocks, bottom first."""
    layers_path = architecture(model)["layers"]  # first: a model that is not a HF model has no base_model
    return model.base_model.get_submodule(layers_path)


def parse_scope(scope: str) -> set[str]:
    parts = set(scope.split("+"))
    if "encoder" not in parts or not parts <= set(SCOPE_PARTS):
        raise BadInput(
            f"scope must be 'encoder' optionally joined with '+embeddings' and/or '+pooler' "
            f"(parts: {SCOPE_PARTS}), got {scope!r}"
        )
    return parts


def _chosen_modules(model: nn.Module, layer_ids: list[int], scope: set[str]) -> list[tuple[str, nn.Module]]:
    """(qualified prefix, module) for every module whose parameters get reset."""
    layout = architecture(model)
    base_prefix = model.base_model_prefix
    layers_path = layout["layers"]
    layers = encoder_layers(model)
    pooler = layout["pooler"] and getattr(model.base_model, layout["pooler"], None)
    if "pooler" in scope and pooler is None:
        # Refused even when no layer is chosen, so a scope that cannot apply fails on the clean
        # baseline cell too instead of only on the corrupted ones.
        raise BadInput(f"scope {'+'.join(sorted(scope))!r} asks for a pooler, but {model.config.model_type} has none")
    chosen = [(f"{base_prefix}.{layers_path}.{i}", layers[i]) for i in layer_ids]
    if layer_ids and "embeddings" in scope:
        chosen.append((f"{base_prefix}.{layout['embeddings']}", model.base_model.get_submodule(layout["embeddings"])))
    if layer_ids and "pooler" in scope:
        chosen.append((f"{base_prefix}.{layout['pooler']}", pooler))
    return chosen


@torch.no_grad()
def corrupt(
    model: nn.Module,
    position: str,
    fraction: float,
    *,
    seed: int = 0,
    init: str = "kaiming_uniform",
    scope: str = "encoder",
    rounding: str | None = None,
) -> list[str]:
    """Apply the paper's corruption in place; return the names of the parameters it reset.

    Defaults: ``init="kaiming_uniform"`` (torch's nn.Linear default, U(+-1/sqrt(fan_in))),
    ``scope="encoder"`` (embeddings and pooler untouched), ``rounding=None`` (refuse fractions
    that are not a whole number of layers). The same ``seed`` gives bit-identical weights on any
    device: values are drawn on the CPU and copied into place.
    """
    initialise = _initialiser(init)
    parts = parse_scope(scope)
    layer_ids = layers_to_corrupt(len(encoder_layers(model)), position, fraction, rounding)

    reset: list[str] = []
    for prefix, module in _chosen_modules(model, layer_ids, parts):
        for sub_name, sub in module.named_modules():
            for param_name, param in sub.named_parameters(recurse=False):
                name = ".".join(p for p in (prefix, sub_name, param_name) if p)
                if isinstance(sub, nn.LayerNorm):
                    param.fill_(1.0 if param_name == "weight" else 0.0)
                elif param_name == "bias":
                    param.zero_()
                elif param.dim() >= 2:
                    fresh = torch.empty(param.shape, dtype=torch.float32)
                    initialise(fresh, torch.Generator().manual_seed(_parameter_seed(seed, name)))
                    param.copy_(fresh)
                else:
                    raise BadInput(f"don't know how to corrupt 1-D parameter {name} of {type(sub).__name__}")
                reset.append(name)
    return reset
