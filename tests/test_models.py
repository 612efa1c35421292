"""harness.method.models: offline loading, seeded heads, the shared classification head, and bad names."""

from __future__ import annotations

import copy

import pytest
import torch

from harness.errors import BadInput
from harness.method.corrupt import corrupt
from harness.method.models import OFFLINE_MODELS, head_logits, head_parameters, load_classifier, sentence_vector

TINY = ("tiny-bert", "tiny-distilbert")


def parameters(model) -> dict[str, torch.Tensor]:
    return {name: param.detach().clone() for name, param in model.named_parameters()}


@pytest.fixture(scope="module")
def minilm_pair():
    """MiniLM loaded twice with different seeds: only the fresh head may differ."""
    first, _ = load_classifier("minilm-l6", 3, seed=0)
    second, _ = load_classifier("minilm-l6", 3, seed=1)
    return first, second


# ---------------------------------------------------------------- tiny fixtures


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("num_labels", [2, 7])
def test_tiny_fixture_has_four_layers_and_the_asked_labels(name, num_labels):
    model, tokenizer = load_classifier(name, num_labels)
    assert model.config.num_labels == num_labels
    assert model.classifier.out_features == num_labels
    assert model.config.num_hidden_layers == 4
    assert not model.training
    batch = tokenizer(["a short sentence", "another one"], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert logits.shape == (2, num_labels)


@pytest.mark.parametrize("name", TINY)
def test_same_seed_gives_the_same_model_and_another_seed_another_head(name):
    first = parameters(load_classifier(name, 3, seed=5)[0])
    again = parameters(load_classifier(name, 3, seed=5)[0])
    other = parameters(load_classifier(name, 3, seed=6)[0])
    assert first.keys() == again.keys()
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not torch.equal(first["classifier.weight"], other["classifier.weight"])


# ---------------------------------------------------------------- the packaged real model


def test_minilm_loads_offline_as_a_six_layer_bert(minilm_pair):
    model, _ = minilm_pair
    assert model.config.model_type == "bert"
    assert model.config.num_hidden_layers == 6
    assert model.config.hidden_size == 384
    assert model.config.num_labels == 3


def test_minilm_body_and_pooler_are_pretrained_and_only_the_head_is_fresh(minilm_pair):
    # A weight missing from the checkpoint would be drawn from the seed, so it would differ here.
    first, second = (parameters(model) for model in minilm_pair)
    differing = {name for name in first if not torch.equal(first[name], second[name])}
    assert "classifier.weight" in differing
    assert all(name.startswith("classifier.") for name in differing), differing
    assert {"bert.pooler.dense.weight", "bert.pooler.dense.bias"} <= first.keys()


def test_corrupting_minilm_bottom_half_resets_only_layers_0_to_2(minilm_pair):
    model = copy.deepcopy(minilm_pair[0])  # the fixture is shared: corrupt a copy
    before = parameters(model)
    reset = corrupt(model, "bottom", 0.5, seed=0)

    layer_of = {name: name.split(".")[3] for name in reset}
    assert all(name.startswith("bert.encoder.layer.") for name in reset)
    assert set(layer_of.values()) == {"0", "1", "2"}
    after = parameters(model)
    unchanged = {name for name in before if torch.equal(before[name], after[name])}
    assert unchanged == set(before) - set(reset)


# ---------------------------------------------------------------- bad names


def test_hub_model_offline_names_the_offline_alternatives(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BadInput) as refused:
        load_classifier("bert-base-uncased", 2)
    message = str(refused.value)
    assert all(name in message for name in OFFLINE_MODELS)
    assert "bert-base-uncased" in message
    assert len(message.splitlines()) == 1  # one clear line, not transformers' error text


def test_unknown_name_lists_the_choices():
    with pytest.raises(BadInput) as refused:
        load_classifier("bert-huge", 2)
    message = str(refused.value)
    for name in ("bert-base-uncased", "bert-large-uncased", "distilbert-base-uncased", *OFFLINE_MODELS):
        assert name in message


def test_folder_without_config_is_refused(tmp_path):
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(BadInput, match="config.json"):
        load_classifier(str(tmp_path), 2)


@pytest.mark.parametrize("num_labels", [1, 0, 2.0, "2"])
def test_num_labels_must_be_an_integer_of_at_least_two(num_labels):
    with pytest.raises(BadInput, match="num_labels"):
        load_classifier("tiny-bert", num_labels)


# ---------------------------------------------------------------- the head


@pytest.mark.parametrize("name", TINY)
def test_the_training_head_path_is_the_models_own_forward_for_cls_pooling(name):
    # What training runs (sentence_vector + head_logits) equals AutoModelForSequenceClassification's logits.
    model, tokenizer = load_classifier(name, 4, seed=2)
    model.eval()
    batch = tokenizer(["the film was fine", "no", "a longer sentence than the others"], return_tensors="pt", padding=True)
    with torch.no_grad():
        own = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        vector = sentence_vector(model, batch["input_ids"], batch["attention_mask"], pooling="cls", pooler=True)
        logits = head_logits(model, vector)
    assert logits.shape == (3, 4)
    torch.testing.assert_close(logits, own, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "head"), [("tiny-bert", {"classifier"}), ("tiny-distilbert", {"pre_classifier", "classifier"})])
def test_head_parameters_are_exactly_the_parameters_outside_the_base_model(name, head):
    model, _ = load_classifier(name, 3)
    trained = {id(param) for param in head_parameters(model)}
    base = {id(param) for param in model.base_model.parameters()}
    assert trained and not trained & base
    assert trained | base == {id(param) for param in model.parameters()}
    names = {name for name, param in model.named_parameters() if id(param) in trained}
    assert {name.split(".")[0] for name in names} == head


@pytest.mark.parametrize("name", ["minilm-l6", *TINY])
def test_the_registry_holds_the_shape_the_model_loads_with(name):
    from harness.method.models import MODELS

    known, config = MODELS[name], load_classifier(name, 2)[0].config
    assert config.model_type == known.architecture
    depth = config.num_hidden_layers if known.architecture == "bert" else config.n_layers
    hidden = config.hidden_size if known.architecture == "bert" else config.dim
    assert (depth, hidden) == (known.depth, known.hidden)
