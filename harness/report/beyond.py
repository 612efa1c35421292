"""REPORT.md's sections beyond the paper, generated from result files like the rest of the report.

* "How healing changes the representations": the representation analysis (``harness.beyond.analysis``) of the
  profile that ran (``results/analysis*``) and of every profile whose analysis is kept in git
  (``results/records/<profile>/analysis/``), with the numbers behind each figure and a reading of them
  in words, each sentence computed from those numbers.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from functools import partial
from pathlib import Path

import pandas as pd

from harness.beyond.ablations import INIT_LABELS, compare, gain_dependence, heals, probe_dropout_claim4, with_variants
from harness.beyond.budget import paper_budget
from harness.beyond.healing_curve import LEARNED_SHARE, gap_table, gaps, shrink_findings
from harness.errors import BadResults
from harness.figures import plot_ablations, plot_healing_curve, plot_placeholder
from harness.files import read_csv
from harness.grid.aggregate import record_rows
from harness.method.config import DEFAULT_INIT
from harness.report.markdown import markdown_table, number, provenance
from harness.verdict.claims import recovery_margin, separation_order
from harness.verdict.decision import DEFAULT_RULE
from harness.verdict.sources import load_analysis

SETTING_ORDER = ("clean", "top", "bottom", "100%")
BY_LAYER_COLUMNS = {
    "cka_to_clean": "CKA to clean FT", "cka_to_pretrained": "CKA to pretrained",
    "cka_before_to_pretrained": "CKA before FT to pretrained", "separation_before": "separation before",
    "separation_after": "separation after", "probe_before": "probe before (%)", "probe_after": "probe after (%)",
    "movement": "centroid movement", "spatial_to_clean": "spatial sim. to clean FT",
    "spatial_before_after": "spatial sim. before-after",
}


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
        shown[column] = shown[column].map(lambda v, d=digits: number(v, d))
    if shown["spatial_to_clean"].eq("–").all():  # fewer than 3 labels: undefined, say so once instead
        shown = shown.drop(columns=["spatial_to_clean", "spatial_before_after"])
    return markdown_table(shown.rename(columns=BY_LAYER_COLUMNS))


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
        f"CKA {number(baseline, 3)}; a healed model at or above that has rebuilt what clean fine-tuning computes there.",
    ]
    for setting, corrupted in (("bottom", bottom_layers), ("top", top_layers)):
        if setting not in set(table["setting"]):
            continue
        before = _mean(table, setting, "cka_before_to_pretrained", corrupted)
        after_clean = _mean(table, setting, "cka_to_clean", corrupted)
        clean_same = _mean(table, "clean", "cka_to_clean", corrupted)
        final = _mean(table, setting, "cka_to_clean", last)
        gap = after_clean - clean_same
        lines.append(
            f"- **{setting} {k}/{n_layers}** (layers {corrupted.start}–{corrupted.stop - 1} re-initialised): before "
            f"fine-tuning these layers keep CKA {number(before, 3)} to the pretrained model; after it, CKA "
            f"{number(after_clean, 3)} to the clean fine-tuned model, {abs(gap):.3f} {'below' if gap < 0 else 'above'} "
            f"the clean seed-to-seed value {number(clean_same, 3)} for the same layers. At the last layer: "
            f"{number(final, 3)} (baseline "
            f"{number(baseline, 3)}). Test F1 of these cells: "
            + ", ".join(f"{number(c['best_test_f1'])}" for c in meta.get("cells", []) if c["setting"] == setting) + ".")
    if "100%" in set(table["setting"]):
        lines.append(f"- **100%**: every layer re-initialised; after fine-tuning its last layer has CKA "
                     f"{number(_mean(table, '100%', 'cka_to_clean', last), 3)} to the clean fine-tuned model and "
                     f"{number(_mean(table, '100%', 'cka_to_pretrained', last), 3)} to the pretrained one.")
    separation = {s: _mean(table, s, "separation_after", last) for s in SETTING_ORDER}
    probe = {s: _mean(table, s, "probe_after", last) for s in SETTING_ORDER}
    if all(v == 0 or math.isnan(v) for v in separation.values()):
        lines.append(f"- **Label separation** (hard-margin SVM in the top {meta['spec']['dims']} principal components) "
                     "is 0 in every setting's last layer: no pair of labels is linearly separable on these "
                     f"{meta['examples']} examples, so the margin cannot order the settings here (claim 5 says "
                     "INCONCLUSIVE for that reason). The linear probe still reads the labels: last-layer accuracy "
                     + ", ".join(f"{s} {number(v, 1)}%" for s, v in probe.items()) + ".")
    else:
        lines.append("- **Label separation** at the last layer after fine-tuning (mean minimum margin width): "
                     + ", ".join(f"{s} {number(v)}" for s, v in separation.items())
                     + "; linear probe accuracy " + ", ".join(f"{s} {number(v, 1)}%" for s, v in probe.items()) + ".")
    moved_bottom = _mean(table, "clean", "movement", bottom_layers)
    moved_top = _mean(table, "clean", "movement", top_layers)
    lines.append(f"- **Movement** in clean fine-tuning: label centroids move {number(moved_bottom)} in the lowest "
                 f"{k} layers and {number(moved_top)} in the highest {k} (Zhou & Srikumar: upper layers move more).")
    if not table["spatial_to_clean"].isna().all():
        lines.append("- **Spatial similarity** of the last layer to the clean fine-tuned model's (Pearson of the "
                     "label-pair distances): " + ", ".join(
                         f"{s} {number(_mean(table, s, 'spatial_to_clean', last), 3)}" for s in SETTING_ORDER) + ".")
    return lines


def eval_fraction(text: str) -> float:
    """'1/3' or '0.25' -> a float."""
    return float(Fraction(text))


def claim5_lines(folder: Path) -> list[str]:
    """Claim 5 (``harness.verdict.claims.separation_order``) on this analysis, stratum by stratum."""
    found = separation_order(load_analysis(folder / "analysis.csv"), "results")
    return ["- **Claim 5** (final-layer separation orders clean ≥ top > bottom ≥ 100%) on these cells: "
            + "; ".join(f"{c.stratum} **{c.verdict}**" for c in found) + "."]


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
        *claim5_lines(folder),
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
             "(`harness/beyond/analysis.py`, `harness/method/representations.py`): does fine-tuning rebuild what the clean model "
             "computes, or find another solution?", ""]
    parts += analysis_block(results_dir, results_dir / "plots", f"Profile `{profile}` (this run)")
    for folder in sorted(p for p in records_dir.glob("*/analysis") if p.parent.name != profile):
        parts += analysis_block(folder, folder, f"Profile `{folder.parent.name}` (kept in git)")
    if len(parts) == 4:
        parts += ["No profile with an `analysis:` entry has run.", ""]
    return "\n".join(parts)


# ---------------------------------------------------------------- issue 14: the healing curve and the ablations


def _verdict_cell(comparison) -> str:
    return f"**{comparison.verdict}**" if comparison.verdict is not None else "–"


def budget_marks(frame: pd.DataFrame, replication: Path) -> dict[str, int]:
    """Where the curve sits against the budgets that matter: the replication's (its kept records' example-passes on
    the curve's dataset, where it has records of it) and the paper's (Table 1's training set x 10 epochs)."""
    dataset = str(frame["dataset"].iloc[0])
    marks = {}
    kept = record_rows(replication) if replication.is_dir() else pd.DataFrame()
    if not kept.empty:
        mine = kept[(kept["dataset"] == dataset) & (kept["mode"] == "full")]
        for passes in sorted(set(mine["n_train"] * mine["epochs"])):
            marks[f"replication {int(passes):,}"] = int(passes)
    marks[f"paper {paper_budget(dataset):,}"] = paper_budget(dataset)
    return marks


def healing_curve_section(folder: Path, plots: Path, replication: Path) -> list[str]:
    frame = record_rows(folder)
    if frame.empty:
        return []
    rows = gaps(frame)
    table = gap_table(rows)
    png = plot_healing_curve(table, plots / "healing_curve.png", recovery_margin(),
                             "Recovery gap against the fine-tuning budget (mean ± std over seeds)",
                             budget_marks(frame, replication))
    unlearned = sorted(int(b) for b in table.loc[~table["learned"], "budget"].unique())
    findings = shrink_findings(rows)
    f1 = (frame.assign(budget=frame["n_train"] * frame["epochs"])
          .groupby(["position", "level", "budget"], sort=False)["best_test_f1"].agg(["mean", "std"]).reset_index())
    f1_shown = f1.assign(setting=[("clean" if p == "none" else "100%" if p == "all" else f"{p} {lv:.0f}%")
                                  for p, lv in zip(f1["position"], f1["level"])],
                         F1=[f"{m:.2f} ± {s:.2f}" for m, s in zip(f1["mean"], f1["std"])])
    wide = f1_shown.pivot(index="setting", columns="budget", values="F1")
    wide.columns = [f"budget {int(b)}" for b in wide.columns]
    gap_shown = table.assign(setting=[("100%" if p == "all" else f"{p} {lv:.0f}%") for p, lv in
                                      zip(table["position"], table["level"])],
                             gap=[f"{m:+.2f} ± {s:.2f}" for m, s in zip(table["mean"], table["std"])])
    gap_wide = gap_shown.pivot(index="setting", columns="budget", values="gap")
    gap_wide.columns = [f"budget {int(b)}" for b in gap_wide.columns]
    verdicts = pd.DataFrame([{"setting": c.stratum, "finding": c.claim, "verdict": _verdict_cell(c), "detail": c.detail}
                             for c in findings])
    return [
        "### The healing curve: does the gap close with more fine-tuning?",
        "",
        f"From {provenance(frame, folder)}. Budget = training examples × epochs; the gap is clean F1 minus the "
        "corrupted setting's, paired by seed and budget. *gap-shrinks-with-budget*: each seed's slope of the gap "
        "against log2(budget), tested over seeds (SUPPORTED = the gap shrinks significantly); *gap-at-largest-budget*: "
        "claim 1's test at the largest budget (SUPPORTED = a loss remains, CONTRADICTED = recovered within "
        f"±{recovery_margin():g} F1 or better than clean). A budget is judged only where the clean model has "
        f"learned the task (its seed-mean F1 at least {LEARNED_SHARE:.0%} of the way from the majority class's "
        "to its best over the budgets): "
        + (f"left out here: {', '.join(f'{b:,}' for b in unlearned)} example-passes (hollow in the figure)."
           if unlearned else "every budget here qualifies.")
        + " The dotted lines mark the replication's budget on this dataset and the paper's.",
        "",
        f"![Recovery gap against the budget]({png.as_posix()})",
        "",
        "Weighted F1 (mean ± std over seeds):",
        "",
        markdown_table(wide.reset_index()),
        "",
        "Recovery gap (clean − corrupted, F1 points):",
        "",
        markdown_table(gap_wide.reset_index()),
        "",
        markdown_table(verdicts),
        "",
    ]


def ablations_section(folder: Path, plots: Path) -> list[str]:
    frame = record_rows(folder)
    if frame.empty:
        return []
    for column, default in (("corruption", "reinit"), ("component", "all"), ("probe_dropout", False), ("strength", None)):
        if column not in frame:
            frame[column] = default
    variants = with_variants(frame)
    full = variants[variants["mode"] == "full"]
    png = plot_ablations(full, plots / "ablations.png", "Full fine-tuning after each kind of damage (all 6 layers)")
    healing = pd.DataFrame([{"variant": h.variant, "F1": f"{h.f1_mean:.2f} ± {number(h.f1_std)}",
                             "gap to clean": number(h.gap), "seeds": h.seeds, "diverged": h.diverged,
                             "heals fully?": f"**{h.verdict}**", "why": h.detail} for h in heals(frame)])
    reinit_all = "re-init (100%)"
    pairs = [("re-init LayerNorm only (100%)", reinit_all), ("re-init attention only (100%)",
                                                             "re-init feed-forward only (100%)")]
    pairs += [(v, reinit_all) for v in dict.fromkeys(full["variant"]) if v not in ("clean", reinit_all)
              and "only" not in v and "100%" in v and INIT_LABELS["kaiming_uniform_a0"] not in v]
    # the Kaiming gain: each a=0 setting against its default-gain twin (the same layers, seed-paired)
    gain = f" {INIT_LABELS['kaiming_uniform_a0']}"
    pairs += [(v.replace(gain, ""), v) for v in dict.fromkeys(full["variant"]) if gain in v]
    compared = pd.DataFrame([{"first": c["first"], "second": c["second"], "second − first": number(c["difference"]),
                              "reading": c["reading"], "detail": c.get("detail", "")}
                             for c in (compare(frame, a, b) for a, b in pairs)])
    claim4 = probe_dropout_claim4(frame)
    claim4_rows = pd.DataFrame([{"probe body": f"dropout {state}", "measure": c.stratum, "verdict": _verdict_cell(c),
                                 "detail": c.detail} for state, found in claim4.items() for c in found])
    return [
        "### Ablations: what heals and what doesn't",
        "",
        f"From {provenance(frame, folder)}. Every variant damages all 6 layers of MiniLM-L6 and is otherwise the "
        "mini profile's full fine-tuning cell; *heals fully* = F1 shown equal to the clean model's within "
        "±1 F1 (TOST) or above it; *does not heal fully* = a significant loss outside the margin (claim 1's rule).",
        "",
        f"![F1 per variant]({png.as_posix()})",
        "",
        markdown_table(healing),
        "",
        "Seed-paired differences between variants (F1 points; a paired t-test over seeds):",
        "",
        markdown_table(compared),
        "",
        "Claim 4 (probe instability) on the same full fine-tuning cells, with the probe's frozen body in eval "
        "mode (ours: dropout off, vectors cached) and in train mode (HF `Trainer`, the paper's stack: dropout on):",
        "",
        markdown_table(claim4_rows) if not claim4_rows.empty else "No probe cells in this profile.",
        "",
    ]


def kaiming_gain_section(folder: Path, plots: Path) -> list[str]:
    """Does any claim's verdict depend on the Kaiming gain? Claims 1-3 on each gain's cells alone, and the
    seed-paired F1 difference of each a=0 setting from its default-gain twin."""
    frame = record_rows(folder)
    if frame.empty or "init" not in frame or not (frame["init"] == "kaiming_uniform_a0").any():
        return []
    found = gain_dependence(frame, folder)
    names = list(dict.fromkeys(name for g in found for name in g.verdicts))
    labels = {DEFAULT_INIT: "default a=√5, U(±1/√fan_in)", "kaiming_uniform_a0": "a=0, U(±√6/√fan_in)"}
    table = pd.DataFrame([{"claim": g.claim,
                           **{labels.get(n, n): f"**{g.verdicts[n].verdict}** ({g.verdicts[n].supported}/"
                              f"{g.verdicts[n].contradicted}/{g.verdicts[n].inconclusive})" for n in names},
                           "depends on the gain?": "**yes**" if g.depends else "no",
                           "strata that differ": ", ".join(g.differing_strata) or "none"} for g in found])
    variants = with_variants(frame.assign(corruption="reinit", component="all", probe_dropout=False, strength=None))
    gain = f" {INIT_LABELS['kaiming_uniform_a0']}"
    pairs = [(v.replace(gain, ""), v) for v in dict.fromkeys(variants["variant"]) if gain in v]
    compared = pd.DataFrame([{"default gain": c["first"], "a=0 gain": c["second"], "a=0 − default": number(c["difference"]),
                              "reading": c["reading"]} for c in (compare(frame.assign(corruption="reinit",
                                                                                       component="all"), a, b)
                                                                  for a, b in pairs)])
    depends = [g.claim for g in found if g.depends]
    strata = [f"{g.claim} ({', '.join(g.differing_strata)})" for g in found if g.differing_strata]
    words = (f"The verdict of {', '.join(depends)} depends on the gain." if depends else
             "No claim's verdict depends on the gain: each of claims 1-3 reads the same on either draw")
    words += ("" if depends else (f", though strata differ: {'; '.join(strata)}." if strata
                                  else ", and so does every stratum."))
    return [
        "### The Kaiming gain: does a verdict depend on it?",
        "",
        f"From {provenance(frame, folder)}. The paper re-initialises with Kaiming-uniform and states no gain; a plain "
        "`kaiming_uniform_(w)` (a=0) draws 2.45× wider than our default (a=√5, PyTorch's own `Linear` init). "
        "Claims 1-3 judged on each draw's cells alone (the clean cells shared), with the calibrated rule of the "
        "grid's verdicts (supported/contradicted/inconclusive comparisons in brackets). " + words,
        "",
        markdown_table(table),
        "",
        "Seed-paired F1 differences (the best epoch's test F1, as the ablations table reads), each a=0 setting "
        "against its default-gain twin (a paired t-test over seeds):",
        "",
        markdown_table(compared),
        "",
    ]


def beyond_section(records_dir: Path, plots: Path) -> str:
    """REPORT.md's "Beyond the paper" section: the committed records of the healing_curve, ablations and
    kaiming_gain profiles."""
    parts = ["## Beyond the paper: the healing curve and the ablations", ""]
    healing_curve = partial(healing_curve_section, replication=records_dir / "replication")
    for name, section, png in (("healing_curve", healing_curve, "healing_curve.png"),
                               ("ablations", ablations_section, "ablations.png"),
                               ("kaiming_gain", kaiming_gain_section, None)):
        folder = records_dir / name
        found = section(folder, plots) if folder.is_dir() else []
        if not found:
            why = (f"No records of profile `{name}` are kept in `{folder.as_posix()}`: run `python -m harness grid "
                   f"--profile {name}`, then `python -m harness keep --profile {name}`.")
            if png is not None:
                plot_placeholder(plots / png, why.replace("`", ""))
            parts += [why, ""]
        parts += found
    return "\n".join(parts)
