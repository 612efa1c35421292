"""Issue 14: kinds of corruption besides the paper's, components of a layer, and the probe's dropout.

Kinds (``noise``, ``shuffle``, ``zero``, ``bitflip``) and components (``attention``, ``ffn``,
``layernorm``) are checked as properties over random tiny BERT/DistilBERT models, "scrambled" as in
tests/test_corrupt.py (every parameter in [1.5, 2.5], so a changed value is told from an untouched
one). Then: the statistics each kind promises (tolerances from the sample size), the paper's
re-initialisation bit for bit as it was, bad input through every door (corrupt(), CellConfig, the
command line, params.yaml), the identity of every existing cell kept, probe dropout, and tiny cells
end to end.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from fixtures import random_encoded
from hypothesis import given, settings
from hypothesis import strategies as st
from test_corrupt import LAYERS, SCOPES, Spec, scrambled, snapshot
from torch import nn
from transformers import AutoConfig

import harness.method.corrupt
from harness.cli import main
from harness.errors import BadInput
from harness.grid.expand import describe, expand
from harness.grid.profiles import load_profile
from harness.method.cell import run_cell
from harness.method.config import COMPONENTS, IDENTITY_DEFAULTS, CellConfig, cell_identity
from harness.method.corrupt import (
    BITFLIP_BLOCK_BITS,
    INITS,
    KINDS,
    POSITIONS,
    _parameter_seed,
    apply_corruption,
    check_components,
    corrupt,
    flip_bits,
    layer_component,
    layers_to_corrupt,
)
from harness.method.models import load_classifier, sentence_vector
from harness.method.train import TrainSettings, train_and_evaluate

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "datasets"
MAX_EXAMPLES = 25
SIGMAS = 6  # every statistical check: a correct implementation fails it with probability ~1e-9

# Written out here, not read from harness.method.corrupt.ARCHITECTURES, so the tests check that table.
COMPONENT_PARAMETERS = {
    "bert": {
        "attention": {f"attention.{m}.{p}" for m in ("self.query", "self.key", "self.value", "output.dense")
                      for p in ("weight", "bias")},
        "ffn": {f"{m}.{p}" for m in ("intermediate.dense", "output.dense") for p in ("weight", "bias")},
        "layernorm": {f"{m}.{p}" for m in ("attention.output.LayerNorm", "output.LayerNorm") for p in ("weight", "bias")},
    },
    "distilbert": {
        "attention": {f"attention.{m}.{p}" for m in ("q_lin", "k_lin", "v_lin", "out_lin") for p in ("weight", "bias")},
        "ffn": {f"ffn.{m}.{p}" for m in ("lin1", "lin2") for p in ("weight", "bias")},
        "layernorm": {f"{m}.{p}" for m in ("sa_layer_norm", "output_layer_norm") for p in ("weight", "bias")},
    },
}
STRENGTHS = {"noise": st.sampled_from([0.0, 0.01, 0.3, 2.0]), "bitflip": st.sampled_from([0.0, 1e-3, 0.02, 1.0])}

specs = st.builds(Spec, arch=st.sampled_from(["bert", "distilbert"]), n_layers=st.integers(1, 6),
                  hidden=st.sampled_from([16, 24]))
seeds = st.integers(0, 2**31 - 1)


def bits(tensor: torch.Tensor) -> torch.Tensor:
    """The float32 bit patterns (NaN-safe equality: torch.equal says NaN != NaN)."""
    return tensor.detach().float().contiguous().view(torch.int32)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(bits(a), bits(b))


def differing_bits(a: torch.Tensor, b: torch.Tensor) -> int:
    xor = (bits(a) ^ bits(b)).numpy().view(np.uint32)
    return int(np.unpackbits(xor.view(np.uint8)).sum())


def draw_strength(data, kind: str) -> float | None:
    return data.draw(STRENGTHS[kind], label="strength") if kind in STRENGTHS else None


def expected_names(spec: Spec, layers: list[int], component: str) -> set[str]:
    """Qualified names of the parameters ``component`` of ``layers`` holds (from the table above)."""
    table = COMPONENT_PARAMETERS[spec.arch]
    relative = set().union(*table.values()) if component == "all" else table[component]
    return {f"{LAYERS[spec.arch]}.{i}.{name}" for i in layers for name in relative}


def is_layer_norm(name: str) -> bool:
    return "LayerNorm" in name or "layer_norm" in name


# ---------------------------------------------------------------- every kind, every component: what changes


@settings(max_examples=MAX_EXAMPLES * 2, deadline=None)
@given(spec=specs, position=st.sampled_from(POSITIONS), kind=st.sampled_from(KINDS),
       component=st.sampled_from(COMPONENTS), seed=seeds, data=st.data())
def test_each_kind_damages_exactly_the_chosen_component_of_the_chosen_layers(spec, position, kind, component, seed,
                                                                              data):
    count = data.draw(st.integers(0, spec.n_layers), label="count")
    strength = draw_strength(data, kind)
    model = scrambled(spec)
    before = snapshot(model)

    done = apply_corruption(model, position, count / spec.n_layers, seed=seed, kind=kind, strength=strength,
                            component=component)

    expected = expected_names(spec, layers_to_corrupt(spec.n_layers, position, count / spec.n_layers), component)
    assert set(done.parameters) == expected and len(done.parameters) == len(expected)
    after = snapshot(model)
    assert done.n_values == sum(before[name].numel() for name in expected)
    assert done.non_finite == sum(int((~torch.isfinite(after[name])).sum()) for name in expected)
    flipped = 0
    for name, old in before.items():
        new = after[name]
        if name not in expected:  # other layers, other components, embeddings, pooler, head
            assert same_bits(new, old), f"{name} is not chosen but changed"
        elif kind == "reinit":
            if is_layer_norm(name):
                assert torch.all(new == (1.0 if name.endswith("weight") else 0.0)), name
            elif name.endswith("bias"):
                assert torch.all(new == 0.0), name
            else:
                assert not torch.equal(new, old), name
        elif kind == "zero":
            assert torch.all(new == 0.0), name
        elif kind == "shuffle":
            assert torch.equal(new.flatten().sort().values, old.flatten().sort().values), f"{name}: other values"
            assert not torch.equal(new, old), f"{name}: still in order"  # P(identity) = 1/16! at most
        elif kind == "noise":
            assert torch.equal(new, old) == (strength == 0.0), name
        else:
            flipped += differing_bits(new, old)
    if kind == "bitflip":
        assert flipped == done.flipped_bits  # the bits that differ are exactly the drawn count
    else:
        assert done.flipped_bits is None


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(spec=specs, position=st.sampled_from(POSITIONS), kind=st.sampled_from(KINDS),
       component=st.sampled_from(COMPONENTS), data=st.data())
def test_same_seed_same_damage_and_another_seed_other_damage(spec, position, kind, component, data):
    count = data.draw(st.integers(1, spec.n_layers), label="count")
    seed, other = data.draw(st.lists(seeds, min_size=2, max_size=2, unique=True), label="seeds")
    strength = {"noise": 0.3, "bitflip": 0.05}.get(kind)
    first, again, different = scrambled(spec), scrambled(spec), scrambled(spec)
    arguments = dict(kind=kind, strength=strength, component=component)

    names = corrupt(first, position, count / spec.n_layers, seed=seed, **arguments)
    assert corrupt(again, position, count / spec.n_layers, seed=seed, **arguments) == names
    corrupt(different, position, count / spec.n_layers, seed=other, **arguments)

    first_p, again_p, different_p = snapshot(first), snapshot(again), snapshot(different)
    assert all(same_bits(first_p[name], again_p[name]) for name in first_p)
    # zero draws nothing, and reinit only its weight matrices (biases 0, LayerNorms 1 and 0); every other
    # kind's damage depends on the seed, tensor by tensor
    drawn = [n for n in names if first_p[n].numel() >= 16 and kind != "zero" and (kind != "reinit" or first_p[n].dim() == 2)]
    assert drawn or kind == "zero" or (kind, component) == ("reinit", "layernorm")  # LayerNorms reset to 1 and 0
    for name in drawn:
        assert not same_bits(first_p[name], different_p[name]), f"{name} ignores the seed"


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(spec=specs.filter(lambda s: s.n_layers >= 2), position=st.sampled_from(POSITIONS),
       kind=st.sampled_from(KINDS), component=st.sampled_from(COMPONENTS), seed=seeds, data=st.data())
def test_a_layer_gets_the_same_damage_whatever_the_fraction(spec, position, kind, component, seed, data):
    small = data.draw(st.integers(1, spec.n_layers - 1), label="small")
    strength = draw_strength(data, kind)
    fewer, more = scrambled(spec), scrambled(spec)
    arguments = dict(seed=seed, kind=kind, strength=strength, component=component)
    fewer_names = corrupt(fewer, position, small / spec.n_layers, **arguments)
    more_names = corrupt(more, position, (small + 1) / spec.n_layers, **arguments)
    assert set(fewer_names) < set(more_names)
    more_p = snapshot(more)
    for name, param in fewer.named_parameters():
        if name in fewer_names:
            assert same_bits(param, more_p[name]), name


def test_each_kind_draws_from_its_own_generator_and_reinit_keeps_its_key():
    assert _parameter_seed(3, "a.b") == int.from_bytes(hashlib.sha256(b"3:a.b").digest()[:8], "little")
    assert len({_parameter_seed(3, "a.b", kind) for kind in KINDS}) == len(KINDS)


# ---------------------------------------------------------------- reinit: the paper's method, bit for bit as before


@torch.no_grad()
def reference_reinit(model: nn.Module, position: str, fraction: float, *, seed: int, init: str, scope: str) -> list[str]:
    """harness.method.corrupt.corrupt as it was before corruption kinds existed (commit 84b483b), copied verbatim in effect."""
    from harness.method.corrupt import _chosen_modules, _initialiser, encoder_layers, parse_scope

    initialise = _initialiser(init)
    layer_ids = layers_to_corrupt(len(encoder_layers(model)), position, fraction)
    reset = []
    for prefix, module in _chosen_modules(model, layer_ids, parse_scope(scope)):
        for sub_name, sub in module.named_modules():
            for param_name, param in sub.named_parameters(recurse=False):
                name = ".".join(p for p in (prefix, sub_name, param_name) if p)
                if isinstance(sub, nn.LayerNorm):
                    param.fill_(1.0 if param_name == "weight" else 0.0)
                elif param_name == "bias":
                    param.zero_()
                else:
                    fresh = torch.empty(param.shape, dtype=torch.float32)
                    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
                    initialise(fresh, torch.Generator().manual_seed(int.from_bytes(digest[:8], "little")))
                    param.copy_(fresh)
                reset.append(name)
    return reset


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(spec=specs, position=st.sampled_from(POSITIONS), init=st.sampled_from(INITS), seed=seeds, data=st.data())
def test_reinit_of_the_whole_layer_is_bit_identical_to_the_old_corrupt(spec, position, init, seed, data):
    count = data.draw(st.integers(0, spec.n_layers), label="count")
    scope = data.draw(st.sampled_from(SCOPES[spec.arch]), label="scope")
    new, old = scrambled(spec), scrambled(spec)
    names = corrupt(new, position, count / spec.n_layers, seed=seed, init=init, scope=scope, kind="reinit",
                    component="all")
    assert names == reference_reinit(old, position, count / spec.n_layers, seed=seed, init=init, scope=scope)
    old_p = snapshot(old)
    assert all(same_bits(param, old_p[name]) for name, param in new.named_parameters())


def test_reinit_of_a_component_is_the_whole_layers_reinit_restricted_to_it():
    spec = Spec("bert", 4, 16)
    whole = scrambled(spec)
    corrupt(whole, "top", 0.5, seed=5)
    whole_p = snapshot(whole)
    for component in COMPONENTS[1:]:
        part = scrambled(spec)
        names = corrupt(part, "top", 0.5, seed=5, component=component)
        assert all(same_bits(param, whole_p[name]) for name, param in part.named_parameters() if name in names)


def test_layernorm_reinit_is_the_papers_reset_one_and_zero():
    model = scrambled(Spec("distilbert", 4, 16))
    names = corrupt(model, "bottom", 0.25, component="layernorm")
    params = dict(model.named_parameters())
    assert sorted(names) == sorted(f"{LAYERS['distilbert']}.0.{n}" for n in COMPONENT_PARAMETERS["distilbert"]["layernorm"])
    for name in names:
        assert torch.all(params[name] == (1.0 if name.endswith("weight") else 0.0)), name


# ---------------------------------------------------------------- each kind's own promise


def large_model() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    model = scrambled(Spec("bert", 2, 64))  # feed-forward matrices of 256 x 64 = 16,384 values
    return model, snapshot(model)


@pytest.mark.parametrize("strength", [0.01, 0.1, 1.0])
def test_noise_has_the_asked_std_relative_to_each_tensor(strength):
    model, before = large_model()
    names = corrupt(model, "top", 0.5, seed=11, kind="noise", strength=strength, component="ffn")
    after = snapshot(model)
    for name in (n for n in names if before[n].numel() >= 10_000):
        old, new = before[name].double().flatten(), after[name].double().flatten()
        z = ((new - old) / old.std(correction=0)).numpy()
        n = z.size
        # The sample std of n normals has standard error sigma / sqrt(2n), the mean sigma / sqrt(n).
        assert abs(z.std() - strength) < SIGMAS * strength / math.sqrt(2 * n), (name, z.std())
        assert abs(z.mean()) < SIGMAS * strength / math.sqrt(n), (name, z.mean())


def test_noise_leaves_a_tensor_of_std_zero_alone():
    model, _ = load_classifier("tiny-bert", 2)  # fresh: every LayerNorm weight 1 and bias 0
    before = snapshot(model)
    names = corrupt(model, "bottom", 1.0, kind="noise", strength=1.0, component="layernorm")
    assert names and all(same_bits(param, before[name]) for name, param in model.named_parameters())


def test_shuffle_keeps_every_value_and_loses_the_order():
    model, before = large_model()
    names = corrupt(model, "bottom", 1.0, seed=2, kind="shuffle")
    after = snapshot(model)
    for name in names:
        assert torch.equal(after[name].flatten().sort().values, before[name].flatten().sort().values), name
        kept = (after[name] == before[name]).double().mean().item()
        assert kept < 0.2, f"{name}: {kept:.0%} of the values kept their place"  # distinct values: ~1/n expected


@pytest.mark.parametrize("arch", ["bert", "distilbert"])
def test_zeroing_the_layernorms_kills_the_layers_output(arch):
    model, _ = load_classifier(f"tiny-{arch}", 2)
    corrupt(model, "top", 0.25, kind="zero", component="layernorm")
    ids = torch.tensor([[101, 2023, 2003, 102]])
    hidden = model.base_model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    assert torch.all(hidden == 0)  # post-LN: the last layer outputs its LayerNorm's (zeroed) bias


def test_zero_sets_every_chosen_tensor_to_zero_layernorm_weights_too():
    model = scrambled(Spec("bert", 2, 16))
    names = corrupt(model, "bottom", 0.5, kind="zero")
    params = dict(model.named_parameters())
    assert any(is_layer_norm(n) and n.endswith("weight") for n in names)
    assert all(torch.all(params[name] == 0) for name in names)


def _words(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-3, 3, n).astype(np.float32).view(np.uint32)


def test_bitflip_flips_the_drawn_count_with_binomial_mean_uniformly_over_positions():
    n_words, rate, draws = 40_000, 1e-3, 200  # 1.28 M bits: a full block of 2**20 bits and a partial one
    n_bits = 32 * n_words
    assert n_bits > BITFLIP_BLOCK_BITS
    original = _words(n_words)
    counts, per_position, per_half = [], np.zeros(32), np.zeros(2)
    for seed in range(draws):
        words = original.copy()
        count = flip_bits(words, rate, np.random.default_rng(seed))
        flipped = np.unpackbits((words ^ original).view(np.uint8), bitorder="little").reshape(n_words, 32)
        assert flipped.sum() == count  # distinct positions: each drawn flip is one differing bit
        counts.append(count)
        per_position += flipped.sum(0)
        per_half += [flipped[: n_words // 2].sum(), flipped[n_words // 2 :].sum()]
    mean, expected = np.mean(counts), rate * n_bits
    assert abs(mean - expected) < SIGMAS * math.sqrt(n_bits * rate * (1 - rate) / draws), mean
    # Every bit position of a float (mantissa, exponent, sign) and both halves of the tensor, equally often.
    for observed, cells in ((per_position, draws * n_words), (per_half, draws * n_bits // 2)):
        assert np.all(np.abs(observed - rate * cells) < SIGMAS * math.sqrt(cells * rate * (1 - rate))), observed


def test_bitflip_rate_zero_changes_nothing_and_rate_one_flips_every_bit():
    original = _words(50_000)
    words = original.copy()
    assert flip_bits(words, 0.0, np.random.default_rng(0)) == 0 and np.array_equal(words, original)
    assert flip_bits(words, 1.0, np.random.default_rng(0)) == 32 * words.size
    assert np.array_equal(words, ~original)

    model = scrambled(Spec("distilbert", 2, 16))
    before = snapshot(model)
    assert apply_corruption(model, "top", 0.5, kind="bitflip", strength=0.0).flipped_bits == 0
    assert all(same_bits(param, before[name]) for name, param in model.named_parameters())
    done = apply_corruption(model, "top", 0.5, kind="bitflip", strength=1.0)
    for name in done.parameters:
        assert torch.equal(bits(dict(model.named_parameters())[name]), ~bits(before[name])), name


def test_bitflip_may_make_non_finite_values_and_says_how_many():
    model, _ = load_classifier("tiny-bert", 2)  # zero biases: all bits flipped, 0.0 becomes NaN
    done = apply_corruption(model, "bottom", 0.25, kind="bitflip", strength=1.0)
    params = dict(model.named_parameters())
    assert done.non_finite == sum(int((~torch.isfinite(params[n])).sum()) for n in done.parameters) > 0


def test_bitflip_is_cheap_at_small_rates_on_a_bert_base_sized_matrix():
    words = _words(768 * 3072)  # 2.4 M values, 75 M bits
    # Measured in memory, not time (a clock flakes on a loaded machine): numpy reports its arrays to
    # tracemalloc, and a mask of all the bits would be >= words.nbytes (9.4 MB packed, 75 MB as bools).
    tracemalloc.start()
    try:
        count = flip_bits(words, 1e-6, np.random.default_rng(0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < words.nbytes / 2  # measured 2.2 MB: one block of BITFLIP_BLOCK_BITS at a time
    assert 0 < count < 200


# ---------------------------------------------------------------- components partition a layer


@pytest.mark.parametrize("arch", ["bert", "distilbert"])
def test_components_partition_every_layer_exactly(arch):
    model = scrambled(Spec(arch, 3, 16))
    table = COMPONENT_PARAMETERS[arch]
    for layer in model.base_model.get_submodule(LAYERS[arch].split(".", 1)[1]):
        names = {name for name, _ in layer.named_parameters()}
        assert names == set().union(*table.values())  # the table above covers the layer ...
        for name in names:  # ... and harness.method.corrupt classifies each parameter into its one component
            assert name in table[layer_component(arch, name)]
    assert sum(map(len, table.values())) == len(set().union(*table.values()))  # disjoint
    check_components(AutoConfig.for_model(arch))  # the grid's precheck agrees, from the config alone


def test_a_parameter_of_no_component_is_refused_not_guessed():
    model = scrambled(Spec("bert", 2, 16))
    model.bert.encoder.layer[0].register_parameter("extra", nn.Parameter(torch.ones(4, 4)))
    before = snapshot(model)
    for component in COMPONENTS[1:]:
        with pytest.raises(BadInput, match="'extra' of a bert encoder layer matches no component"):
            corrupt(model, "bottom", 0.5, kind="zero", component=component)
        assert all(same_bits(param, before[name]) for name, param in model.named_parameters())
    assert "bert.encoder.layer.0.extra" in corrupt(model, "bottom", 0.5, kind="zero")  # "all" needs no component


def test_the_grid_refuses_a_model_whose_layer_has_a_parameter_of_no_component(tmp_path, monkeypatch):
    table = copy.deepcopy(harness.method.corrupt.ARCHITECTURES)
    table["bert"]["components"]["ffn"] = ("intermediate.dense",)  # output.dense now belongs nowhere
    monkeypatch.setattr(harness.method.corrupt, "ARCHITECTURES", table)
    params = write_params(tmp_path, corruption="zero", component="ffn")
    with pytest.raises(BadInput, match=r"block 'b', model tiny-bert: parameter 'output.dense.weight' .* no component"):
        expand(load_profile("t", params))
    check_components(AutoConfig.for_model("distilbert"))


# ---------------------------------------------------------------- bad input, through every door

BAD = {  # name: (CellConfig / corrupt() keyword arguments, a fragment of the message)
    "unknown kind": ({"corruption": "gaussian"}, "corruption kind must be one of ('reinit', 'noise', 'shuffle', 'zero', 'bitflip'), got 'gaussian'"),
    "negative strength": ({"corruption": "noise", "strength": -0.1}, "strength must be a finite number >= 0"),
    "NaN strength": ({"corruption": "noise", "strength": math.nan}, "got nan"),
    "infinite strength": ({"corruption": "bitflip", "strength": math.inf}, "strength must be a finite number >= 0"),
    "text strength": ({"corruption": "noise", "strength": "lots"}, "strength must be a number, got 'lots'"),
    "bitflip rate above 1": ({"corruption": "bitflip", "strength": 1.5}, "each bit's flip probability, in [0, 1], got 1.5"),
    "noise without strength": ({"corruption": "noise"}, "corruption 'noise' needs a strength"),
    "bitflip without strength": ({"corruption": "bitflip"}, "corruption 'bitflip' needs a strength"),
    "reinit with strength": ({"strength": 0.5}, "corruption 'reinit' takes no strength"),
    "shuffle with strength": ({"corruption": "shuffle", "strength": 0.5}, "corruption 'shuffle' takes no strength"),
    "zero with strength": ({"corruption": "zero", "strength": 0.0}, "corruption 'zero' takes no strength"),
    "init with noise": ({"corruption": "noise", "strength": 0.1, "init": "normal_0.02"},
                        "init 'normal_0.02' applies to corruption 'reinit' only"),
    "unknown component": ({"component": "mlp"}, "component must be one of ('all', 'attention', 'ffn', 'layernorm')"),
    "component with embeddings": ({"component": "ffn", "scope": "encoder+embeddings"}, "needs scope 'encoder'"),
}
CELL_ONLY = {
    "probe dropout in full fine-tuning": ({"probe_dropout": True}, "probe_dropout applies to mode 'probe' only"),
    "probe dropout not a bool": ({"mode": "probe", "probe_dropout": "yes"}, "probe_dropout must be true or false"),
    "kind not a name": ({"corruption": ""}, "corruption must be a name"),
}


def corrupt_arguments(values: dict) -> dict:
    renamed = {"corruption": "kind"}
    return {renamed.get(key, key): value for key, value in values.items()}


@pytest.mark.parametrize("values, message", BAD.values(), ids=BAD.keys())
def test_bad_corruption_is_refused_by_corrupt_and_leaves_the_model_alone(values, message):
    model = scrambled(Spec("bert", 4, 16))
    before = snapshot(model)
    with pytest.raises(BadInput) as refused:
        corrupt(model, "bottom", 0.5, **corrupt_arguments(values))
    assert message in str(refused.value)
    assert all(same_bits(param, before[name]) for name, param in model.named_parameters())


@pytest.mark.parametrize("values, message", {**BAD, **CELL_ONLY}.values(), ids={**BAD, **CELL_ONLY}.keys())
@pytest.mark.parametrize("fraction", [0.0, 0.5])  # refused on the clean cell too, not only where it would act
def test_bad_corruption_is_refused_by_cellconfig(values, message, fraction):
    with pytest.raises(BadInput) as refused:
        CellConfig(model="tiny-bert", dataset="sst2", position="bottom", fraction=fraction, **values)
    assert message in str(refused.value)


@settings(max_examples=MAX_EXAMPLES * 4, deadline=None)
@given(kind=st.sampled_from(["noise", "bitflip"]), strength=st.floats(allow_nan=True, allow_infinity=True))
def test_a_strength_is_accepted_exactly_when_it_is_finite_non_negative_and_a_rate_at_most_1(kind, strength):
    valid = math.isfinite(strength) and strength >= 0 and (kind == "noise" or strength <= 1)
    config = dict(model="tiny-bert", dataset="sst2", position="top", fraction=0.5, corruption=kind, strength=strength)
    if valid:
        assert CellConfig(**config).strength == strength
    else:
        with pytest.raises(BadInput, match="strength"):
            CellConfig(**config)


CLI_FLAGS = {"corruption": "--kind", "strength": "--strength", "component": "--component", "scope": "--scope",
             "init": "--init"}


def cli_arguments(values: dict) -> list[str]:
    return [f"{CLI_FLAGS[key]}={value}" for key, value in values.items()]


@pytest.mark.parametrize("verb", ["cell", "corrupt"])
@pytest.mark.parametrize("values, message", BAD.values(), ids=BAD.keys())
def test_bad_corruption_on_the_command_line_is_one_error_line_and_exit_2(verb, values, message, tmp_path, monkeypatch,
                                                                         capsys):
    for loader in ("harness.method.models.load_classifier", "harness.method.cell.load_classifier"):
        monkeypatch.setattr(loader, lambda *a, **k: pytest.fail("a model was loaded"))
    argv = [verb, "--model", "tiny-bert", "--position", "bottom", "--fraction", "0.5", *cli_arguments(values)]
    if verb == "cell":
        argv += ["--out", str(tmp_path / "r.json"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "r.json").exists()


def test_probe_dropout_with_full_fine_tuning_on_the_command_line(capsys):
    assert main(["cell", "--model", "tiny-bert", "--probe-dropout", "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == ("error: probe_dropout applies to mode 'probe' only (full fine-tuning "
                                               "trains with dropout anyway), got mode 'full'")


def write_params(tmp_path: Path, **fixed) -> Path:
    profile = {"defaults": {"lrs": [1e-3], "seeds": [0], "epochs": 1, "n_train": 32, "n_test": 16, **fixed},
               "blocks": [{"name": "b", "models": {"tiny-bert": [0, "1/2"]}, "datasets": ["sst2"],
                           "positions": ["top"]}]}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"profile": "t", "profiles": {"t": profile}}))
    return path


@pytest.mark.parametrize("values, message", BAD.values(), ids=BAD.keys())
def test_bad_corruption_in_params_yaml_is_one_error_before_any_cell(values, message, tmp_path, monkeypatch, capsys):
    params = write_params(tmp_path, **values)
    monkeypatch.setattr("harness.grid.run.run_grid", lambda *a, **k: pytest.fail("the grid started"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadInput, match="block 'b'"):
        expand(load_profile("t", params))
    assert main(["grid", "--params", str(params), "--list"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: block 'b': ") and message in err[0], err


def test_params_yaml_sets_every_new_field_and_the_clean_cell_stays_the_clean_cell(tmp_path, machine):
    # 1e-6 without a dot: PyYAML reads it as text, accepted as the number it spells (as lrs are)
    params = tmp_path / "params.yaml"
    params.write_text("profile: t\nprofiles:\n  t:\n    blocks:\n      - {name: b, models: {tiny-bert: [0, 1/2]}, "
                      "datasets: [sst2], positions: [top], modes: [probe], lrs: [1e-3], seeds: [0], "
                      "corruption: bitflip, strength: 1e-6, component: attention, probe_dropout: true}\n")
    clean, corrupted = expand(load_profile("t", params))
    assert (corrupted.corruption, corrupted.strength, corrupted.component, corrupted.probe_dropout) == (
        "bitflip", 1e-6, "attention", True)
    assert clean.precision == corrupted.precision == machine.precision  # the block's precision: auto
    assert clean.hash == CellConfig(model="tiny-bert", dataset="sst2", mode="probe", lr=1e-3, probe_dropout=True,
                                    precision=machine.precision).hash
    assert describe(corrupted).startswith("tiny-bert sst2 top 1/2 bitflip(1e-06) attention probe-dropout cls probe")


# ---------------------------------------------------------------- a cell's identity: every existing cell keeps its own

PINNED = CellConfig(model="minilm-l6", dataset="sst2", position="top", fraction=1 / 3, pooling="mean", lr=1e-4,
                    epochs=4, seed=0, n_train=1500, n_val=500, n_test=1000, max_length=64, pooler=False)
VERSION_2_FIELDS = ("model", "dataset", "position", "fraction", "pooling", "mode", "lr", "epochs", "seed", "data_seed",
                    "n_train", "n_test", "n_val", "batch_size", "max_length", "init", "scope", "rounding", "precision",
                    "pooler")


def test_the_identity_of_an_existing_cell_is_pinned(monkeypatch):
    # Computed with the code before issue 14 (commit 84b483b): adding options must not move it. The identity
    # also names METHOD_VERSION (2 then; a bump moves every identity on purpose), so it is pinned under 2.
    monkeypatch.setattr("harness.method.config.METHOD_VERSION", "2")
    assert PINNED.canonical_json() == (
        '{"batch_size":32,"data_seed":0,"dataset":"sst2","epochs":4,"fraction":0.3333333333333333,'
        '"init":"kaiming_uniform","lr":0.0001,"max_length":64,"mode":"full","model":"minilm-l6","n_test":1000,'
        '"n_train":1500,"n_val":500,"pooler":false,"pooling":"mean","position":"top","precision":"fp32",'
        '"rounding":null,"scope":"encoder","seed":0}')
    assert PINNED.hash == "fa022b2d5962f331"
    assert cell_identity(PINNED, "abc") == "74fcaf7590467c1a"
    explicit = PINNED.with_(corruption="reinit", strength=None, component="all", probe_dropout=False)
    assert explicit.hash == PINNED.hash


def test_every_committed_record_keeps_its_identity(monkeypatch):
    """Each kept record's identity is its config's under the METHOD_VERSION that wrote it (kept profiles hold
    records of more than one version until they are rerun)."""
    records = sorted((REPO / "results" / "records").glob("*/*.json"))
    assert records
    for path in records:
        record = json.loads(path.read_text())
        config = CellConfig.from_dict(record["config"])
        monkeypatch.setattr("harness.method.config.METHOD_VERSION", record["method_version"])
        assert (config.hash, cell_identity(config, record["data_digest"])) == (
            record["config_hash"], record["identity"]) and path.stem == record["identity"], path


def test_identity_defaults_are_the_fields_defaults_and_the_only_new_fields():
    defaults = {f.name: f.default for f in dataclasses.fields(CellConfig)}
    assert {name: defaults[name] for name in IDENTITY_DEFAULTS} == IDENTITY_DEFAULTS
    # A field added to CellConfig either joins IDENTITY_DEFAULTS or (deliberately) changes every identity.
    assert set(defaults) - set(IDENTITY_DEFAULTS) == set(VERSION_2_FIELDS)
    assert set(json.loads(PINNED.canonical_json())) == set(VERSION_2_FIELDS)
    assert set(PINNED.to_dict()) == set(defaults)  # records keep every field


@pytest.mark.parametrize("changes", [
    {"corruption": "noise", "strength": 0.1}, {"corruption": "noise", "strength": 0.2}, {"corruption": "shuffle"},
    {"corruption": "zero"}, {"corruption": "bitflip", "strength": 1e-6}, {"component": "attention"},
    {"component": "ffn"}, {"component": "layernorm"}, {"mode": "probe", "probe_dropout": True},
])
def test_each_new_non_default_value_is_another_cell(changes):
    base = PINNED.with_(mode="probe") if "probe_dropout" in changes else PINNED
    changed = PINNED.with_(**changes)
    assert changed.hash != base.hash and cell_identity(changed, "abc") != cell_identity(base, "abc")
    assert {key: json.loads(changed.canonical_json())[key] for key in changes} == changes


def test_strength_is_a_number_however_spelled_and_the_clean_cell_is_one_cell():
    from fractions import Fraction

    noise = {PINNED.with_(corruption="noise", strength=s).hash for s in (1, 1.0, Fraction(1), np.float64(1))}
    assert len(noise) == 1
    clean = CellConfig(model="tiny-bert", dataset="sst2")
    for changes in ({"corruption": "noise", "strength": 0.5}, {"corruption": "zero", "component": "ffn"}):
        assert clean.with_(**changes).hash == clean.hash  # fraction 0: nothing is damaged, whatever was named


# ---------------------------------------------------------------- probe dropout


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-distilbert"])
def test_the_frozen_body_in_train_mode_gives_another_vector_every_pass(name):
    model, tokenizer = load_classifier(name, 2)
    batch = tokenizer(["a short sentence", "another one"], padding=True, return_tensors="pt")
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    model.train()
    with torch.no_grad():
        assert not torch.equal(sentence_vector(model, **inputs), sentence_vector(model, **inputs))
    model.eval()
    with torch.no_grad():
        assert torch.equal(sentence_vector(model, **inputs), sentence_vector(model, **inputs))


def _probe(name: str, probe_dropout: bool, seed: int = 0):
    model, _ = load_classifier(name, 2, seed=0)
    data = random_encoded(48, 0)
    settings = TrainSettings(lr=1e-2, epochs=2, batch_size=8, mode="probe", seed=seed, probe_dropout=probe_dropout)
    outcome = train_and_evaluate(model, data, data, data, settings, pad_id=0, device=torch.device("cpu"), progress=False)
    scores = [{k: v for k, v in e.as_record().items() if k != "train_seconds"} for e in outcome.epochs]
    return scores, model


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-distilbert"])
def test_probe_dropout_recomputes_the_body_each_step_deterministically(name, monkeypatch):
    import harness.method.train

    calls, real = [], harness.method.train.sentence_vector
    monkeypatch.setattr(harness.method.train, "sentence_vector",  # note the body's mode at every call
                        lambda model, **kw: calls.append(model.training) or real(model, **kw))
    off, _ = _probe(name, False)
    calls_off, calls[:] = list(calls), []
    on, model_on = _probe(name, True)
    calls_on = list(calls)
    monkeypatch.undo()
    # Off: today's path, the body only in eval mode, to cache its vectors (no call per training step).
    assert calls_off and not any(calls_off)
    # On: 6 steps x 2 epochs in train mode, plus the eval-mode caching of validation and test.
    assert calls_on.count(True) == 12 and calls_on.count(False) == len(calls_off) * 2 // 3
    again, model_again = _probe(name, True)
    assert on == again  # dropout masks come from the seed
    assert all(torch.equal(a, b) for a, b in zip(model_on.state_dict().values(), model_again.state_dict().values()))
    assert on != off and _probe(name, True, seed=1)[0] != on
    fresh, _ = load_classifier(name, 2, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model_on.base_model.state_dict().values(),
                                                 fresh.base_model.state_dict().values()))  # the body stays frozen


# ---------------------------------------------------------------- tiny cells end to end

TINY = dict(n_train=64, n_test=32, n_val=16, epochs=2, lr=1e-3, batch_size=16, max_length=32)


@pytest.fixture
def dirs(tmp_path):
    return {"out_dir": tmp_path / "cells", "data_dir": DATA, "cache_dir": tmp_path / "cache", "progress": False}


def test_a_noise_cell_on_the_feed_forward_runs_end_to_end(dirs):
    config = CellConfig(model="tiny-distilbert", dataset="sst2", position="top", fraction=0.5, corruption="noise",
                        strength=0.5, component="ffn", **TINY)
    record = run_cell(config, **dirs)
    assert record["status"] in ("ok", "failed_run") and len(record["epochs"]) == 2
    assert record["config"] == config.to_dict() and record["config"]["component"] == "ffn"
    assert record["corruption"] == {"kind": "noise", "component": "ffn", "strength": 0.5, "n_parameters": 8,
                                    "n_values": 2 * (2 * 32 * 64 + 64 + 32), "flipped_bits": None,
                                    "non_finite_values": 0}
    assert record["n_reset_parameters"] == 8 and record["corrupted_layers"] == [2, 3]
    assert record["identity"] != cell_identity(config.with_(corruption="reinit", strength=None), record["data_digest"])


def test_a_bitflip_cell_that_makes_nans_is_recorded_diverged(dirs, capsys):
    out = dirs["out_dir"] / "flipped.json"
    argv = ["cell", "--model", "tiny-bert", "--dataset", "sst2", "--position", "bottom", "--fraction", "0.25",
            "--kind", "bitflip", "--strength", "1", "--component", "attention", "--n-train", "64", "--n-test", "32",
            "--n-val", "16", "--epochs", "1", "--max-length", "32", "--data-dir", str(DATA), "--cache-dir",
            str(dirs["cache_dir"]), "--out", str(out), "--no-progress"]
    assert main(argv) == 3  # every bit of the zero biases flipped: NaN, a non-finite loss
    assert "diverged" in capsys.readouterr().err
    record = json.loads(out.read_text())
    assert record["status"] == "diverged" and record["corruption"]["non_finite_values"] > 0
    assert record["corruption"]["flipped_bits"] == 32 * record["corruption"]["n_values"]


def test_a_probe_cell_with_dropout_runs_end_to_end(dirs):
    config = CellConfig(model="tiny-bert", dataset="sst2", position="bottom", fraction=0.5, mode="probe",
                        probe_dropout=True, **TINY)
    record = run_cell(config, **dirs)
    assert record["status"] in ("ok", "failed_run") and len(record["epochs"]) == 2
    assert record["config"]["probe_dropout"] is True
    without = run_cell(config.with_(probe_dropout=False), **dirs)
    assert without["identity"] != record["identity"]
    assert [e["train_loss"] for e in without["epochs"]] != [e["train_loss"] for e in record["epochs"]]


def test_run_grid_checks_the_components_before_any_cell(tmp_path, monkeypatch):
    from harness.grid.run import plan_grid

    table = copy.deepcopy(harness.method.corrupt.ARCHITECTURES)
    table["distilbert"]["components"]["layernorm"] = ("sa_layer_norm",)
    monkeypatch.setattr(harness.method.corrupt, "ARCHITECTURES", table)
    monkeypatch.setattr("harness.grid.run.dataset_digests", lambda *a, **k: pytest.fail("the data was read first"))
    cells = [CellConfig(model="tiny-distilbert", dataset="sst2", position="top", fraction=0.5, corruption="zero",
                        component="layernorm")]
    with pytest.raises(BadInput, match="model tiny-distilbert: parameter 'output_layer_norm.weight' .* no component"):
        plan_grid(cells, out_dir=tmp_path / "cells", data_dir=DATA, cache_dir=tmp_path / "cache")
