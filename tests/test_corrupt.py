"""harness.method.corrupt: the paper's Section 3, checked as properties over random tiny BERT/DistilBERT.

Every model is "scrambled" before corruption: each parameter is filled with values in [1.5, 2.5].
A freshly built model already has LayerNorm = 1, biases = 0 and small weights, so without the
scramble the checks below could not tell a reset parameter from an untouched one.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from harness.errors import BadInput
from harness.method.corrupt import INITS, POSITIONS, ROUNDINGS, corrupt, encoder_layers, init_bound, layers_to_corrupt

# Written out here rather than read from harness.method.corrupt, so the tests check its layout table.
LAYERS = {"bert": "bert.encoder.layer", "distilbert": "distilbert.transformer.layer"}
EXTRAS = {
    "bert": {"embeddings": "bert.embeddings", "pooler": "bert.pooler"},
    "distilbert": {"embeddings": "distilbert.embeddings"},
}
SCOPES = {
    "bert": ("encoder", "encoder+embeddings", "encoder+pooler", "encoder+embeddings+pooler"),
    "distilbert": ("encoder", "encoder+embeddings"),
}
UNIFORM_INITS = ("kaiming_uniform", "kaiming_uniform_a0")
MAX_EXAMPLES = 25


# ---------------------------------------------------------------- tiny models


@dataclass(frozen=True)
class Spec:
    arch: str
    n_layers: int
    hidden: int


@lru_cache(maxsize=None)
def _template(spec: Spec) -> nn.Module:
    torch.manual_seed(0)
    if spec.arch == "bert":
        config = BertConfig(
            vocab_size=50, hidden_size=spec.hidden, num_hidden_layers=spec.n_layers, num_attention_heads=2,
            intermediate_size=4 * spec.hidden, max_position_embeddings=32, num_labels=3,
        )
        return BertForSequenceClassification(config)
    config = DistilBertConfig(
        vocab_size=50, dim=spec.hidden, n_layers=spec.n_layers, n_heads=2,
        hidden_dim=4 * spec.hidden, max_position_embeddings=32, num_labels=3,
    )
    return DistilBertForSequenceClassification(config)


@torch.no_grad()
def scrambled(spec: Spec) -> nn.Module:
    """A fresh copy of the tiny model whose every parameter lies in [1.5, 2.5] (far from any reset value)."""
    model = copy.deepcopy(_template(spec))
    generator = torch.Generator().manual_seed(1234)
    for param in model.parameters():
        param.uniform_(1.5, 2.5, generator=generator)
    return model


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: param.detach().clone() for name, param in model.named_parameters()}


def names_under(model: nn.Module, prefixes: list[str]) -> set[str]:
    return {name for name, _ in model.named_parameters() if any(name.startswith(p + ".") for p in prefixes)}


def layer_norm_names(model: nn.Module) -> set[str]:
    return {
        f"{module_name}.{param_name}"
        for module_name, module in model.named_modules()
        if isinstance(module, nn.LayerNorm)
        for param_name, _ in module.named_parameters()
    }


def expected_block(n_layers: int, position: str, count: int) -> list[int]:
    return list(range(count)) if position == "bottom" else list(range(n_layers - count, n_layers))


specs = st.builds(
    Spec,
    arch=st.sampled_from(["bert", "distilbert"]),
    n_layers=st.integers(1, 8),
    hidden=st.sampled_from([16, 24, 32]),
)
positions = st.sampled_from(POSITIONS)
seeds = st.integers(0, 2**31 - 1)


# ---------------------------------------------------------------- weight checks


def check_fresh_weight(name: str, new: torch.Tensor, old: torch.Tensor, init: str) -> None:
    """A re-initialised weight matrix: changed, and distributed as ``init`` says."""
    assert not torch.equal(new, old), f"{name} was reported reset but kept its values"
    bound = init_bound(init, new.shape[1])
    if bound is not None:
        assert new.abs().max() <= bound, f"{name} leaves U(+-{bound:.4f})"
        if new.numel() >= 512:
            # P(all of >= 512 uniform draws inside 0.9 of the range) < 1e-23: the range is filled.
            assert new.max() > 0.9 * bound and new.min() < -0.9 * bound, f"{name} does not fill U(+-{bound:.4f})"
    elif new.numel() >= 1024:
        # 6 standard errors: a correct N(0, 0.02) fails with probability ~1e-9 per matrix.
        n = new.numel()
        assert abs(new.mean().item()) < 6 * 0.02 / math.sqrt(n), f"{name} mean {new.mean().item():.5f}"
        assert abs(new.std().item() - 0.02) < 6 * 0.02 / math.sqrt(2 * n), f"{name} std {new.std().item():.5f}"


# ---------------------------------------------------------------- properties 1-4, 8: what is reset, and how


@settings(max_examples=MAX_EXAMPLES * 2, deadline=None)
@given(spec=specs, position=positions, init=st.sampled_from(INITS), seed=seeds, data=st.data())
def test_corrupt_resets_exactly_the_chosen_block_as_section_3_says(spec, position, init, seed, data):
    count = data.draw(st.integers(0, spec.n_layers), label="count")
    scope = data.draw(st.sampled_from(SCOPES[spec.arch]), label="scope")
    fraction = count / spec.n_layers
    model = scrambled(spec)
    before = snapshot(model)

    reset = corrupt(model, position, fraction, seed=seed, init=init, scope=scope)

    block = expected_block(spec.n_layers, position, count)
    assert layers_to_corrupt(spec.n_layers, position, fraction) == block
    prefixes = [f"{LAYERS[spec.arch]}.{i}" for i in block]
    if count:  # a clean model stays clean, whatever the scope
        prefixes += [EXTRAS[spec.arch][part] for part in scope.split("+")[1:]]
    expected = names_under(model, prefixes)
    assert len(reset) == len(set(reset)), "a parameter was reported twice"
    assert set(reset) == expected

    after = dict(model.named_parameters())
    norms = layer_norm_names(model)
    for name, old in before.items():
        new = after[name].detach()
        if name not in expected:
            assert torch.equal(new, old), f"{name} is outside the chosen block but changed"
        elif name in norms:
            assert torch.all(new == (1.0 if name.endswith("weight") else 0.0)), name
        elif name.endswith("bias"):
            assert torch.all(new == 0.0), name
        else:
            check_fresh_weight(name, new, old, init)


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(spec=specs, position=positions, init=st.sampled_from(INITS), data=st.data())
def test_same_seed_same_weights_and_different_seed_different_weights(spec, position, init, data):
    count = data.draw(st.integers(1, spec.n_layers), label="count")
    seed, other = data.draw(st.lists(seeds, min_size=2, max_size=2, unique=True), label="seeds")
    fraction = count / spec.n_layers
    first, again, different = scrambled(spec), scrambled(spec), scrambled(spec)

    reset = corrupt(first, position, fraction, seed=seed, init=init)
    assert corrupt(again, position, fraction, seed=seed, init=init) == reset
    corrupt(different, position, fraction, seed=other, init=init)

    first_p, again_p, different_p = snapshot(first), snapshot(again), snapshot(different)
    assert all(torch.equal(first_p[name], again_p[name]) for name in first_p)
    matrices = [name for name in reset if first_p[name].dim() == 2]
    assert matrices
    for name in matrices:
        assert not torch.equal(first_p[name], different_p[name]), f"{name} ignores the seed"
    # Each parameter draws its own values: layer 0's query is not a copy of layer 1's.
    for one, another in itertools.combinations(matrices, 2):
        if first_p[one].shape == first_p[another].shape:
            assert not torch.equal(first_p[one], first_p[another]), f"{one} and {another} drew the same values"


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(spec=specs.filter(lambda s: s.n_layers >= 2), position=positions, seed=seeds, data=st.data())
def test_a_layer_gets_the_same_fresh_weights_whatever_the_fraction(spec, position, seed, data):
    # The module promises that settings differ only in *which* layers were reset.
    small = data.draw(st.integers(1, spec.n_layers - 1), label="small")
    fewer, more = scrambled(spec), scrambled(spec)
    fewer_names = corrupt(fewer, position, small / spec.n_layers, seed=seed)
    more_names = corrupt(more, position, (small + 1) / spec.n_layers, seed=seed)
    assert set(fewer_names) < set(more_names)
    more_p = dict(more.named_parameters())
    for name, param in fewer.named_parameters():
        if name in fewer_names:
            assert torch.equal(param, more_p[name]), name


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(spec=specs, position=positions, seed=seeds, data=st.data())
def test_fraction_zero_changes_nothing_and_fraction_one_reaches_every_layer(spec, position, seed, data):
    scope = data.draw(st.sampled_from(SCOPES[spec.arch]), label="scope")
    clean = scrambled(spec)
    before = snapshot(clean)
    assert corrupt(clean, position, 0.0, seed=seed, scope=scope) == []
    assert all(torch.equal(param, before[name]) for name, param in clean.named_parameters())

    full = scrambled(spec)
    reset = set(corrupt(full, position, 1.0, seed=seed))
    assert reset == names_under(full, [LAYERS[spec.arch]])
    for i in range(spec.n_layers):
        assert any(name.startswith(f"{LAYERS[spec.arch]}.{i}.") for name in reset), f"layer {i} untouched"


def test_normal_init_has_mean_zero_and_std_002_on_a_large_matrix():
    spec = Spec("bert", 2, 64)  # intermediate 256 x 64: 16k draws per matrix
    model = scrambled(spec)
    reset = corrupt(model, "top", 0.5, seed=3, init="normal_0.02")
    params = dict(model.named_parameters())
    values = torch.cat([params[name].detach().flatten() for name in reset if params[name].dim() == 2])
    assert values.numel() > 40_000
    assert abs(values.mean().item()) < 6 * 0.02 / math.sqrt(values.numel())
    assert values.std().item() == pytest.approx(0.02, abs=6 * 0.02 / math.sqrt(2 * values.numel()))


@pytest.mark.parametrize("fan_in", [16, 384, 768, 1024])
def test_init_bound_is_torch_kaiming_uniform_bound(fan_in):
    # kaiming_uniform_ draws U(+-gain * sqrt(3 / fan_in)); nn.Linear's default uses a = sqrt(5).
    linear_gain = nn.init.calculate_gain("leaky_relu", math.sqrt(5))
    assert init_bound("kaiming_uniform", fan_in) == pytest.approx(linear_gain * math.sqrt(3 / fan_in))
    assert init_bound("kaiming_uniform", fan_in) == pytest.approx(1 / math.sqrt(fan_in))  # torch's nn.Linear docs
    relu_gain = nn.init.calculate_gain("leaky_relu", 0.0)
    assert init_bound("kaiming_uniform_a0", fan_in) == pytest.approx(relu_gain * math.sqrt(3 / fan_in))
    assert init_bound("normal_0.02", fan_in) is None


# ---------------------------------------------------------------- property 8: wider scopes


@pytest.mark.parametrize("arch", ["bert", "distilbert"])
def test_embeddings_scope_resets_every_embedding_parameter(arch):
    model = scrambled(Spec(arch, 4, 16))
    reset = set(corrupt(model, "top", 0.25, scope="encoder+embeddings"))
    embeddings = names_under(model, [EXTRAS[arch]["embeddings"]])
    assert {"word_embeddings", "position_embeddings"} <= {name.split(".")[2] for name in embeddings}
    assert embeddings <= reset
    assert reset == embeddings | names_under(model, [f"{LAYERS[arch]}.3"])


def test_pooler_scope_resets_the_bert_pooler_but_not_the_head():
    model = scrambled(Spec("bert", 4, 16))
    before = snapshot(model)
    reset = set(corrupt(model, "bottom", 0.5, scope="encoder+pooler"))
    assert reset == names_under(model, ["bert.pooler", f"{LAYERS['bert']}.0", f"{LAYERS['bert']}.1"])
    assert torch.all(model.bert.pooler.dense.bias == 0)
    assert torch.equal(model.classifier.weight, before["classifier.weight"])


@pytest.mark.parametrize("fraction", [0.0, 0.5])
@pytest.mark.parametrize("scope", ["encoder+pooler", "encoder+embeddings+pooler"])
def test_distilbert_has_no_pooler_to_corrupt(scope, fraction):
    model = scrambled(Spec("distilbert", 4, 16))
    before = snapshot(model)
    with pytest.raises(BadInput, match="pooler"):
        corrupt(model, "bottom", fraction, scope=scope)
    assert all(torch.equal(param, before[name]) for name, param in model.named_parameters())


# ---------------------------------------------------------------- property 7: bad input and rounding


@settings(max_examples=MAX_EXAMPLES * 4, deadline=None)
@given(
    n_layers=st.integers(1, 24),
    position=positions,
    fraction=st.one_of(
        st.floats(max_value=-1e-12), st.floats(min_value=1 + 1e-12), st.just(math.nan), st.just("0.5"), st.none()
    ),
)
def test_fractions_outside_zero_one_are_refused(n_layers, position, fraction):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        layers_to_corrupt(n_layers, position, fraction)


@settings(max_examples=MAX_EXAMPLES * 4, deadline=None)
@given(n_layers=st.integers(1, 24), position=positions, fraction=st.fractions(0, 1, max_denominator=48))
def test_rounding_rules_pick_a_contiguous_block_of_the_rounded_size(n_layers, position, fraction):
    exact = fraction * n_layers  # exact rational arithmetic: the reference the float code must match
    counts = {"floor": math.floor(exact), "ceil": math.ceil(exact), "nearest": math.floor(exact + Fraction(1, 2))}
    if exact.denominator == 1:
        assert layers_to_corrupt(n_layers, position, float(fraction)) == expected_block(n_layers, position, int(exact))
    else:
        with pytest.raises(ValueError, match="not a whole number") as refused:
            layers_to_corrupt(n_layers, position, float(fraction))
        assert all(rule in str(refused.value) for rule in ROUNDINGS)
    for rule, count in counts.items():
        layers = layers_to_corrupt(n_layers, position, float(fraction), rounding=rule)
        assert layers == expected_block(n_layers, position, count), rule


@settings(max_examples=MAX_EXAMPLES * 4, deadline=None)
@given(n_layers=st.integers(1, 48), data=st.data())
def test_nearest_rounds_exact_ties_up(n_layers, data):
    # (2j+1)/(2n) of n layers is exactly j + 1/2; in floats it is often j + 0.4999999...
    j = data.draw(st.integers(0, n_layers - 1), label="j")
    scale = data.draw(st.integers(1, 4), label="scale")  # the same fraction written as 15/22, 30/44, ...
    fraction = (2 * j + 1) * scale / (2 * n_layers * scale)
    assert len(layers_to_corrupt(n_layers, "bottom", fraction, rounding="nearest")) == j + 1


@pytest.mark.parametrize(
    ("n_layers", "fraction", "floor", "ceil", "nearest"),
    [(6, 0.25, 1, 2, 2), (6, 0.75, 4, 5, 5), (12, 0.1, 1, 2, 1), (4, 0.3, 1, 2, 1), (11, 15 / 22, 7, 8, 8)],
)
def test_rounding_examples(n_layers, fraction, floor, ceil, nearest):
    for rule, count in {"floor": floor, "ceil": ceil, "nearest": nearest}.items():
        assert len(layers_to_corrupt(n_layers, "bottom", fraction, rule)) == count


def test_non_whole_fraction_reaches_corrupt_as_an_error_unless_rounded():
    model = scrambled(Spec("distilbert", 6, 16))
    with pytest.raises(BadInput, match="rounding"):
        corrupt(model, "bottom", 0.25)
    reset = corrupt(model, "bottom", 0.25, rounding="ceil")
    assert set(reset) == names_under(model, [f"{LAYERS['distilbert']}.0", f"{LAYERS['distilbert']}.1"])


@pytest.mark.parametrize(
    ("kwargs", "valid"),
    [
        ({"position": "middle"}, POSITIONS),
        ({"position": "Bottom"}, POSITIONS),
        ({"init": "xavier"}, INITS),
        ({"init": "kaiming"}, INITS),
        ({"scope": "embeddings"}, ("encoder", "embeddings", "pooler")),
        ({"scope": "encoder+head"}, ("encoder", "embeddings", "pooler")),
        ({"scope": ""}, ("encoder", "embeddings", "pooler")),
        ({"rounding": "up"}, ROUNDINGS),
        ({"fraction": 1.5}, ("[0, 1]",)),
        ({"fraction": -0.25}, ("[0, 1]",)),
        ({"fraction": 0.3}, ROUNDINGS),
    ],
)
def test_bad_arguments_are_refused_naming_the_valid_values(kwargs, valid):
    model = scrambled(Spec("bert", 4, 16))
    before = snapshot(model)
    arguments = {"position": "bottom", "fraction": 0.5} | kwargs
    position, fraction = arguments.pop("position"), arguments.pop("fraction")
    with pytest.raises(BadInput) as refused:
        corrupt(model, position, fraction, **arguments)
    assert isinstance(refused.value, ValueError)
    assert all(value in str(refused.value) for value in valid), str(refused.value)
    assert all(torch.equal(param, before[name]) for name, param in model.named_parameters())


@pytest.mark.parametrize("init", ["xavier", "", "Kaiming_Uniform"])
def test_init_bound_refuses_unknown_inits(init):
    with pytest.raises(BadInput, match="kaiming_uniform_a0"):
        init_bound(init, 16)


@pytest.mark.parametrize("n_layers", [0, -1, 2.0, "12"])
def test_layer_count_must_be_a_positive_integer(n_layers):
    with pytest.raises(BadInput, match="n_layers"):
        layers_to_corrupt(n_layers, "bottom", 0.5)


# ---------------------------------------------------------------- property 9: the paper's layer mapping


@pytest.mark.parametrize(
    ("model", "n_layers", "position", "fraction", "first", "last"),
    [
        ("BERT-base", 12, "bottom", 0.25, 1, 3),
        ("BERT-base", 12, "bottom", 0.50, 1, 6),
        ("BERT-base", 12, "bottom", 0.75, 1, 9),
        ("BERT-base", 12, "bottom", 1.00, 1, 12),
        ("BERT-base", 12, "top", 0.25, 10, 12),
        ("BERT-base", 12, "top", 0.50, 7, 12),
        ("BERT-base", 12, "top", 0.75, 4, 12),
        ("BERT-base", 12, "top", 1.00, 1, 12),
        ("BERT-large", 24, "bottom", 0.25, 1, 6),
        ("BERT-large", 24, "bottom", 0.50, 1, 12),
        ("BERT-large", 24, "bottom", 0.75, 1, 18),
        ("BERT-large", 24, "top", 0.25, 19, 24),
        ("DistilBERT", 6, "bottom", 0.50, 1, 3),
        ("DistilBERT", 6, "top", 0.50, 4, 6),
        ("DistilBERT", 6, "bottom", 1.00, 1, 6),
    ],
)
def test_the_papers_layer_ranges(model, n_layers, position, fraction, first, last):
    # Tables 2-5 label rows "25% (1-3)" etc.: 1-based, inclusive.
    assert [i + 1 for i in layers_to_corrupt(n_layers, position, fraction)] == list(range(first, last + 1))


@pytest.mark.parametrize("n_layers", [6, 12, 24])
@pytest.mark.parametrize("position", POSITIONS)
def test_zero_percent_is_the_clean_model(n_layers, position):
    assert layers_to_corrupt(n_layers, position, 0.0) == []


def test_paper_mapping_on_a_12_layer_model_names_layers_one_to_three():
    model = scrambled(Spec("bert", 12, 16))
    assert len(encoder_layers(model)) == 12
    reset = corrupt(model, "bottom", 0.25)
    assert {name.split(".")[3] for name in reset} == {"0", "1", "2"}


# ---------------------------------------------------------------- property 10: unknown architectures


def tiny_roberta() -> nn.Module:
    config = RobertaConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=40, num_labels=2,
    )
    return RobertaForSequenceClassification(config)


@pytest.mark.parametrize("make", [tiny_roberta, lambda: nn.Linear(4, 4), nn.Module])
def test_unknown_architectures_are_refused(make):
    model = make()
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    with pytest.raises(BadInput, match="bert") as refused:
        corrupt(model, "bottom", 0.5)
    assert "distilbert" in str(refused.value)
    with pytest.raises(BadInput):
        encoder_layers(model)
    assert all(torch.equal(param, before[name]) for name, param in model.named_parameters())
