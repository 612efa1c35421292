"""Figures from synthetic results: the F1 curves and Figure 1's t-SNE with silhouette scores."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from harness.errors import BadInput
from harness.figures import (
    choose_tsne_cells,
    embed,
    f1_vs_level_figure,
    features_file,
    plot_f1_vs_level,
    texts_outside,
    tsne_figure,
)
from harness.method.config import CellConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic_summary() -> pd.DataFrame:
    rows = []
    for model in ("minilm-l6", "tiny-bert"):
        for dataset in ("sst2", "ag_news"):
            for position, level in (("none", 0), ("bottom", 50), ("top", 50), ("all", 100)):
                rows.append({"model": model, "dataset": dataset, "pooling": "cls", "mode": "full",
                             "position": position, "level": level, "n_corrupted": level // 25, "n_layers": 4,
                             "best_f1_mean": 90 - level / 5 - (5 if position == "bottom" else 0),
                             "best_f1_std": 1.0 if model == "minilm-l6" else float("nan"),
                             "selected_f1_mean": 88.0, "selected_f1_std": 1.0, "majority_f1": 33.0})
    return pd.DataFrame(rows)


def test_f1_vs_level_png(tmp_path):
    path = plot_f1_vs_level(synthetic_summary(), tmp_path / "plots" / "f1_vs_level.png")
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000


def test_f1_vs_level_title_fits_a_one_panel_wide_figure():
    summary = synthetic_summary()
    one = summary[(summary["model"] == "minilm-l6") & (summary["dataset"] == "sst2")]  # 3.2 inches wide
    assert texts_outside(f1_vs_level_figure(one)) == []
    assert texts_outside(f1_vs_level_figure(summary)) == []


def blobs(n_per_class: int, n_classes: int, dim: int = 8, spread: float = 0.3, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, size=(n_classes, dim))
    labels = np.repeat(np.arange(n_classes), n_per_class)
    return (centres[labels] + rng.normal(0, spread, size=(len(labels), dim))).astype(np.float32), labels


def test_silhouette_tells_clusters_from_noise():
    features, labels = blobs(10, 3)
    separated = embed("clean", features, labels)
    shuffled = embed("100%", features, np.random.default_rng(1).permutation(labels))
    assert separated.points.shape == (30, 2) and separated.perplexity < 30
    assert separated.silhouette > 0.8 and separated.silhouette_2d > 0.5
    assert shuffled.silhouette < 0.1


def test_embed_subsamples_keeping_every_class():
    features, labels = blobs(40, 3)
    panel = embed("clean", features, labels, max_points=30)
    assert len(panel.labels) == 30 and set(panel.labels) == {0, 1, 2}


def test_too_few_points_fail_clearly():
    with pytest.raises(BadInput, match="needs >= 4"):
        embed("clean", np.zeros((3, 4), np.float32), np.array([0, 1, 0]))


def tsne_panels() -> dict[str, list[CellConfig]]:
    base = CellConfig(model="minilm-l6", dataset="ag_news", epochs=1)
    settings = {"clean": ("none", 0.0), "top 33%": ("top", 1 / 3), "bottom 33%": ("bottom", 1 / 3), "100%": ("all", 1.0)}
    return {name: [base.with_(position=p, fraction=f, lr=lr) for lr in (1e-5, 5e-5)]
            for name, (p, f) in settings.items()}


def test_tsne_figure_from_saved_features(tmp_path):
    panels = tsne_panels()
    scores = pd.DataFrame([{"config_hash": c.hash, "best_test_f1": 90.0 if c.lr == 5e-5 else 80.0}
                           for candidates in panels.values() for c in candidates])
    chosen = choose_tsne_cells(panels, scores)
    assert {c.lr for c in chosen.values()} == {5e-5}  # the paper's choice: the best test F1
    for i, config in enumerate(chosen.values()):
        features, labels = blobs(8, 4, spread=0.3 + 3 * i, seed=i)  # clusters blur as corruption grows
        np.savez(features_file(config, tmp_path, "ag-news-files"), features=features, labels=labels)

    result = tsne_figure(chosen, tmp_path, tmp_path / "tsne.png", tmp_path / "tsne.json", "ag-news-files")
    assert (tmp_path / "tsne.png").read_bytes()[:8] == PNG_MAGIC
    saved = json.loads((tmp_path / "tsne.json").read_text())
    assert saved == json.loads(json.dumps(result)) and list(saved["panels"]) == list(panels)
    silhouettes = [saved["panels"][name]["silhouette"] for name in panels]
    assert silhouettes == sorted(silhouettes, reverse=True)
    assert saved["panels"]["clean"]["config_hash"] == chosen["clean"].hash


def test_tsne_of_the_final_layers_cls_token_reads_the_per_layer_capture(tmp_path):
    panels = tsne_panels()
    scores = pd.DataFrame([{"config_hash": c.hash, "best_test_f1": 80.0} for v in panels.values() for c in v])
    chosen = choose_tsne_cells(panels, scores)
    for i, config in enumerate(chosen.values()):
        final, labels = blobs(8, 4, spread=0.3 + 3 * i, seed=i)
        # (embeddings + 2 layers, examples, hidden): only the last layer clusters; the head's input is noise
        layers = np.stack([np.random.default_rng(i).normal(size=final.shape), np.zeros_like(final), final])
        np.savez(features_file(config, tmp_path, "d"), features=np.random.default_rng(9).normal(size=(5, 3)),
                 labels=np.zeros(5, int), layers_test_after_cls=layers.astype(np.float16), labels_test=labels)
    saved = tsne_figure(chosen, tmp_path, tmp_path / "tsne.png", tmp_path / "tsne.json", "d", vectors="cls")
    assert saved["vectors"] == "cls" and all(p["n_points"] == 32 for p in saved["panels"].values())
    silhouettes = [saved["panels"][name]["silhouette"] for name in panels]
    assert silhouettes == sorted(silhouettes, reverse=True) and silhouettes[0] > 0.5
    np.savez(features_file(chosen["clean"], tmp_path, "d"), features=np.zeros((5, 3)), labels=np.zeros(5, int))
    with pytest.raises(BadInput, match="lacks its cls vectors"):  # a cell saved before the capture existed
        tsne_figure(chosen, tmp_path, tmp_path / "tsne.png", tmp_path / "tsne.json", "d", vectors="cls")


def test_tsne_needs_the_features(tmp_path):
    panels = tsne_panels()
    scores = pd.DataFrame([{"config_hash": c.hash, "best_test_f1": 80.0} for v in panels.values() for c in v])
    with pytest.raises(BadInput, match="rerun the grid"):
        tsne_figure(choose_tsne_cells(panels, scores), tmp_path, tmp_path / "t.png", tmp_path / "t.json", "digest")
    with pytest.raises(BadInput, match="run the grid first"):
        choose_tsne_cells(panels, scores.iloc[:0])
