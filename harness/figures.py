"""The figures: F1 against corruption level (Tables 2-5 as curves) and the paper's Figure 1 (t-SNE).

* ``f1_vs_level.png``: weighted F1 against the share of layers corrupted, bottom and top as two
  curves sharing the clean and 100% points; one panel per dataset and per (model, pooling, mode)
  slice; each point is the paper's protocol (best epoch, best lr), the mean over seeds with their
  standard deviation as error bar; the dotted line is the majority-class F1.
* ``tsne.png`` (Figure 1): t-SNE of the fine-tuned test-set vectors for the clean, top-k, bottom-k
  and fully corrupted model on one dataset: the final layer's [CLS] token output, as the paper plots
  (``vectors: cls``; the first 1,000 test examples, from the cell's per-layer capture), or the vectors
  the classifier head reads (``vectors: head_input``: the pooler's output where there is one). t-SNE
  pictures can mislead, so each panel also carries the silhouette score of the true labels, both in
  the features' own space and in the 2-D map (also written to ``tsne.json``).

Figures are drawn on ``matplotlib.figure.Figure`` directly (Agg canvas): no pyplot global state.
"""

from __future__ import annotations

import json
import math
import sys
import textwrap
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score
from sklearn.utils import resample
from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

from harness.errors import BadInput, BadResults
from harness.files import read_csv, write_atomic, write_text_atomic
from harness.grid.aggregate import level_curves
from harness.grid.expand import expand, tsne_cells
from harness.grid.profiles import load_profile
from harness.method.config import CellConfig
from harness.method.data import dataset_digest, dataset_spec
from harness.method.record import features_path, record_path

SERIES_COLORS = {"bottom": "tab:red", "top": "tab:blue"}


def fitted_title(text: str, width_in: float, fontsize: float) -> str:
    """``text`` wrapped to lines that fit ``width_in`` inches at ``fontsize`` points (an average glyph of DejaVu
    Sans is ~0.55 em wide): a suptitle wider than its figure is cut off, even under constrained layout."""
    per_line = max(12, int(width_in * 72 / (0.55 * fontsize)))
    return textwrap.fill(text, per_line)


def texts_outside(figure: Figure) -> list[str]:
    """What a reader would find cut off once ``figure`` is drawn: each figure-level text (suptitle, legend
    entries) and each panel (its title, labels and drawn tick labels) that does not lie wholly inside it.
    Empty when everything fits."""
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)  # constrained layout places everything on drawing
    inside = figure.bbox.padded(1.0)  # a pixel of rounding

    def fits(box) -> bool:
        return inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1

    found = [f"panel {ax.get_title()!r}" for ax in figure.axes
             if ax.get_visible() and (box := ax.get_tightbbox(renderer)) is not None and not fits(box)]
    in_panels = {id(text) for ax in figure.axes for text in ax.findobj(Text)}  # judged with their panel above
    for text in figure.findobj(Text):
        if id(text) in in_panels or not text.get_visible() or not text.get_text().strip():
            continue
        if not fits(text.get_window_extent(renderer)):
            found.append(text.get_text())
    return found


def plot_f1_vs_level(summary: pd.DataFrame, path: str | Path) -> Path:
    """Draw ``f1_vs_level.png`` from ``summary.csv``'s table (``harness.grid.aggregate.summarise``)."""
    return _save_png(f1_vs_level_figure(summary), path)


def f1_vs_level_figure(summary: pd.DataFrame) -> Figure:
    curves = level_curves(summary)
    slices, datasets = list(dict.fromkeys(curves["slice"])), list(dict.fromkeys(curves["dataset"]))
    figure = Figure(figsize=(3.2 * len(datasets), 2.9 * len(slices)), layout="constrained")
    axes = figure.subplots(len(slices), len(datasets), squeeze=False)
    for (row, slice_name), (column, dataset) in ((r, c) for r in enumerate(slices) for c in enumerate(datasets)):
        ax = axes[row][column]
        panel = curves[(curves["slice"] == slice_name) & (curves["dataset"] == dataset)]
        if panel.empty:  # e.g. the probe slice runs on fewer datasets
            ax.set_axis_off()
            continue
        for series, color in SERIES_COLORS.items():
            part = panel[panel["series"] == series]
            ax.errorbar(part["level"], part["f1"], yerr=part["best_f1_std"].fillna(0.0), color=color, marker="o",
                        markersize=4, capsize=3, label=f"{series} layers")
        ax.axhline(panel["majority_f1"].mean(), color="grey", linestyle=":", label="majority class")
        ax.set_title(f"{dataset}\n{slice_name}", fontsize=9)
        ax.set_xlabel("layers corrupted (%)")
        ax.set_ylabel("weighted F1 (%)")
        ax.set_xticks(sorted(panel["level"].unique()))
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    figure.suptitle(fitted_title("Fine-tuned F1 against corruption (best epoch and lr; mean and std over seeds)",
                                 figure.get_figwidth(), 10), fontsize=10)
    return figure


def _save_png(figure: Figure, path: str | Path) -> Path:
    return write_atomic(path, lambda handle: figure.savefig(handle, format="png", dpi=120))


# ---------------------------------------------------------------- how healing changes the representations

ANALYSIS_COLORS = {"clean": "black", "top": "tab:blue", "bottom": "tab:red", "100%": "tab:purple"}


def plot_cka_heatmap(by_layer: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Layer x setting heatmap of linear CKA to the clean fine-tuned model (``harness.beyond.analysis.by_layer``),
    beside the same after fine-tuning to the pretrained model."""
    panels = (("cka_to_clean", "CKA to the clean fine-tuned model\n(other seeds; clean row: seed-to-seed)"),
              ("cka_to_pretrained", "CKA to the pretrained model"))
    settings = [s for s in ANALYSIS_COLORS if s in set(by_layer["setting"].astype(str))]
    layers = sorted(by_layer["layer"].unique())
    figure = Figure(figsize=(1.0 + 0.9 * len(layers) * len(panels), 0.6 + 0.55 * len(settings)), layout="constrained")
    for ax, (column, label) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        grid = by_layer.pivot_table(index="setting", columns="layer", values=column, observed=True).reindex(settings)
        image = ax.imshow(grid.to_numpy(dtype=float), vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        for (row, col), value in np.ndenumerate(grid.to_numpy(dtype=float)):
            if math.isfinite(value):
                ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if value < 0.6 else "black")
        ax.set_xticks(range(len(layers)), [("emb" if layer == 0 else str(layer)) for layer in layers], fontsize=7)
        ax.set_yticks(range(len(settings)), settings, fontsize=7)
        ax.set_xlabel("layer (emb = embeddings' output)", fontsize=8)
        ax.set_title(label, fontsize=8)
    figure.colorbar(image, ax=figure.axes, shrink=0.8, label="linear CKA")
    figure.suptitle(f"After fine-tuning: {title}", fontsize=9)
    return _save_png(figure, path)


def plot_layer_measures(by_layer: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Label separation, probe accuracy and centroid movement per layer, one line per setting
    (solid: after fine-tuning; dotted: before, i.e. the corrupted or pretrained model)."""
    panels = (("separation", "label separation\n(mean min. margin width)"), ("probe", "linear probe accuracy (%)"),
              ("movement", "centroid movement in fine-tuning"))
    figure = Figure(figsize=(4.0 * len(panels), 3.2), layout="constrained")
    for ax, (measure, label) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        for setting, color in ANALYSIS_COLORS.items():
            part = by_layer[by_layer["setting"].astype(str) == setting]
            if part.empty:
                continue
            if measure == "movement":
                ax.plot(part["layer"], part["movement"], color=color, marker="o", markersize=3, label=setting)
                continue
            ax.plot(part["layer"], part[f"{measure}_after"], color=color, marker="o", markersize=3, label=setting)
            ax.plot(part["layer"], part[f"{measure}_before"], color=color, linestyle=":", linewidth=1)
        ax.set_xlabel("layer (0 = embeddings' output)", fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=7)
    figure.axes[0].legend(fontsize=7, title="solid: after FT\ndotted: before", title_fontsize=7)
    figure.suptitle(title, fontsize=9)
    return _save_png(figure, path)


# ---------------------------------------------------------------- beyond the paper: healing curve, ablations


def plot_placeholder(path: str | Path, text: str) -> Path:
    """A figure that says why there is none (the pipeline's outputs always exist)."""
    figure = Figure(figsize=(5.2, 1.2), layout="constrained")
    figure.text(0.5, 0.5, text, ha="center", va="center", fontsize=8, wrap=True)
    return _save_png(figure, path)


def plot_healing_curve(gap_table: pd.DataFrame, path: str | Path, margin: float, title: str = "",
                       marks: Mapping[str, float] | None = None) -> Path:
    """The recovery gap (clean minus corrupted F1) against the budget, one line per corrupted setting
    (``harness.beyond.healing_curve.gap_table``), with the equivalence margin shaded around 0; hollow points where
    the clean model had not learned the task (left out of the verdicts), and ``marks`` (label -> budget, e.g. the
    replication's and the paper's) as dotted lines, so the reader sees how far the curve sits from them."""
    figure = Figure(figsize=(5.6, 3.4), layout="constrained")
    ax = figure.subplots()
    ax.axhspan(-margin, margin, color="0.9", label=f"±{margin:g} (complete recovery)")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    colors = {"bottom": "tab:red", "top": "tab:blue", "all": "tab:purple"}
    for (position, level), part in gap_table.groupby(["position", "level"], sort=False):
        label = "100%" if position == "all" else f"{position} {level:.0f}%"
        color = colors.get(position)
        ax.errorbar(part["budget"], part["mean"], yerr=part["std"].fillna(0.0), marker="o", markersize=4, capsize=3,
                    color=color, label=label)
        unlearned = part[~part["learned"].astype(bool)] if "learned" in part else part.iloc[:0]
        ax.plot(unlearned["budget"], unlearned["mean"], marker="o", markersize=7, linestyle="none",
                markerfacecolor="white", markeredgecolor=color)
    if "learned" in gap_table and not gap_table["learned"].astype(bool).all():
        ax.plot([], [], marker="o", linestyle="none", markerfacecolor="white", markeredgecolor="black",
                label="clean model not yet learned (not judged)")
    for text, budget in (marks or {}).items():
        ax.axvline(budget, color="black", linestyle=":", linewidth=1)
        ax.text(budget, 1.0, f" {text}", fontsize=7, va="top", rotation=90, transform=ax.get_xaxis_transform())
    ax.set_xscale("log", base=2)
    ax.set_xlabel("fine-tuning budget (training examples x epochs)")
    ax.set_ylabel("clean F1 - corrupted F1 (points)")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    return _save_png(figure, path)


def plot_budget_gaps(points: pd.DataFrame, lines: pd.DataFrame, path: str | Path, margin: float,
                     level: float) -> Path:
    """Claim 1's gap against the budget, one panel per dataset (``harness.beyond.budget.gap_points``: gap with its
    interval per setting and budget) and each setting's fitted line (``lines``: dataset, setting, slope, at_paper,
    paper_budget) drawn on to the paper's budget, marked."""
    datasets = list(dict.fromkeys(points["dataset"]))
    figure = Figure(figsize=(3.4 * max(len(datasets), 1), 3.3), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, max(len(datasets), 1), squeeze=False)[0])
    colors = {"bottom": "tab:red", "top": "tab:blue", "100%": "tab:purple"}
    for ax, dataset in zip(axes, datasets):
        ax.axhspan(-margin, margin, color="0.9")
        ax.axhline(0.0, color="grey", linewidth=0.8)
        mine = points[points["dataset"] == dataset]
        for setting, part in mine.groupby("setting", sort=False):
            color = colors.get(str(setting).split(" ")[0])
            ax.errorbar(part["budget"], part["gap"], yerr=[part["gap"] - part["low"], part["high"] - part["gap"]],
                        marker="o", markersize=4, capsize=3, color=color, label=str(setting), linestyle="none")
            fit = lines[(lines["dataset"] == dataset) & (lines["setting"] == setting)]
            for row in fit.itertuples():
                xs = np.array([part["budget"].min(), row.paper_budget], dtype=float)
                ax.plot(xs, row.at_paper + row.slope * (np.log2(xs) - math.log2(row.paper_budget)), color=color,
                        linestyle="--", linewidth=1)
        for row in lines[lines["dataset"] == dataset].drop_duplicates("paper_budget").itertuples():
            ax.axvline(row.paper_budget, color="black", linestyle=":", linewidth=1)
            ax.text(row.paper_budget, ax.get_ylim()[1], " paper", fontsize=7, va="top")
        ax.set_xscale("log", base=2)
        ax.set_title(dataset, fontsize=9)
        ax.set_xlabel("example-passes (log2)")
        ax.legend(fontsize=6)
    axes[0].set_ylabel(f"F1(clean) - F1(setting), {level:.0%} interval")
    return _save_png(figure, path)


def plot_ablations(cells: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Test F1 of every full fine-tuning variant (``harness.beyond.ablations.with_variants``): seed means as bars,
    seeds as dots, clean as a line."""
    order = list(dict.fromkeys(cells["variant"]))
    figure = Figure(figsize=(6.5, 0.5 + 0.32 * len(order)), layout="constrained")
    ax = figure.subplots()
    for row, variant in enumerate(order):
        scores = cells[cells["variant"] == variant]["best_test_f1"].dropna()
        if len(scores):
            ax.barh(row, scores.mean(), color="tab:blue" if variant != "clean" else "black", alpha=0.35)
            ax.plot(scores, [row] * len(scores), "o", color="black", markersize=3)
        else:
            ax.text(ax.get_xlim()[0], row, " diverged", va="center", fontsize=7, color="tab:red")
    clean = cells[cells["variant"] == "clean"]["best_test_f1"].mean()
    ax.axvline(clean, color="black", linestyle=":", linewidth=1)
    ax.set_yticks(range(len(order)), order, fontsize=7)
    ax.invert_yaxis()
    finite = cells["best_test_f1"].dropna()
    ax.set_xlim(max(0.0, finite.min() - 5), finite.max() + 2)
    ax.set_xlabel("weighted F1 (%), best epoch")
    ax.set_title(title, fontsize=9)
    return _save_png(figure, path)


# ---------------------------------------------------------------- issue 22: the replication's forest plot

FOREST_STYLE = {  # (source, pooled) -> marker, colour, filled, legend label
    ("ours", False): ("o", "black", True, "ours (MiniLM-L6); marks: S, C, I verdict, P provisional"),
    ("paper", False): ("s", "tab:orange", False, "paper (BERT-base), measured run noise"),
    ("ours", True): ("D", "black", True, "pooled over datasets (random effects)"),
    ("paper", True): ("D", "tab:orange", False, "the paper's, pooled the same way"),
}


def plot_forest(rows: pd.DataFrame, path: str | Path, *, title: str, xlabel: str,
                row_order: Sequence[str] = (), max_columns: int = 4) -> Path:
    """Draw ``forest_figure`` to ``path``."""
    return _save_png(forest_figure(rows, title=title, xlabel=xlabel, row_order=row_order, max_columns=max_columns),
                     path)


def forest_figure(rows: pd.DataFrame, *, title: str, xlabel: str, row_order: Sequence[str] = (),
                  max_columns: int = 4) -> Figure:
    """A forest plot (``harness.report.replication.forest_rows``): one panel per stratum, one row per dataset (in
    ``row_order``, then as they come) with our gap and the paper's just below it, the pooled rows last; 0 and
    the claim's boundary as vertical lines."""
    strata = list(dict.fromkeys(rows["stratum"])) or ["(nothing to plot)"]
    pooled = rows["pooled"].astype(bool)
    present = set(rows.loc[~pooled, "row"])
    labels = list(dict.fromkeys([r for r in row_order if r in present] + list(rows.loc[~pooled, "row"]))) + \
        list(dict.fromkeys(rows.loc[pooled, "row"]))
    position = {label: i for i, label in enumerate(labels)}
    columns = min(len(strata), max_columns)
    lines = math.ceil(len(strata) / columns)
    width = max(4.0, 1.3 + 2.5 * columns)  # 4 inches: the legend's longest entry, stacked, still fits
    figure = Figure(figsize=(width, 1.5 + lines * (0.6 + 0.3 * max(len(labels), 1))), layout="constrained")
    axes = figure.subplots(lines, columns, squeeze=False, sharey=True, sharex=True)  # one scale for every panel
    handles = {}
    for ax, stratum in zip(axes.flat, strata):
        panel = rows[rows["stratum"] == stratum]
        ax.axvline(0.0, color="grey", linewidth=0.8)
        for boundary in {float(b) for b in panel["boundary"] if float(b) != 0.0}:
            label = f"the claim's boundary ({boundary:+g})"
            handles[label] = ax.axvline(boundary, color="tab:red", linestyle="--", linewidth=0.9, label=label)
        for row in panel.itertuples(index=False):
            marker, color, filled, label = FOREST_STYLE[(row.source, bool(row.pooled))]
            y = position[row.row] + (0.3 if row.source == "paper" else 0.0)
            error = None
            if math.isfinite(row.low) and math.isfinite(row.high):
                error = [[row.estimate - row.low], [row.high - row.estimate]]
            handles[label] = ax.errorbar(row.estimate, y, xerr=error, fmt=marker, color=color, markersize=5,
                                         capsize=2, linewidth=1, markerfacecolor=color if filled else "white",
                                         label=label)
            mark = getattr(row, "verdict", "")[:1] + ("P" if getattr(row, "provisional", False) else "")
            if mark:  # the row's verdict beside its interval: S(upported), C(ontradicted), I(nconclusive), P(rovisional)
                ax.annotate(mark, (row.high if math.isfinite(row.high) else row.estimate, y), xytext=(3, 0),
                            textcoords="offset points", fontsize=6, va="center", color=color)
        ax.set_title(stratum, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel(xlabel, fontsize=7)
    for ax in list(axes.flat)[len(strata):]:
        ax.set_axis_off()
    first = axes[0][0]
    first.set_yticks([position[label] + 0.15 for label in labels], labels)
    first.set_ylim(len(labels) - 0.4, -0.6)
    if handles:
        figure.legend(list(handles.values()), list(handles), loc="outside lower center",
                      ncols=min(3, columns, len(handles)), fontsize=7, frameon=False)
    figure.suptitle(fitted_title(title, width, 10), fontsize=10)
    return figure


# ---------------------------------------------------------------- Figure 1: t-SNE


@dataclass(frozen=True)
class TsnePanel:
    """One setting of Figure 1: the 2-D map and how well the labels cluster, before and after it."""

    setting: str
    points: np.ndarray  # (n, 2)
    labels: np.ndarray  # (n,)
    silhouette: float  # in the features' own space
    silhouette_2d: float  # in the t-SNE map
    perplexity: float


def _silhouette(vectors: np.ndarray, labels: np.ndarray) -> float:
    if not 2 <= len(np.unique(labels)) <= len(labels) - 1:
        return float("nan")  # undefined for one cluster or one point per cluster
    return float(silhouette_score(vectors, labels))


def embed(setting: str, features: np.ndarray, labels: np.ndarray, *, max_points: int = 2000, seed: int = 0,
          threads: int = 1) -> TsnePanel:
    """t-SNE of (at most ``max_points``, label-stratified) feature vectors, with silhouette scores.

    One thread by default: 2,000 points take seconds on one, while OpenMP threads competing with other
    processes for a busy machine's cores made the same t-SNE 20x slower (measured on 2 shared cores).
    """
    if len(features) != len(labels) or len(features) < 4:
        raise BadInput(f"t-SNE of {setting!r} needs >= 4 feature vectors with one label each, "
                       f"got {len(features)} vectors and {len(labels)} labels")
    if len(features) > max_points:
        features, labels = resample(features, labels, n_samples=max_points, replace=False, stratify=labels,
                                    random_state=seed)
    perplexity = min(30.0, (len(features) - 1) / 3)  # sklearn needs perplexity < n; 30 is its default
    with threadpool_limits(limits=threads):
        points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)
        silhouette, silhouette_2d = _silhouette(features, labels), _silhouette(points, labels)
    return TsnePanel(setting=setting, points=points, labels=labels, silhouette=silhouette,
                     silhouette_2d=silhouette_2d, perplexity=perplexity)


def plot_tsne(panels: Sequence[TsnePanel], path: str | Path, *, title: str = "",
              label_names: Sequence[str] | None = None) -> Path:
    figure = Figure(figsize=(3.3 * len(panels), 3.9), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    classes = np.unique(np.concatenate([p.labels for p in panels]))
    palette = colormaps["tab10" if len(classes) <= 10 else "tab20"]
    colors = {c: palette(i % palette.N) for i, c in enumerate(classes)}
    for ax, panel in zip(axes, panels):
        for label in classes:
            chosen = panel.labels == label
            name = label_names[label] if label_names is not None and label < len(label_names) else str(label)
            ax.scatter(panel.points[chosen, 0], panel.points[chosen, 1], s=4 if len(panel.labels) > 500 else 12,
                       alpha=0.7, color=colors[label], label=name, linewidths=0)
        ax.set_title(panel.setting, fontsize=10)
        ax.set_xlabel(f"silhouette {panel.silhouette:.2f} (features), {panel.silhouette_2d:.2f} (2-D)", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[-1].legend(fontsize=7, markerscale=2, loc="best")
    figure.suptitle(title, fontsize=10)
    return _save_png(figure, path)


def features_file(config: CellConfig, cells_dir: str | Path, data_digest: str) -> Path:
    """Where ``run_cell(..., save_features=True)`` leaves a cell's test-set features (beside its record)."""
    return features_path(record_path(config, cells_dir, data_digest))


def choose_tsne_cells(panels: Mapping[str, Sequence[CellConfig]], cells: pd.DataFrame) -> dict[str, CellConfig]:
    """Per Figure-1 panel, the cell (one per lr) with the best test F1: the paper's model choice."""
    scores = dict(zip(cells["config_hash"], cells["best_test_f1"]))
    chosen = {}
    for setting, candidates in panels.items():
        done = [c for c in candidates if c.hash in scores]
        if not done:
            raise BadResults(f"t-SNE panel {setting!r}: no result record among cells "
                           f"{[c.hash for c in candidates]}; run the grid first")
        chosen[setting] = max(done, key=lambda c: -math.inf if math.isnan(scores[c.hash]) else scores[c.hash])
    return chosen


# Where each kind of Figure-1 vector lies in a cell's saved .npz (harness.method.cell._save_vectors): the head's
# input on the whole test set, or the per-layer capture after fine-tuning, whose last layer is the final one.
FINAL_CLS = "layers_test_after_cls"


def _load_features(path: Path, setting: str, vectors: str = "head_input") -> tuple[np.ndarray, np.ndarray]:
    """(vectors, labels) of one panel: the head's inputs, or the final layer's [CLS] token (``vectors``)."""
    if not path.exists():
        raise BadResults(f"t-SNE panel {setting!r}: {path} is missing; rerun the grid (it saves features "
                         "for the profile's tsne cells)")
    try:
        with np.load(path, allow_pickle=False) as saved:
            if vectors == "cls":
                return final_cls(saved[FINAL_CLS]), saved["labels_test"]
            return saved["features"], saved["labels"]
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise BadResults(f"t-SNE panel {setting!r}: {path} is unreadable or lacks its {vectors} vectors ({error}); "
                         "delete it and rerun the grid") from error


def final_cls(layers: np.ndarray) -> np.ndarray:
    """The final layer's [CLS] vectors from a capture of shape (layers + 1, examples, hidden), as float32
    (the capture stores float16; t-SNE and the silhouette want full precision arithmetic)."""
    if layers.ndim != 3:
        raise ValueError(f"a per-layer capture has 3 axes (layers + 1, examples, hidden), got shape {layers.shape}")
    return layers[-1].astype(np.float32)


TSNE_TITLES = {"head_input": "the classifier's input", "cls": "the final layer's [CLS] token"}


def tsne_figure(chosen: Mapping[str, CellConfig], cells_dir: str | Path, png: str | Path, json_path: str | Path,
                data_digest: str, *, max_points: int = 2000, seed: int = 0, vectors: str = "head_input") -> dict:
    """Draw Figure 1 from the chosen cells' saved vectors and write the silhouette scores as JSON.

    ``data_digest``: the digest of the chosen cells' dataset (``harness.method.data.dataset_digest``);
    ``vectors``: which (``harness.grid.profiles.TSNE_VECTORS``).
    """
    panels, summary = [], {}
    for setting, config in chosen.items():
        features, labels = _load_features(features_file(config, cells_dir, data_digest), setting, vectors)
        panel = embed(setting, features, labels, max_points=max_points, seed=seed)
        panels.append(panel)
        summary[setting] = {"config_hash": config.hash, "lr": config.lr, "n_points": len(panel.labels),
                            "perplexity": panel.perplexity,
                            **{k: None if math.isnan(v) else v  # JSON has no NaN
                               for k, v in (("silhouette", panel.silhouette), ("silhouette_2d", panel.silhouette_2d))}}
    first = next(iter(chosen.values()))
    label_names = None
    try:
        label_names = dataset_spec(first.dataset).label_names
    except BadInput:
        pass
    plot_tsne(panels, png, label_names=label_names,
              title=f"t-SNE of {TSNE_TITLES[vectors]} after fine-tuning ({first.pooling} pooling): {first.model} on "
                    f"{first.dataset} (test set)")
    result = {"model": first.model, "dataset": first.dataset, "pooling": first.pooling, "mode": first.mode,
              "seed": first.seed, "vectors": vectors, "panels": summary}
    write_text_atomic(json_path, json.dumps(result, indent=1) + "\n")
    return result


# ---------------------------------------------------------------- a profile's figures


def plot_profile(profile_name: str | None, *, params: str | Path, results_dir: str | Path, cells_dir: str | Path,
                 out_dir: str | Path, max_points: int, data_dir: str | Path) -> None:
    """Both figures of a profile of ``params`` (None: its ``profile:`` key), from the tables in ``results_dir``."""
    profile = load_profile(profile_name, params)
    results = Path(results_dir)
    hint = "run `python -m harness aggregate` first"
    numbers = ["level", "best_f1_mean", "best_f1_std", "selected_f1_mean", "selected_f1_std", "majority_f1"]
    summary = read_csv(results / "summary.csv", "summary table", hint,
                       ["model", "dataset", "pooling", "mode", "position", *numbers], numeric=numbers)
    cells = read_csv(results / "cells.csv", "cells table", hint, ["config_hash", "best_test_f1"], numeric=["best_test_f1"])
    print(plot_f1_vs_level(summary, Path(out_dir) / "f1_vs_level.png"))
    if profile.tsne is None:
        print(f"profile {profile.name!r} has no tsne entry: Figure 1 skipped", file=sys.stderr)
        return
    chosen = choose_tsne_cells(tsne_cells(profile, expand(profile)), cells)
    tsne_figure(chosen, cells_dir, Path(out_dir) / "tsne.png", results / "tsne.json",
                dataset_digest(profile.tsne.dataset, data_dir), max_points=max_points, vectors=profile.tsne.vectors)
    print(Path(out_dir) / "tsne.png")
