"""Ablations: what heals and what doesn't (corruption kinds, components, the Kaiming gain, the probe's dropout).

Every variant is a full fine-tuning cell of the ``ablations`` profile, judged against the clean model of
the same seed with the decision rule of claim 1 (``harness.verdict.decision``): a variant *heals fully* when its
F1 is shown equal to clean within the equivalence margin (TOST), *does not* when the loss is significant
and outside it, and is *undecided* otherwise. Pairs of variants (LayerNorm reset vs full re-initialisation,
attention vs feed-forward, each kind vs re-initialisation) are compared seed-paired. Claim 4 (probe
instability) is judged twice on the same full fine-tuning cells: with the probe's frozen body in eval
mode (ours, dropout off) and in train mode (HF Trainer's, dropout on).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.grid.aggregate import CELL_COLUMNS
from harness.method.config import DEFAULT_INIT
from harness.verdict.claims import ORDERING, Comparison, evaluate_claims, probe_instability, recovery_margin, slices
from harness.verdict.decision import DEFAULT_RULE, DecisionRule, Verdict, decide
from harness.verdict.sources import TIDY, load_predictions, results_frame
from harness.verdict.verdicts import ClaimVerdict, aggregate

SCORE = "best_test_f1"  # the paper's protocol, as the claims use
COMPONENT_LABELS = {"all": "", "attention": "attention only", "ffn": "feed-forward only", "layernorm": "LayerNorm only"}
# re-initialisation's draw where it is not the default (harness.method.corrupt.INITS): the Kaiming gain question
INIT_LABELS = {"kaiming_uniform_a0": "a=0 gain", "normal_0.02": "N(0, 0.02)"}


def _init(row) -> str:
    init = row.get("init")
    return init if isinstance(init, str) and init else DEFAULT_INIT


def default_gain(frame: pd.DataFrame) -> pd.Series:
    """Which cells re-initialise with the default draw (records from before ``init`` varied have no column)."""
    if "init" not in frame:
        return pd.Series(True, index=frame.index)
    return frame["init"].fillna(DEFAULT_INIT) == DEFAULT_INIT


def variant_label(row) -> str:
    """A readable name for a cell's variant: its setting, kind, strength and component."""
    if row["mode"] == "probe":
        return f"probe, dropout {'on' if row.get('probe_dropout') else 'off'}"
    if row["position"] == "none":
        return "clean"
    setting = "100%" if row["position"] == "all" else f"{row['position']} {row['n_corrupted']}/{row['n_layers']}"
    kind = row.get("corruption") or "reinit"
    strength = row.get("strength")
    name = {"reinit": "re-init", "bitflip": "bit-flip"}.get(kind, kind)
    if _init(row) != DEFAULT_INIT:
        name += f" {INIT_LABELS.get(_init(row), _init(row))}"
    if strength is not None and not (isinstance(strength, float) and math.isnan(strength)):
        name += f" σ={strength:g}" if kind == "noise" else f" rate {strength:g}"
    component = COMPONENT_LABELS.get(row.get("component") or "all", row.get("component"))
    return " ".join(part for part in (name, component, f"({setting})") if part)


KIND_ORDER = ("reinit", "noise", "shuffle", "zero", "bitflip")
SETTING_ORDER = ("none", "top", "bottom", "all")


def _order(row) -> tuple:
    """Reading order: clean; then top, bottom, 100%; within each, re-init (default gain, then others), the other
    kinds, then components."""
    component = row.get("component") or "all"
    strength = row.get("strength")
    strength = 0.0 if strength is None or (isinstance(strength, float) and math.isnan(strength)) else float(strength)
    return (row["mode"] != "full", SETTING_ORDER.index(row["position"]), component != "all",
            list(COMPONENT_LABELS).index(component) if component in COMPONENT_LABELS else 9,
            KIND_ORDER.index(row.get("corruption") or "reinit"), _init(row) != DEFAULT_INIT, strength)


def with_variants(frame: pd.DataFrame) -> pd.DataFrame:
    """The cells with a ``variant`` label, in reading order."""
    ordered = frame.assign(order=[_order(row) for _, row in frame.iterrows()]).sort_values("order", kind="stable")
    return ordered.assign(variant=[variant_label(row) for _, row in ordered.iterrows()]).drop(columns="order")


@dataclass(frozen=True)
class Healing:
    variant: str
    f1_mean: float
    f1_std: float
    gap: float  # clean minus variant, seed-paired mean
    seeds: int
    diverged: int
    verdict: str  # "heals fully", "does not heal fully", "undecided"
    detail: str


def heals(frame: pd.DataFrame, rule: DecisionRule = DEFAULT_RULE) -> list[Healing]:
    """Per full fine-tuning variant: does it heal fully (F1 equal to clean's within the margin)?"""
    full = with_variants(frame[frame["mode"] == "full"])
    clean = full[full["variant"] == "clean"]
    clean_by_seed = dict(zip(clean["seed"].astype(int), clean[SCORE].astype(float)))
    found = []
    for variant, part in full[full["variant"] != "clean"].groupby("variant", sort=False):
        diverged = int((part["status"] == "diverged").sum())
        usable = part[part[SCORE].notna()]
        scores = dict(zip(usable["seed"].astype(int), usable[SCORE].astype(float)))
        common = sorted(set(scores) & set(clean_by_seed))
        gap = float(np.mean([clean_by_seed[s] - scores[s] for s in common])) if common else math.nan
        if diverged == len(part):
            verdict, detail = "does not heal fully", f"every run diverged ({diverged} of {len(part)}: non-finite loss)"
        else:
            decision = decide(scores, clean_by_seed, float(part["n_test"].min()), rule, boundary=recovery_margin())
            verdict = {Verdict.SUPPORTED: "does not heal fully", Verdict.INCONCLUSIVE: "undecided"}.get(
                decision.verdict, "heals fully")
            detail = decision.detail
            if diverged:  # a run that diverged did not heal, whatever the others did
                verdict = f"mixed: {diverged} of {len(part)} runs diverged; the others {verdict}"
                detail = f"the {len(usable)} finite run(s): {detail}"
        found.append(Healing(variant, float(usable[SCORE].mean()), float(usable[SCORE].std()), gap, len(usable),
                             diverged, verdict, detail))
    return found


def compare(frame: pd.DataFrame, first: str, second: str, rule: DecisionRule = DEFAULT_RULE) -> dict:
    """Seed-paired F1 of two variants: the difference second - first and which is higher (significantly)."""
    full = with_variants(frame)
    runs = {name: dict(zip(part["seed"].astype(int), part[SCORE].astype(float)))
            for name, part in full[full[SCORE].notna()].groupby("variant") if name in (first, second)}
    if len(runs) < 2:
        ran = set(full["variant"])
        why = "not both run" if not {first, second} <= ran else "no finite F1 on one side (every run diverged)"
        return {"first": first, "second": second, "difference": math.nan, "reading": why}
    n_test = float(full["n_test"].min())
    decision = decide(runs[first], runs[second], n_test, rule)
    reading = {Verdict.SUPPORTED: f"{second} higher", Verdict.CONTRADICTED: f"{first} higher",
               Verdict.INCONCLUSIVE: "no significant difference"}[decision.verdict]
    return {"first": first, "second": second, "difference": decision.values["difference"],
            "se": decision.values["se"], "reading": reading, "detail": decision.detail}


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Cells as the claims' tidy frame (``harness.verdict.sources.TIDY``)."""
    usable = frame[frame[SCORE].notna()]
    return usable.assign(table=usable["pooling"] + "-" + usable["mode"], f1=usable[SCORE].astype(float),
                         level=usable["level"].astype(float))[TIDY]


def probe_dropout_claim4(frame: pd.DataFrame, rule: DecisionRule = DEFAULT_RULE) -> dict[str, list[Comparison]]:
    """Claim 4's comparisons with the probe's dropout off (ours) and on (Trainer's), against the same full
    fine-tuning cells (re-initialisation, the paper's settings)."""
    reinit = frame[(frame["corruption"].fillna("reinit") == "reinit") & (frame["component"].fillna("all") == "all")
                   & default_gain(frame)]
    full = reinit[reinit["mode"] == "full"]
    found = {}
    for dropout in (False, True):
        probe = reinit[(reinit["mode"] == "probe") & (reinit["probe_dropout"].fillna(False).astype(bool) == dropout)]
        if probe.empty:
            continue
        found["on" if dropout else "off"] = probe_instability(list(slices(tidy(pd.concat([full, probe])))), rule,
                                                              "results")
    return found


# ---------------------------------------------------------------- the Kaiming gain: does any claim's verdict depend on it?

GAIN_CLAIMS = tuple(ORDERING)  # the claims a corruption's strength can move: recovery, degradation, position


@dataclass(frozen=True)
class GainDependence:
    """One claim judged on each re-initialisation draw alone (the clean cells shared), by the calibrated rule."""

    claim: str
    verdicts: dict[str, ClaimVerdict]  # init (``harness.method.corrupt.INITS``) -> the claim's verdict on its cells

    @property
    def depends(self) -> bool:
        """The claim's headline verdict differs between the gains."""
        return len({v.verdict for v in self.verdicts.values()}) > 1

    @property
    def differing_strata(self) -> list[str]:
        """The strata (settings, steps, levels) whose verdict differs between the gains."""
        by_gain = [{s.name: s.verdict for s in v.strata} for v in self.verdicts.values()]
        names = dict.fromkeys(name for strata in by_gain for name in strata)
        return [name for name in names if len({strata.get(name) for strata in by_gain}) > 1]


def gain_dependence(cells: pd.DataFrame, records_dir: str | Path, rule: DecisionRule = DEFAULT_RULE
                    ) -> list[GainDependence]:
    """Claims 1-3 on the cells of each ``init`` (with the clean cells), read as the grid's verdicts read (test F1
    at the epoch of best validation F1; noise from the seeds and the records' predictions on the shared test set)."""
    init = cells["init"].fillna(DEFAULT_INIT) if "init" in cells else pd.Series(DEFAULT_INIT, index=cells.index)
    clean = cells["position"] == "none"
    by_init = {}
    for name in dict.fromkeys(sorted(init[~clean], key=lambda i: i != DEFAULT_INIT)):
        frame = results_frame(cells.loc[clean | (init == name), CELL_COLUMNS], "selected", str(records_dir))
        comparisons = evaluate_claims(frame, "results", rule, predictions=load_predictions(frame, records_dir))
        by_init[name] = aggregate(comparisons, rule)
    return [GainDependence(claim, {name: found[claim] for name, found in by_init.items() if claim in found})
            for claim in GAIN_CLAIMS]
