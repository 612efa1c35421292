"""harness/method/representations.py and harness/beyond/analysis.py: the measures on known answers, the capture on a
tiny BERT, and claim 5 (label separation orders clean >= top > bottom >= 100%) on data whose truth is built."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import special_ortho_group

from harness.beyond.analysis import CellVectors, by_layer, measure
from harness.errors import BadInput
from harness.method.representations import (
    centroid_movement,
    first_examples,
    layer_vectors,
    linear_cka,
    margin_width,
    min_distances,
    pair_distances,
    probe_accuracy,
    spatial_similarity,
)
from harness.verdict.claims import CLAIMS, separation_order
from harness.verdict.decision import Verdict

S, C, I = Verdict.SUPPORTED, Verdict.CONTRADICTED, Verdict.INCONCLUSIVE


def _cloud(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    return rng.normal(size=(n, d))


# ---------------------------------------------------------------- linear CKA


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(10, 60), d=st.integers(2, 12),
       scale=st.floats(0.01, 100.0))
def test_cka_is_one_for_the_same_space_rotated_and_scaled(seed, n, d, scale):
    rng = np.random.default_rng(seed)
    x = _cloud(rng, n, d)
    rotation = special_ortho_group.rvs(d, random_state=seed) if d > 1 else np.eye(1)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(x, scale * x @ rotation) == pytest.approx(1.0, abs=1e-7)
    assert linear_cka(x, x + 5.0) == pytest.approx(1.0, abs=1e-9)  # column-centred: translation does not count


def test_cka_of_unrelated_spaces_is_small_and_symmetric():
    rng = np.random.default_rng(0)
    x, y = _cloud(rng, 2000, 5), _cloud(rng, 2000, 5)
    assert linear_cka(x, y) < 0.02
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x))
    # a space keeping half of another's directions sits in between
    assert 0.3 < linear_cka(x, np.hstack([x[:, :2], y[:, :3]])) < 0.7


def test_cka_refuses_different_examples_and_non_finite_values():
    with pytest.raises(BadInput, match="same examples"):
        linear_cka(np.ones((4, 2)), np.ones((5, 2)))
    bad = np.ones((4, 2))
    bad[0, 0] = np.nan
    with pytest.raises(BadInput, match="non-finite"):
        linear_cka(bad, np.ones((4, 2)))


# ---------------------------------------------------------------- margins and separation


def _two_clouds(rng: np.random.Generator, gap: float, n: int = 60, d: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Cloud a in x <= 0 and cloud b in x >= gap, each with points on its boundary plane: margin = gap."""
    a, b = _cloud(rng, n, d), _cloud(rng, n, d)
    a[:, 0] = -np.abs(a[:, 0])
    b[:, 0] = gap + np.abs(b[:, 0])
    a[:5, 0], b[:5, 0] = 0.0, gap  # support vectors on both boundaries, facing each other across the gap,
    b[:5, 1:] = a[:5, 1:]  # so no tilted plane does better: each facing pair is exactly ``gap`` apart
    return a, b


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), gap=st.floats(0.05, 20.0))
def test_two_clouds_a_known_gap_apart_get_that_gap_as_their_margin(seed, gap):
    a, b = _two_clouds(np.random.default_rng(seed), gap)
    assert margin_width(a, b) == pytest.approx(gap, rel=1e-3, abs=1e-4)


def test_overlapping_clouds_have_margin_zero():
    rng = np.random.default_rng(1)
    a, b = _cloud(rng, 100, 2), _cloud(rng, 100, 2) + 0.5
    assert margin_width(a, b) == 0.0


def test_pair_distances_min_distances_and_the_points_per_dimension_rule():
    rng = np.random.default_rng(2)
    a, b = _two_clouds(rng, 2.0, n=40, d=2)
    c = b + np.array([5.0, 0.0])  # a third cluster 3 beyond b along x (b reaches to about x = 5)
    c[:, 0] = np.maximum(c[:, 0], 0) + 100.0
    vectors, labels = np.vstack([a, b, c]), np.repeat([0, 1, 2], 40)
    distances = pair_distances(vectors, labels, dims=2)
    assert distances[0, 1] == pytest.approx(2.0, rel=1e-3)
    assert distances[1, 2] > 50 and distances[0, 2] > distances[1, 2]
    assert min_distances(distances) == pytest.approx({0: distances[0, 1], 1: distances[0, 1], 2: distances[1, 2]})
    with pytest.raises(BadInput, match="examples per dimension"):
        pair_distances(vectors[:9], labels[:9], dims=2)


def test_margins_in_principal_components_keep_a_gap_along_the_main_direction():
    rng = np.random.default_rng(3)
    a, b = _two_clouds(rng, 8.0, n=200, d=10)
    a[:, 1:] *= 0.1
    b[:, 1:] *= 0.1  # the gap is along the widest direction, so the top components keep it
    vectors, labels = np.vstack([a, b]), np.repeat([0, 1], 200)
    assert pair_distances(vectors, labels, dims=3)[0, 1] == pytest.approx(8.0, rel=0.02)


# ---------------------------------------------------------------- spatial similarity and movement


def _labelled_space(rng, n_labels=4, per_label=40, d=3):
    centres = rng.normal(scale=20.0, size=(n_labels, d))
    vectors = np.vstack([centre + rng.normal(size=(per_label, d)) for centre in centres])
    return vectors, np.repeat(np.arange(n_labels), per_label)


def test_a_space_and_its_rotated_copy_have_spatial_similarity_one():
    rng = np.random.default_rng(4)
    vectors, labels = _labelled_space(rng)
    rotated = vectors @ special_ortho_group.rvs(3, random_state=4)
    first, second = pair_distances(vectors, labels, dims=3), pair_distances(rotated, labels, dims=3)
    assert min(first.values()) > 0
    assert spatial_similarity(first, second) == pytest.approx(1.0, abs=1e-6)


def test_spatial_similarity_is_undefined_for_two_labels_and_refuses_other_pairs():
    assert math.isnan(spatial_similarity({(0, 1): 1.0}, {(0, 1): 2.0}))
    assert math.isnan(spatial_similarity({(0, 1): 0.0, (0, 2): 0.0, (1, 2): 0.0}, {(0, 1): 1.0, (0, 2): 2.0, (1, 2): 3.0}))
    with pytest.raises(BadInput, match="same label pairs"):
        spatial_similarity({(0, 1): 1.0}, {(0, 2): 1.0})


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shift=st.lists(st.floats(-50, 50), min_size=3, max_size=3))
def test_translating_a_space_moves_every_centroid_by_the_translation_length(seed, shift):
    vectors, labels = _labelled_space(np.random.default_rng(seed))
    moved = centroid_movement(vectors, vectors + np.array(shift), labels)
    assert set(moved) == {0, 1, 2, 3}
    assert all(value == pytest.approx(np.linalg.norm(shift), abs=1e-9) for value in moved.values())


def test_probe_accuracy_reads_separable_labels_and_not_random_ones():
    rng = np.random.default_rng(5)
    vectors, labels = _labelled_space(rng)
    assert probe_accuracy(vectors, labels) == 100.0
    noise = rng.normal(size=(400, 3))
    assert probe_accuracy(noise, rng.integers(0, 2, 400)) < 65.0


# ---------------------------------------------------------------- capture on a tiny BERT


@pytest.fixture(scope="module")
def tiny_encoded():
    """Twelve tokenised sentences of different lengths, as ``harness.method.prepare.Encoded``."""
    from harness.method.models import load_classifier
    from harness.method.prepare import Encoded

    tokenizer = load_classifier("tiny-bert", 2)[1]
    texts = [" ".join(["word"] * (i + 1)) + " end" for i in range(12)]
    ids = tokenizer(texts)["input_ids"]
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in ids])]).astype(np.int64)
    flat = np.concatenate(ids).astype(np.int32)
    return Encoded(flat, np.zeros_like(flat, dtype=np.int8), offsets, np.arange(12) % 2)


def test_layer_vectors_pool_every_hidden_state_as_the_head_does(tiny_encoded):
    from harness.method.models import load_classifier, sentence_vector
    from harness.method.train import collate

    model, tokenizer = load_classifier("tiny-bert", 4, seed=0)
    data = first_examples(tiny_encoded, 10)
    found = layer_vectors(model, data, tokenizer.pad_token_id, torch.device("cpu"))
    assert set(found) == {"mean", "cls"}
    assert found["mean"].shape == (model.config.num_hidden_layers + 1, 10, model.config.hidden_size)
    batch = collate(data, np.arange(10), tokenizer.pad_token_id, torch.device("cpu"))
    with torch.inference_mode():
        for pooling in ("mean", "cls"):
            expected = sentence_vector(model, pooling=pooling, pooler=False, **batch).numpy()
            np.testing.assert_allclose(found[pooling][-1], expected, rtol=1e-4, atol=1e-5)


def test_first_examples_keeps_order_and_token_ids(tiny_encoded):
    data = tiny_encoded
    head = first_examples(data, 3)
    assert len(head) == 3 and list(head.labels) == list(data.labels[:3])
    np.testing.assert_array_equal(head.input_ids, data.input_ids[: data.offsets[3]])
    assert len(first_examples(data, 10**6)) == len(data)


# ---------------------------------------------------------------- the analysis table


def _cell(setting: str, seed: int, rng, gap: float, n_layers: int = 2) -> CellVectors:
    """Two labels a ``gap`` apart at the last layer after fine-tuning; overlapping everywhere else."""
    labels = np.repeat([0, 1], 60)
    layers = {}
    for moment in ("before", "after"):
        for pooling in ("mean", "cls"):
            # every clean cell starts from the same pretrained model
            source = np.random.default_rng(99) if (setting, moment) == ("clean", "before") else rng
            states = source.normal(size=(n_layers + 1, 120, 3))
            if moment == "after":
                a, b = _two_clouds(rng, gap, n=60, d=3)
                states[-1] = np.vstack([a, b])
            layers[moment, pooling] = states
    return CellVectors(setting, seed, labels, layers)


def test_measure_gives_every_measure_per_layer_and_the_by_layer_means():
    rng = np.random.default_rng(6)
    gaps = {"clean": 4.0, "top": 4.0, "bottom": 1.0, "100%": 0.5}
    cells = [_cell(setting, seed, rng, gap) for setting, gap in gaps.items() for seed in (0, 1)]
    table = measure(cells, dims=3, jobs=1)
    assert set(table["measure"]) == {"probe_accuracy", "pair_distance", "min_distance", "separation", "movement",
                                     "movement_mean", "spatial_similarity", "cka"}
    head = by_layer(table, "mean")
    last = head[head["layer"] == 2].set_index("setting")
    for setting, gap in gaps.items():
        assert last.loc[setting, "separation_after"] == pytest.approx(gap, rel=1e-3)
    assert (head[head["layer"] < 2]["separation_after"] == 0).all()  # random clouds overlap
    assert head["cka_before_to_pretrained"][head["setting"] == "clean"].tolist() == pytest.approx([1.0] * 3)
    assert head["spatial_to_clean"].isna().all()  # two labels: a single distance, no correlation


# ---------------------------------------------------------------- claim 5 on built truths


def _separation(values: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"setting": s, "seed": i, "separation": v} for s, vs in values.items() for i, v in enumerate(vs)]
    frame = pd.DataFrame(rows)
    frame.attrs.update(model="m", dataset="d")
    return frame


def _verdicts(values) -> dict[str, Verdict]:
    return {c.stratum: c.verdict for c in separation_order(_separation(values), "results")}


def test_claim5_supported_when_the_order_holds_with_equal_ends():
    verdicts = _verdicts({"clean": [10.0, 10.2, 9.9], "top": [9.9, 10.1, 9.8], "bottom": [3.0, 3.3, 3.1],
                          "100%": [2.0, 2.4, 2.1]})
    assert verdicts == {"top ≤ clean": S, "bottom < top": S, "100% ≤ bottom": S}


def test_claim5_contradicted_when_bottom_separates_better_than_top():
    verdicts = _verdicts({"clean": [10.0, 10.2, 9.9], "top": [3.0, 3.1, 2.9], "bottom": [9.0, 9.3, 9.1],
                          "100%": [2.0, 2.4, 2.1]})
    assert verdicts["bottom < top"] == C
    assert verdicts["top ≤ clean"] == S  # a significant gap is what "at most" predicts
    verdicts = _verdicts({"clean": [5.0, 5.2, 5.1], "top": [9.0, 9.5, 9.2], "bottom": [2.0, 2.1, 2.2],
                          "100%": [1.0, 1.1, 1.0]})
    assert verdicts["top ≤ clean"] == C


def test_claim5_inconclusive_when_noisy_unmeasurable_or_from_the_paper():
    noisy = _verdicts({"clean": [10.0, 2.0, 6.0], "top": [2.0, 10.0, 6.5], "bottom": [6.0, 1.0, 9.0],
                       "100%": [9.0, 1.0, 5.0]})
    assert noisy["bottom < top"] == I
    zeros = separation_order(_separation({s: [0.0, 0.0] for s in ("clean", "top", "bottom", "100%")}), "results")
    assert {c.verdict for c in zeros} == {I} and "separable" in zeros[0].detail
    one_seed = separation_order(_separation({s: [v] for s, v in (("clean", 3.0), ("top", 2.0), ("bottom", 1.0),
                                                                  ("100%", 0.5))}), "results")
    assert {c.verdict for c in one_seed} == {I} and ">= 2" in one_seed[0].detail
    paper = separation_order(None, "paper")
    assert [c.verdict for c in paper] == [I] and "only pictures" in paper[0].detail
    assert paper[0].claim == CLAIMS[4]
