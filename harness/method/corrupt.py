"""The paper's corruption method (Section 3), exactly, and other kinds of damage to compare it with.

The paper's method (``kind="reinit"``, the default). For every chosen encoder layer:
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

Other kinds (``kind``; each applied to every chosen tensor, ``strength`` where it takes one):
  * ``noise``: w += N(0, (strength * std(w))^2), std(w) the tensor's own (population) standard
    deviation; a tensor whose std is 0 (an all-zero bias, a LayerNorm weight still all ones) gets
    no noise at all. ``strength`` >= 0;
  * ``shuffle``: the tensor's entries permuted at random: the same values, no structure;
  * ``zero``: the tensor := 0, LayerNorm weights included. Under BERT's post-LN a layer's output is
    its last LayerNorm's, so a zeroed layer outputs that LayerNorm's bias, now 0, whatever its input:
    the layer's output is killed, and nothing of the input reaches the layers above it
    (``component="attention"`` or ``"ffn"`` zeroes only those maps and keeps the residual path);
  * ``bitflip``: the fault-injection model: every bit of every float32 value flips independently
    with probability ``strength`` (a rate in [0, 1]). Drawn per block of 2**20 bits: the number of
    flips ~ Binomial(bits in the block, rate), then that many distinct positions uniformly, XORed
    into the int32 view (the sum of the blocks' independent binomials is Binomial(all bits, rate):
    the same fault model as one count over the whole tensor, with memory bounded at any rate).
    Values may become NaN or infinite: that is the fault model, and a run whose loss is not finite
    is recorded as diverged.

Component (``component``): within the chosen layers, ``attention`` is the self-attention's linear
maps (query, key, value and output projections, weights and biases; not its LayerNorm), ``ffn`` the
feed-forward's two linear maps, ``layernorm`` the layer's two LayerNorms; ``all`` (default) is the
whole layer. The three partition a layer's parameters (``ARCHITECTURES`` names them; a parameter
that matches none is refused, never guessed). ``layernorm`` with ``reinit`` is the LayerNorm reset
the paper bundles with re-initialisation (weight 1, bias 0). Components apply to encoder layers
only, so they need ``scope="encoder"``.

Randomness, for every kind: one generator per parameter, keyed by (seed, parameter name) and for
kinds other than reinit by the kind too; values are drawn on the CPU and copied into place, so the
same seed gives bit-identical weights on any device, and a layer is damaged the same way whether 2
or 6 layers are chosen. ``reinit`` draws from torch's generator exactly as it always has; the other
kinds draw from numpy's (PCG64).
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers import AutoModel

from harness.errors import BadInput
from harness.method.config import CORRUPTIONS, check_corruption

POSITIONS = ("bottom", "top")
ROUNDINGS = ("floor", "ceil", "nearest")
INITS = ("kaiming_uniform", "kaiming_uniform_a0", "normal_0.02")
SCOPE_PARTS = ("encoder", "embeddings", "pooler")
KINDS = CORRUPTIONS  # reinit (the paper's), noise, shuffle, zero, bitflip: see the module docstring
BITFLIP_BLOCK_BITS = 1 << 20  # bitflip draws positions per block of this many bits (32,768 float32 values)

# Where each supported architecture keeps its encoder blocks, embeddings and pooler, relative to
# ``model.base_model``, and which modules of an encoder block make up each component (module paths
# relative to the block; a parameter belongs to the component whose module holds it). An
# architecture not listed here is refused, and a block's parameter of no component too: never guessed.
ARCHITECTURES: dict[str, dict] = {
    "bert": {
        "layers": "encoder.layer", "embeddings": "embeddings", "pooler": "pooler",
        "components": {
            "attention": ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"),
            "ffn": ("intermediate.dense", "output.dense"),
            "layernorm": ("attention.output.LayerNorm", "output.LayerNorm"),
        },
    },
    "distilbert": {
        "layers": "transformer.layer", "embeddings": "embeddings", "pooler": None,
        "components": {
            "attention": ("attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin"),
            "ffn": ("ffn.lin1", "ffn.lin2"),
            "layernorm": ("sa_layer_norm", "output_layer_norm"),
        },
    },
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


def _parameter_seed(seed: int, name: str, kind: str = "reinit") -> int:
    # One generator per parameter, keyed by its name: a layer gets the same fresh weights whether
    # 2 or 6 layers are corrupted, so settings differ only in *which* layers were reset. reinit keeps
    # the key it always had (its draws must not move); every other kind adds its name to the key.
    key = f"{seed}:{name}" if kind == "reinit" else f"{seed}:{kind}:{name}"
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "little")


def architecture(model: nn.Module) -> dict:
    """The layout entry for ``model``'s architecture (by ``config.model_type``)."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in ARCHITECTURES:
        raise BadInput(
            f"unsupported architecture {model_type!r}: corruption knows {sorted(ARCHITECTURES)}; "
            "add its layer path to harness.method.corrupt.ARCHITECTURES"
        )
    return ARCHITECTURES[model_type]


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The encoder's transformer blocks, bottom first."""
    layers_path = architecture(model)["layers"]  # first: a model that is not a HF model has no base_model
    return model.base_model.get_submodule(layers_path)


def layer_component(model_type: str, name: str) -> str:
    """The component (``attention``, ``ffn`` or ``layernorm``) of a parameter of an encoder layer.

    ``name`` is relative to the layer (``attention.self.query.weight``). A parameter that no
    component of ``ARCHITECTURES`` names, or that two name, is refused: never guessed.
    """
    if model_type not in ARCHITECTURES:
        raise BadInput(f"unsupported architecture {model_type!r}: corruption knows {sorted(ARCHITECTURES)}")
    table = ARCHITECTURES[model_type]["components"]
    found = [component for component, modules in table.items()
             if any(name.startswith(module + ".") for module in modules)]
    if len(found) != 1:
        how = "matches no component" if not found else f"matches several components {found}"
        raise BadInput(f"parameter {name!r} of a {model_type} encoder layer {how} ({table}); "
                       "name its module under one component in harness.method.corrupt.ARCHITECTURES")
    return found[0]


def check_components(config) -> None:
    """Refuse now, before any cell starts, a model whose encoder layer holds a parameter of no component.

    ``config``: the model's transformers config (only its layout is used: a one-layer skeleton is
    built on the meta device, without memory or weights).
    """
    model_type = getattr(config, "model_type", None)
    if model_type not in ARCHITECTURES:
        raise BadInput(f"unsupported architecture {model_type!r}: corruption knows {sorted(ARCHITECTURES)}")
    config = copy.deepcopy(config)
    config.num_hidden_layers = 1  # DistilBERT's n_layers too (transformers maps the name)
    with torch.device("meta"):
        skeleton = AutoModel.from_config(config)
    layer = skeleton.get_submodule(ARCHITECTURES[model_type]["layers"])[0]
    for name, _ in layer.named_parameters():
        layer_component(model_type, name)


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


# ---------------------------------------------------------------- the kinds, one tensor at a time


def flip_bits(words: np.ndarray, rate: float, rng: np.random.Generator) -> int:
    """Flip every bit of ``words`` (uint32, in place) independently with probability ``rate``; return how many.

    Per block of ``BITFLIP_BLOCK_BITS`` bits: a count ~ Binomial(block bits, rate), then that many
    distinct positions drawn uniformly (``Generator.choice`` without replacement: O(count) memory at
    small rates) and XORed in. Bit b of word i is position 32 i + b (bit 0: the float's lowest
    mantissa bit, bit 31: its sign).
    """
    n_bits = 32 * words.size
    flipped = 0
    for start in range(0, n_bits, BITFLIP_BLOCK_BITS):
        size = min(BITFLIP_BLOCK_BITS, n_bits - start)  # a multiple of 32: whole words
        count = int(rng.binomial(size, rate))
        if count == 0:
            continue
        hit = np.zeros(size, dtype=bool)
        hit[rng.choice(size, size=count, replace=False)] = True
        mask = np.packbits(hit, bitorder="little").view("<u4")  # bit b of word i = hit[32 i + b]
        words[start // 32 : (start + size) // 32] ^= mask
        flipped += count
    return flipped


def _damaged(kind: str, values: torch.Tensor, strength: float | None, rng: np.random.Generator) -> tuple[torch.Tensor, int]:
    """The ``kind`` damage of a CPU float32 tensor (a new tensor) and the bits it flipped (bitflip)."""
    if kind == "noise":
        exact = values.numpy().astype(np.float64)
        scale = strength * float(exact.std())  # population std; 0 for a constant tensor: no noise
        if scale == 0.0:
            return values, 0
        return torch.from_numpy((exact + scale * rng.standard_normal(exact.shape)).astype(np.float32)), 0
    if kind == "shuffle":
        order = torch.from_numpy(rng.permutation(values.numel()))
        return values.reshape(-1)[order].reshape(values.shape), 0
    if kind == "zero":
        return torch.zeros_like(values), 0
    if kind == "bitflip":
        damaged = values.contiguous()  # values is already this call's own copy
        flipped = flip_bits(damaged.numpy().view(np.uint32).reshape(-1), strength, rng)
        return damaged, flipped
    raise BadInput(f"corruption kind must be one of {CORRUPTIONS}, got {kind!r}")


@dataclass(frozen=True)
class Corruption:
    """What ``apply_corruption`` did: the parameters it corrupted and, where cheap, how much."""

    kind: str
    component: str
    strength: float | None
    parameters: tuple[str, ...]  # qualified names, in the model's order
    n_values: int  # scalars in those parameters
    flipped_bits: int | None  # bitflip: bits flipped in all (the drawn counts); None for other kinds
    non_finite: int  # values NaN or infinite afterwards (bitflip can make them: the fault model)

    def summary(self) -> dict:
        return {"kind": self.kind, "component": self.component, "strength": self.strength,
                "n_parameters": len(self.parameters), "n_values": self.n_values,
                "flipped_bits": self.flipped_bits, "non_finite_values": self.non_finite}


@torch.no_grad()
def apply_corruption(
    model: nn.Module,
    position: str,
    fraction: float,
    *,
    seed: int = 0,
    kind: str = "reinit",
    strength: float | None = None,
    component: str = "all",
    init: str = "kaiming_uniform",
    scope: str = "encoder",
    rounding: str | None = None,
) -> Corruption:
    """Corrupt ``model`` in place (see the module docstring) and say what was done.

    Every argument is checked before any weight changes: a refused call leaves the model as it was.
    """
    strength = check_corruption(kind, strength, component, init=init, scope=scope)
    initialise = _initialiser(init)
    parts = parse_scope(scope)
    layer_ids = layers_to_corrupt(len(encoder_layers(model)), position, fraction, rounding)
    model_type = model.config.model_type

    chosen: list[tuple[str, nn.Module, str, nn.Parameter]] = []
    for prefix, module in _chosen_modules(model, layer_ids, parts):
        for sub_name, sub in module.named_modules():
            for param_name, param in sub.named_parameters(recurse=False):
                relative = ".".join(p for p in (sub_name, param_name) if p)
                if component != "all" and layer_component(model_type, relative) != component:
                    continue
                name = ".".join(p for p in (prefix, sub_name, param_name) if p)
                if kind == "reinit" and not (isinstance(sub, nn.LayerNorm) or param_name == "bias" or param.dim() >= 2):
                    raise BadInput(f"don't know how to corrupt 1-D parameter {name} of {type(sub).__name__}")
                if kind == "bitflip" and param.dtype != torch.float32:
                    raise BadInput(f"bitflip flips the bits of float32 values; {name} is {param.dtype}")
                chosen.append((name, sub, param_name, param))

    flipped = 0
    for name, sub, param_name, param in chosen:
        if kind == "reinit":
            if isinstance(sub, nn.LayerNorm):
                param.fill_(1.0 if param_name == "weight" else 0.0)
            elif param_name == "bias":
                param.zero_()
            else:
                fresh = torch.empty(param.shape, dtype=torch.float32)
                initialise(fresh, torch.Generator().manual_seed(_parameter_seed(seed, name)))
                param.copy_(fresh)
        else:
            rng = np.random.default_rng(_parameter_seed(seed, name, kind))
            damaged, bits = _damaged(kind, param.detach().to("cpu", torch.float32, copy=True), strength, rng)
            param.copy_(damaged)
            flipped += bits
    return Corruption(
        kind=kind, component=component, strength=strength, parameters=tuple(name for name, *_ in chosen),
        n_values=sum(param.numel() for *_, param in chosen), flipped_bits=flipped if kind == "bitflip" else None,
        non_finite=sum(int((~torch.isfinite(param)).sum()) for *_, param in chosen),
    )


def corrupt(
    model: nn.Module,
    position: str,
    fraction: float,
    *,
    seed: int = 0,
    init: str = "kaiming_uniform",
    scope: str = "encoder",
    rounding: str | None = None,
    kind: str = "reinit",
    strength: float | None = None,
    component: str = "all",
) -> list[str]:
    """Apply the corruption in place (the paper's by default); return the names of the parameters it changed.

    Defaults: ``kind="reinit"`` (the paper's method), ``component="all"``, ``init="kaiming_uniform"``
    (torch's nn.Linear default, U(+-1/sqrt(fan_in))), ``scope="encoder"`` (embeddings and pooler
    untouched), ``rounding=None`` (refuse fractions that are not a whole number of layers). The
    same ``seed`` gives bit-identical weights on any device: values are drawn on the CPU and
    copied into place. ``apply_corruption`` also reports what the damage did.
    """
    return list(apply_corruption(model, position, fraction, seed=seed, kind=kind, strength=strength,
                                 component=component, init=init, scope=scope, rounding=rounding).parameters)
