"""REPORT.md's replication section: the per-dataset verdict table, the pooled verdicts, the forest plots
of claims 1 and 3 (ours next to the paper's BERT-base), and in words where they agree.

The numbers come from ``harness.verdict.replication``; this module only lays them out and draws.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from harness.beyond.leave_one_out import leave_one_out, leave_one_out_text
from harness.beyond.validation_size import DOMINATES
from harness.errors import BadInput, BadResults
from harness.figures import plot_forest, plot_placeholder
from harness.grid.aggregate import choose_lr
from harness.grid.expand import expand
from harness.grid.profiles import load_profile
from harness.method.config import METHOD_VERSION
from harness.perf.estimate import cost_comparison_text
from harness.report.markdown import markdown_table, provenance
from harness.report.protocol import PROTOCOL_NOTE, protocol_table
from harness.verdict.decision import DEFAULT_RULE, DecisionRule
from harness.verdict.pooled_calibration import pooled_calibration_text
from harness.verdict.replication import (
    DEFAULT_POOLING,
    FOREST_CLAIMS,
    ORDERING_CLAIMS,
    PROFILE,
    Agreement,
    Gap,
    KeptReplication,
    Pooled,
    Replication,
    TaskLearned,
    dataset_name,
    replication_of,
    strata_in_order,
)
from harness.verdict.sources import PAPER_TABLES, load_source


def _interval_text(estimate: float, low: float, high: float) -> str:
    if not math.isfinite(estimate):
        return "–"
    return f"{estimate:+.2f} [{low:+.2f}, {high:+.2f}]" if math.isfinite(low) else f"{estimate:+.2f} (no test)"


# Intervals shown at the verdicts' level: their ends are the rule's one-sided tests at alpha, so a reader can check
# each verdict against the interval beside it (the pooled coverage calibration keeps its own 95%).
SHOWN_LEVEL = 1 - 2 * DEFAULT_RULE.alpha
SHOWN = f"{SHOWN_LEVEL:.0%}"


def gap_text(item: Gap | Pooled) -> str:
    value = item.difference if isinstance(item, Gap) else item.estimate
    return _interval_text(value, *item.interval(SHOWN_LEVEL))


GAP_LABELS = {"no-complete-recovery": "F1(clean) − F1(corrupted)", "monotone-degradation": "F1 lost at the step",
              "bottom-worse-than-top": "F1(top) − F1(bottom)"}


def forest_rows(replication: Replication, claim: str) -> pd.DataFrame:
    """The forest plot's rows for ``claim``: per stratum, each dataset's gap (ours and the paper's at the same
    level) and the pooled ones, with their intervals at the verdicts' level and each one's verdict."""
    rows = []
    for stratum in strata_in_order(replication.gaps, claim):
        for source, gaps in (("ours", replication.gaps), ("paper", replication.paper_gaps)):
            for g in gaps:
                if g.claim == claim and g.stratum == stratum:
                    low, high = g.interval(SHOWN_LEVEL)
                    rows.append({"stratum": stratum, "row": dataset_name(g.dataset), "source": source, "pooled": False,
                                 "estimate": g.difference, "low": low, "high": high, "boundary": g.boundary,
                                 "verdict": str(g.verdict), "provisional": g.provisional})
        for p in replication.pooled:
            if p.claim == claim and p.stratum == stratum:
                low, high = p.interval(SHOWN_LEVEL)
                rows.append({"stratum": stratum, "row": "pooled", "source": p.source,
                             "pooled": True, "estimate": p.estimate, "low": low, "high": high, "boundary": p.boundary,
                             "verdict": str(p.verdict), "provisional": False})
    return pd.DataFrame(rows, columns=["stratum", "row", "source", "pooled", "estimate", "low", "high", "boundary",
                                       "verdict", "provisional"])


def gap_table(replication: Replication, claim: str) -> pd.DataFrame:
    """One row per dataset and stratum of ``claim``: our gap and verdict, the paper's, and how they compare."""
    theirs = {(g.dataset, g.stratum): g for g in replication.paper_gaps if g.claim == claim}
    readings = {(a.ours.dataset, a.ours.stratum): a for a in replication.agreements if a.ours.claim == claim}
    order = {s: i for i, s in enumerate(strata_in_order(replication.gaps, claim))}
    rows = []
    for g in sorted((g for g in replication.gaps if g.claim == claim), key=lambda g: order[g.stratum]):
        paper = theirs.get((g.dataset, g.stratum))
        found = readings.get((g.dataset, g.stratum))
        rows.append({"stratum": g.stratum, "dataset": dataset_name(g.dataset),
                     f"ours (MiniLM-L6), {SHOWN} CI": gap_text(g),
                     "ours": f"**{g.verdict}**" + (" (provisional)" if g.provisional else ""),
                     "paper (BERT-base)": f"{gap_text(paper)} ({paper.table})" if paper else "–",
                     "paper": f"**{paper.verdict}**" if paper else "–",
                     "ours − paper": (f"{found.reading} (z = {found.z:+.1f})" if found and found.reading != "untested"
                                      else "–")})
    return pd.DataFrame(rows)


def pooled_table(replication: Replication) -> pd.DataFrame:
    rows, left_out = [], leave_one_out(replication)
    for claim in ORDERING_CLAIMS:
        for stratum in strata_in_order(replication.gaps, claim):
            found = {p.source: p for p in replication.pooled if p.claim == claim and p.stratum == stratum}
            if "ours" not in found:
                continue
            ours, paper = found["ours"], found.get("paper")
            rows.append({"claim": claim, "stratum": stratum, "datasets": len(ours.datasets),
                         f"pooled gap, {SHOWN} CI": gap_text(ours), "τ (between datasets)": f"{ours.tau:.2f}",
                         "boundary": f"{ours.boundary:+g}", "quantifier": ours.quantifier,
                         "verdict": f"**{ours.verdict}**",
                         "p(above) / p(below)": f"{ours.p_support:.3g} / {ours.p_contradict:.3g}",
                         "on average (the mean)": f"{ours.mean_verdict}"
                                                  + (f": {ours.mean_outcome}" if ours.mean_outcome else ""),
                         "leave one dataset out": leave_one_out_text(left_out, ours),
                         "paper pooled": (f"{gap_text(paper)} **{paper.verdict}** (mean: {paper.mean_verdict})"
                                          if paper else "–")})
    return pd.DataFrame(rows)


def dataset_table(replication: Replication) -> pd.DataFrame:
    """Each claim's verdict on each dataset alone ("–": nothing to compare there, e.g. claim 4 without a probe)."""
    rows = []
    for d in replication.datasets:
        row = {"dataset": dataset_name(d.dataset)}
        for claim in ("no-complete-recovery", "monotone-degradation", "bottom-worse-than-top", "probe-instability"):
            verdict = d.verdicts.get(claim)
            row[claim] = ("–" if verdict is None or not d.tested(claim) else
                          f"**{verdict.verdict}**" + (" (provisional)" if verdict.provisional else "")
                          + f" ({verdict.supported}/{verdict.contradicted}/{verdict.inconclusive})")
        rows.append(row)
    return pd.DataFrame(rows)


def learned_table(replication: Replication) -> pd.DataFrame:
    """Each dataset's clean model against guessing at the test set's label rates."""
    def paper(item: TaskLearned) -> str:
        return "–" if not math.isfinite(item.paper_clean_f1) else (
            f"{item.paper_clean_f1:.1f}" + (" (near chance)" if item.paper_near_chance else ""))
    return pd.DataFrame([{"dataset": dataset_name(item.dataset), "mode": item.mode,
                          "clean test F1 (ours)": f"{item.clean_f1:.1f}" + (" (near chance)" if item.near_chance else ""),
                          "chance": f"{item.chance_f1:.1f}", "± luck (95%, n_test)": f"{item.margin:.1f} ({item.n_test})",
                          "clean F1, paper's BERT-base": paper(item)} for item in replication.learned])


def near_chance_lines(replication: Replication) -> list[str]:
    """One line per dataset whose clean model does not beat guessing by more than luck allows."""
    lines = []
    for item in (i for i in replication.learned if i.near_chance):
        paper = ("" if not math.isfinite(item.paper_clean_f1) else
                 f"; the paper's BERT-base clean {item.paper_clean_f1:.1f} is "
                 + ("near chance too" if item.paper_near_chance else "clear of it"))
        lines.append(f"NEAR CHANCE: {dataset_name(item.dataset)} ({item.mode}): the clean model's test F1 "
                     f"{item.clean_f1:.1f} is within {item.margin:.1f} points (what luck gives a guess on its "
                     f"{item.n_test} test examples, 95%) of guessing at the label rates ({item.chance_f1:.1f}){paper}. "
                     "Its gaps measure noise around chance, not healing; they enter the pooled estimates with their "
                     "wide intervals.")
    return lines


def _listing(items: Sequence[Agreement]) -> str:
    return "; ".join(f"{dataset_name(a.ours.dataset)} {a.ours.stratum} ({a.ours.difference:+.1f} vs "
                     f"{a.paper.difference:+.1f})" for a in items)


def agreement_sentences(replication: Replication, claim: str) -> list[str]:
    """Where the replication agrees with the paper on ``claim`` and where it doesn't, from the numbers."""
    found = [a for a in replication.agreements if a.ours.claim == claim and a.reading != "untested"]
    sentences = []
    if found:
        same = [a for a in found if a.reading == "consistent"]
        smaller = [a for a in found if a.reading == "smaller here"]
        larger = [a for a in found if a.reading == "larger here"]
        unit = "setting" if claim == "no-complete-recovery" else "level"
        sentences.append(f"Gap size: on {len(same)} of {len(found)} (dataset, {unit}) "
                         f"pairs with a paper value at the same level, the paper's BERT-base gap is within what the two "
                         f"gaps' noise allows (|z| below the 95% point)." +
                         (f" Ours is smaller on {len(smaller)}: {_listing(smaller)}." if smaller else "") +
                         (f" Ours is larger on {len(larger)}: {_listing(larger)}." if larger else ""))
        verdicts_agree = [a for a in found if a.ours.verdict is a.paper.verdict]
        differ = [a for a in found if a.ours.verdict is not a.paper.verdict]
        sentences.append(f"Verdicts: the same on {len(verdicts_agree)} of {len(found)} pairs" +
                         (f"; different on {len(differ)}: " +
                          "; ".join(f"{dataset_name(a.ours.dataset)} {a.ours.stratum} (ours {a.ours.verdict}, "
                                    f"paper {a.paper.verdict})" for a in differ) + "." if differ else "."))
    for stratum in strata_in_order(replication.gaps, claim):
        pooled = {p.source: p for p in replication.pooled if p.claim == claim and p.stratum == stratum}
        if "ours" not in pooled:
            continue
        ours, paper = pooled["ours"], pooled.get("paper")
        text = (f"Pooled over {len(ours.datasets)} datasets, {stratum}: {gap_text(ours)} "
                f"(τ {ours.tau:.2f}), {ours.verdict} against the boundary {ours.boundary:+g}")
        if paper is not None:
            text += (f"; the paper's pooled over its {len(paper.datasets)}: {gap_text(paper)}, {paper.verdict}"
                     + (" (the same verdict)" if paper.verdict is ours.verdict else " (a different verdict)"))
        sentences.append(text + ".")
    return sentences


def lr_choices(cells: pd.DataFrame) -> list[str]:
    """Where a setting ran at several lrs: which one validation chose (``choose_lr``, protocol ``selected``)."""
    several = cells.groupby(["dataset", "mode"])["lr"].nunique()
    lines = []
    for dataset, mode in several[several > 1].index:
        mine = cells[(cells["dataset"] == dataset) & (cells["mode"] == mode)]
        contested = mine.groupby(["position", "level"])["lr"].nunique()
        contested = set(contested[contested > 1].index)
        chosen = choose_lr(mine, "selected")
        picks = (chosen.drop_duplicates(["position", "level"])
                 .loc[lambda f: [(p, lv) in contested for p, lv in zip(f["position"], f["level"])]])
        names = ", ".join(f"{'clean' if p == 'none' else '100%' if p == 'all' else f'{p} {lv:.0f}%'} {lr:g}"
                          for p, lv, lr in zip(picks["position"], picks["level"], picks["lr"]))
        lrs = ", ".join(f"{lr:g}" for lr in sorted(mine["lr"].unique()))
        lines.append(f"{dataset_name(dataset)} ({mode}): lr chosen on validation from {lrs}: {names}.")
    return lines


def expected_cells(params: Path | None, profile: str = PROFILE) -> int | None:
    """How many cells ``profile`` of ``params`` expands to (None where the file or the profile is not there)."""
    if params is None or not Path(params).is_file():
        return None
    try:
        return len(expand(load_profile(profile, params)))
    except BadInput:
        return None


def read_json(path: Path, remedy: str) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BadResults(f"{path} is unreadable ({error}): {remedy}") from error


POOLED_CALIBRATION_COMMAND = "python -m harness calibrate --pooled"
COST_COMMAND = f"python -m harness estimate --profile {PROFILE} --measured results/records/{PROFILE}"


PLAN_COMMAND = "python -m harness plan"


def plan_part(path: Path | None, kept: int) -> list[str]:
    """`harness plan`'s table (results/plan.json): what would decide each open comparison, and what it costs."""
    document = read_json(path, f"run `{PLAN_COMMAND}` again") if path is not None else None
    if document is None:
        return [f"What would decide the open comparisons is not projected here: `{PLAN_COMMAND}`.", ""]
    stale = (f" **It read {document['records']} records, {kept} are kept now: rerun `{PLAN_COMMAND}`.**"
             if document["records"] != kept else "")
    table = pd.DataFrame(document["table"])
    decidable = int((~table["cheapest"].str.startswith("not decidable")).sum()) if len(table) else 0
    return [f"**What would decide each open comparison** (`{PLAN_COMMAND}`, `harness/beyond/plan.py`): the "
            "engine's noise split into one seed's spread and the shared test set's part, projected to more seeds "
            f"and larger test sets at the observed effect (80% power), costed in worker-hours (measured wall time "
            f"per cell, scaled by the cost model). {decidable} of {len(table)} INCONCLUSIVE comparisons can be decided "
            "at their observed effect; the rest sit too close to their boundary for any budget here." + stale, "",
            markdown_table(table), ""] + pooled_plan_part(document) + validation_part(document) + budget_part(document)


def validation_part(document: dict) -> list[str]:
    """The validation-size study (plan.json's ``validation``, ``harness.beyond.validation_size``)."""
    found = pd.DataFrame(document.get("validation", []))
    if found.empty:
        return []
    over = found[found["selection variance / seed variance"] > DOMINATES]
    return [("**How much the choice of epoch adds** (`harness/beyond/validation_size.py`): each kept run's epoch "
             "chosen again on validation sets redrawn from its own (with replacement, at a quarter, half and all of "
             "its size); the SD of the chosen epoch's test F1 is the selection SD, beside the seed SD (a setting's "
             "spread over seeds, which share one validation set and so hold only part of it). ")
            + (f"Selection's variance is above {DOMINATES:g} of the seeds' on "
               f"{', '.join(dataset_name(d) for d in over['dataset'])}: a larger validation set buys more there "
               "than more seeds; the last column reads the power law through the three sizes at the size where it "
               "would fall to that share (an extrapolation past the data)." if len(over) else
               f"Selection's variance is below {DOMINATES:g} of the seeds' on every dataset."), "",
            markdown_table(found.assign(dataset=found["dataset"].map(dataset_name))
                           .round({c: 2 for c in found.columns if found[c].dtype.kind == "f"})), ""]


def budget_part(document: dict) -> list[str]:
    """The design within a budget (plan.json's ``budget``: ``plan --hours``): what it targets and costs."""
    budget = document.get("budget")
    if not budget:
        return []
    return [(f"**The design** (`{PLAN_COMMAND} --hours {budget['hours']:g} --profile-out`, the `decide` profile): "
             f"{len(budget['targets'])} comparisons, cheapest first while the whole design fits, for "
             f"{budget['cost_hours']:.1f} worker-hours:"), "", markdown_table(pd.DataFrame(budget["targets"])), ""]


def pooled_plan_part(document: dict) -> list[str]:
    """The plan's pooled rows: how many datasets each undecided pooled mean needs (plan.json's ``pooled``)."""
    pooled = pd.DataFrame(document.get("pooled", []))
    if pooled.empty:
        return ["Every pooled mean (the \"on average\" reading) is decided.", ""]
    return ["Pooled means still undecided, and how many datasets the mean needs at its observed effect (80% power; "
            "a universal claim's stratum is decided dataset by dataset, so the rows above are its plan):", "",
            markdown_table(pooled), ""]


def pooled_calibration_part(path: Path | None) -> list[str]:
    """The pooled rule's measured error rates (``harness.verdict.pooled_calibration``), or how to measure them."""
    document = read_json(path, f"run `{POOLED_CALIBRATION_COMMAND}` again") if path is not None else None
    if document is None:
        return [f"The pooled rule's error rates are not measured here: `{POOLED_CALIBRATION_COMMAND}`.", ""]
    return ["How often the pooled verdicts are wrong, on simulated replications whose truth we built (each "
            "dataset with its own shared test set and paired seeds, datasets' true gaps spread by τ around the "
            "claim's mean gap, which is the truth):", "", pooled_calibration_text(document), ""]


def cost_part(path: Path | None, kept: int) -> list[str]:
    """The cost model's hours beside the records' measured wall time (``harness.perf.estimate``)."""
    document = read_json(path, f"run `{COST_COMMAND}` again") if path is not None else None
    if document is None:
        return [f"The cost is not compared here: `{COST_COMMAND}`.", ""]
    measured = int(pd.DataFrame(document["table"]).iloc[-1]["done"])
    stale = (f" **It counts {measured} records, {kept} are kept now: rerun `{COST_COMMAND}`.**"
             if measured != kept else "")
    return [cost_comparison_text(document) + stale, ""]


def kept_replication(records_dir: str | Path, paper_tables: str | Path = PAPER_TABLES,
                     rule: DecisionRule = DEFAULT_RULE) -> KeptReplication | None:
    """The replication judged once from ``<records_dir>/replication`` (None where nothing is kept): every section
    that shows it reads this one judgement."""
    folder = Path(records_dir) / PROFILE
    return replication_of(folder, load_source("paper", paper_tables), rule) if folder.is_dir() else None


def replication_section(records_dir: str | Path, plots_dir: str | Path, *, paper_tables: str | Path = PAPER_TABLES,
                        params: str | Path | None = "params.yaml", rule: DecisionRule = DEFAULT_RULE,
                        pooled_calibration: str | Path | None = None, cost: str | Path | None = None,
                        kept: KeptReplication | None = None, plan: str | Path | None = None,
                        data_dir: str | Path = "data") -> str:
    """REPORT.md's replication section from ``<records_dir>/replication`` (the kept records of the profile), with
    the forest plots written to ``<plots_dir>/forest_<claim>.png``; says plainly when nothing has run yet.
    ``pooled_calibration`` and ``cost`` are the JSON of `calibrate --pooled` and `estimate --measured`; ``kept``:
    the judgement already made (``kept_replication``), so the report judges the records once."""
    folder, plots = Path(records_dir) / PROFILE, Path(plots_dir)
    pngs = {claim: plots / f"forest_{claim}.png" for claim in FOREST_CLAIMS}
    found = kept if kept is not None else kept_replication(records_dir, paper_tables, rule)
    parts = ["## The replication at the paper's breadth (MiniLM-L6, eight datasets)", ""]
    if found is None:
        why = (f"Not yet run: no records of profile `{PROFILE}` (METHOD_VERSION {METHOD_VERSION}) are kept in "
               f"`{folder.as_posix()}`. Run `python -m harness grid --profile {PROFILE}` (it resumes), then "
               f"`python -m harness keep --profile {PROFILE}`.")
        for png in pngs.values():
            plot_placeholder(png, why.replace("`", ""))
        return "\n".join(parts + [why, ""])
    replication, cells, diagnosis, other = found.replication, found.cells, found.diagnosis, found.other_versions
    expected = expected_cells(Path(params) if params is not None else None)
    coverage = f"{len(cells)} of {expected} cells" if expected else f"{len(cells)} cells"
    parts += [f"From {provenance(cells, folder)} ({coverage} of the profile{'; PARTIAL' if expected and len(cells) < expected else ''}"
              f"{f'; {other} records of other method versions passed over' if other else ''}). Test F1 at the epoch of "
              "best validation F1, lr chosen on validation; every verdict is the calibrated rule's "
              f"(`harness/verdict/decision.py`). Gaps are F1 points with {SHOWN} intervals (ours: seeds and the shared test set, "
              "t on the seeds' k − 1 df; the paper's: one run each, with each dataset's run-to-run SD measured on our "
              "seeds (its 85% upper bound, as `pytest claims/ --source paper` uses it)); pooled: "
              "random effects over datasets (Paule-Mandel τ², Hartung-Knapp interval on k − 1 df), strata run on "
              f"≥ {DEFAULT_POOLING.min_datasets} datasets only. Verdicts are the rule's one-sided tests at "
              f"{rule.alpha:g}: the ends of the {SHOWN} intervals shown, so an interval clear of a boundary is a "
              "decided test. Forest plots mark each row's verdict (S, C, I; P: provisional).", ""]
    if params is not None and Path(params).is_file() and Path(data_dir).is_dir():
        parts += ["**The protocol**, ours beside the paper's (params.yaml, profile `replication`):", "",
                  markdown_table(protocol_table(params, data_dir, scored=cells.groupby("dataset")["n_test"].max().to_dict())), "", PROTOCOL_NOTE, ""]
    parts += [f"* {line}" for line in lr_choices(cells)]
    flagged = diagnosis[diagnosis["under_trained"].astype(bool)] if len(diagnosis) else diagnosis
    parts += [f"* PROVISIONAL: {dataset_name(r['dataset'])} ({r['mode']}) is under-trained: {r['reason']}."
              for _, r in flagged.iterrows()]
    parts += [f"* {line}" for line in near_chance_lines(replication)]
    parts += ["", "Each claim on each dataset alone (supported/contradicted/inconclusive comparisons; Holm over "
              "the dataset's votes). Claim 5 needs the representation analysis, which this profile does not run.", "",
              markdown_table(dataset_table(replication)), ""]
    if replication.learned:
        parts += ["Did each clean model learn its task? Its test F1 (seeds' mean) beside guessing at the test set's "
                  "label rates (weighted F1 Σ p², `harness.verdict.replication.chance_f1`); near chance: within what "
                  "luck gives a guess on that one test set.", "", markdown_table(learned_table(replication)), ""]
    decided = {claim: d for claim in ORDERING_CLAIMS if (d := replication.pooled_verdict(claim)) is not None}
    if decided:
        left_out = (f" Left out as near chance (claims/README.md's rule, on each side by its own clean F1): "
                    f"{', '.join(replication.near_chance)}." if replication.near_chance else "")
        parts += ["Across datasets (the dataset as the unit): "
                  + "; ".join(f"{claim} **{d.verdict}**" + (f" (rests on {rests.stratum})" if (rests := replication.rests_on(claim))
                                                           else "") for claim, d in decided.items()) + ". "
                  "A universal claim (quantifier `every`: \"never\", \"is worse\") is judged as universal: a stratum is "
                  "SUPPORTED only when every dataset's own gap clears the boundary; the random-effects mean, its "
                  "\"on average\" reading, is the column beside; the last column pools again without each dataset in turn "
                  "(`harness.beyond.leave_one_out`): how much the stratum rests on any one dataset." + left_out, "",
                  markdown_table(pooled_table(replication)), ""]
    else:
        parts += [f"Across datasets: nothing pooled yet (a stratum needs records on ≥ {DEFAULT_POOLING.min_datasets} "
                  "datasets).", ""]
    parts += pooled_calibration_part(Path(pooled_calibration) if pooled_calibration is not None else None)
    parts += plan_part(Path(plan) if plan is not None else None, len(cells))
    for claim, png in pngs.items():
        rows = forest_rows(replication, claim)
        plot_forest(rows, png, title=f"{claim}: {GAP_LABELS[claim]}, MiniLM-L6 (ours) vs BERT-base (paper)",
                    xlabel="gap (F1 points)", row_order=[dataset_name(d.dataset) for d in replication.datasets])
        words = agreement_sentences(replication, claim) or [
            "No comparison of this claim has a paper value at the same level, nor a pooled estimate, yet."]
        parts += [f"### {claim}: {GAP_LABELS[claim]}", "", f"![Forest plot of {claim}]({png.as_posix()})", "",
                  *words, "", markdown_table(gap_table(replication, claim)), ""]
    parts += ["### What it cost", ""] + cost_part(Path(cost) if cost is not None else None, len(cells))
    return "\n".join(parts)

