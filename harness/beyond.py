"""REPORT.md's sections beyond the paper, generated from result files like the rest of the report.

* "How healing changes the representations": the representation analysis (``harness.analysis``) of the
  profile that ran (``results/analysis*``) and of every profile whose analysis is kept in git
  (``results/records/<profile>/analysis/``), with the numbers behind each figure and a reading of them
  in words, each sentence computed from those numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from harness import BadResults
from harness.results import read_csv

SETTING_ORDER = ("clean", "top", "bottom", "100%")
BY_LAYER_COLUMNS = {
    "cka_to_clean": "CKA to clean FT", "cka_to_pretrained": "CKA to pretrained",
    "cka_before_to_pretrained": "CKA before FT to pretrained", "separation_before": "separation before",
    "separation_after": "separation after", "probe_before": "probe before (%)", "probe_after": "probe after (%)",
    "movement": "centroid movement", "spatial_to_clean": "spatial sim. to clean FT",
    "spatial_before_after": "spatial sim. before-after",
}


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join("–" if pd.isna(v) else str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _number(value: float, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _read_analysis(folder: Path) -> tuple[dict, pd.DataFrame] | None:
    """(analysis.json, analysis_by_layer.csv) of a folder, or None if it holds no analysis."""
    meta_path = folder / "analysis.json"
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BadResults(f"{meta_path} is unreadable ({error}): run `python -m harness analyse` again") from error
    numeric = list(BY_LAYER_COLUMNS) + ["layer"]
    table = read_csv(folder / "analysis_by_layer.csv", "analysis by layer", "run `python -m harness analyse` again",
                     ["setting", "layer", *BY_LAYER_COLUMNS], numeric=numeric)
    return meta, table


def layer_table(table: pd.DataFrame) -> str:
    """Every per-layer number behind the figures, one row per setting and layer."""
    shown = table.assign(layer=table["layer"].map(lambda layer: "emb" if layer == 0 else str(int(layer))))
    for column in BY_LAYER_COLUMNS:
        digits = 1 if column.startswith("probe") else 3 if column.startswith(("cka", "spatial")) else 2
        shown[column] = shown[column].map(lambda v, d=digits: _number(v, d))
    if shown["spatial_to_clean"].eq("–").all():  # fewer than 3 labels: undefined, say so once instead
        shown = shown.drop(columns=["spatial_to_clean", "spatial_before_after"])
    return _markdown(shown.rename(columns=BY_LAYER_COLUMNS))


def _mean(table: pd.DataFrame, setting: str, column: str, layers) -> float:
    part = table[(table["setting"] == setting) & (table["layer"].isin(list(layers)))][column]
    return float(part.mean()) if len(part) else math.nan


def reading(meta: dict, table: pd.DataFrame) -> list[str]:
    """The figures in words: each sentence states numbers read from ``table`` and the comparison they make."""
    n_layers = int(table["layer"].max())
    k = round(float(eval_fraction(meta["spec"]["fraction"])) * n_layers)
    bottom_layers, top_layers, last = range(1, k + 1), range(n_layers - k + 1, n_layers + 1), [n_layers]
    baseline = _mean(table, "clean", "cka_to_clean", last)
    lines = [
        f"- **Seed-to-seed baseline.** Two clean fine-tunings (different seeds) agree at the last layer with "
        f"CKA {_number(baseline, 3)}; a healed model at or above that has rebuilt what clean fine-tuning computes there.",
    ]
    for setting, corrupted in (("bottom", bottom_layers), ("top", top_layers)):
        if setting not in set(table["setting"]):
            continue
        before = _mean(table, setting, "cka_before_to_pretrained", corrupted)
        after_clean = _mean(table, setting, "cka_to_clean", corrupted)
        clean_same = _mean(table, "clean", "cka_to_clean", corrupted)
        final = _mean(table, setting, "cka_to_clean", last)
        verdict = ("close to" if after_clean >= clean_same - 0.05 else "below")
        lines.append(
            f"- **{setting} {k}/{n_layers}** (layers {corrupted.start}–{corrupted.stop - 1} re-initialised): before "
            f"fine-tuning these layers keep CKA {_number(before, 3)} to the pretrained model; after it, CKA "
            f"{_number(after_clean, 3)} to the clean fine-tuned model, {verdict} the clean seed-to-seed value "
            f"{_number(clean_same, 3)} for the same layers. At the last layer: {_number(final, 3)} (baseline "
            f"{_number(baseline, 3)}). Test F1 of these cells: "
            + ", ".join(f"{_number(c['best_test_f1'])}" for c in meta.get("cells", []) if c["setting"] == setting) + ".")
    if "100%" in set(table["setting"]):
        lines.append(f"- **100%**: every layer re-initialised; after fine-tuning its last layer has CKA "
                     f"{_number(_mean(table, '100%', 'cka_to_clean', last), 3)} to the clean fine-tuned model and "
                     f"{_number(_mean(table, '100%', 'cka_to_pretrained', last), 3)} to the pretrained one.")
    separation = {s: _mean(table, s, "separation_after", last) for s in SETTING_ORDER}
    probe = {s: _mean(table, s, "probe_after", last) for s in SETTING_ORDER}
    if all(v == 0 or math.isnan(v) for v in separation.values()):
        lines.append(f"- **Label separation** (hard-margin SVM in the top {meta['spec']['dims']} principal components) "
                     "is 0 in every setting's last layer: no pair of labels is linearly separable on these "
                     f"{meta['examples']} examples, so the margin cannot order the settings here (claim 5 says "
                     "INCONCLUSIVE for that reason). The linear probe still reads the labels: last-layer accuracy "
                     + ", ".join(f"{s} {_number(v, 1)}%" for s, v in probe.items()) + ".")
    else:
        lines.append("- **Label separation** at the last layer after fine-tuning (mean minimum margin width): "
                     + ", ".join(f"{s} {_number(v)}" for s, v in separation.items())
                     + "; linear probe accuracy " + ", ".join(f"{s} {_number(v, 1)}%" for s, v in probe.items()) + ".")
    moved_bottom = _mean(table, "clean", "movement", bottom_layers)
    moved_top = _mean(table, "clean", "movement", top_layers)
    lines.append(f"- **Movement** in clean fine-tuning: label centroids move {_number(moved_bottom)} in the lowest "
                 f"{k} layers and {_number(moved_top)} in the highest {k} (Zhou & Srikumar: upper layers move more).")
    if not table["spatial_to_clean"].isna().all():
        lines.append("- **Spatial similarity** of the last layer to the clean fine-tuned model's (Pearson of the "
                     "label-pair distances): " + ", ".join(
                         f"{s} {_number(_mean(table, s, 'spatial_to_clean', last), 3)}" for s in SETTING_ORDER) + ".")
    return lines


def eval_fraction(text: str) -> float:
    """'1/3' or '0.25' -> a float."""
    from fractions import Fraction

    return float(Fraction(text))


def analysis_block(folder: Path, plots: Path, heading: str) -> list[str]:
    found = _read_analysis(folder)
    if found is None:
        return []
    meta, table = found
    spec = meta["spec"]
    return [
        f"### {heading}",
        "",
        f"{spec['model']} on {spec['dataset']} ({meta['labels']} labels), {spec['pooling']} pooling (the vectors the "
        f"head reads), seeds {spec['seeds']}; the first {meta['examples']} examples of the {spec.get('split', 'train')} "
        f"split; margins in the top {spec['dims']} principal components; profile `{meta['profile']}`, "
        f"METHOD_VERSION {meta['method_version']}, code {meta['versions'].get('revision', '?')}.",
        "",
        f"![CKA to the clean fine-tuned and the pretrained model]({(plots / 'cka.png').as_posix()})",
        "",
        f"![Separation, probe accuracy and movement per layer]({(plots / 'layers.png').as_posix()})",
        "",
        *reading(meta, table),
        "",
        "Per layer (means over seeds; layer emb = the embeddings' output; CKA to clean FT: to the clean fine-tuned "
        "model of every other seed; separation: mean minimum margin width, 0 = not linearly separable):",
        "",
        layer_table(table),
        "",
    ]


def representations_section(results_dir: Path, records_dir: Path, profile: str) -> str:
    """The section for the analysis the pipeline just ran plus every committed one of other profiles."""
    parts = ["## How healing changes the representations (beyond the paper)", "",
             "Zhou & Srikumar's measures (ACL 2022) and linear CKA, per layer, before and after fine-tuning "
             "(`harness/analysis.py`, `harness/representations.py`): does fine-tuning rebuild what the clean model "
             "computes, or find another solution?", ""]
    parts += analysis_block(results_dir, results_dir / "plots", f"Profile `{profile}` (this run)")
    for folder in sorted(p for p in records_dir.glob("*/analysis") if p.parent.name != profile):
        parts += analysis_block(folder, folder, f"Profile `{folder.parent.name}` (kept in git)")
    if len(parts) == 4:
        parts += ["No profile with an `analysis:` entry has run.", ""]
    return "\n".join(parts)
