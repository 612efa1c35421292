"""REPORT.md's first table: the answer. One row per claim, each source side by side: the paper's own tables, the
replication (pooled over datasets: the broadest evidence we have) and this run's grid. Each cell gives the verdict,
the stratum it rests on (the weakest: a claim is SUPPORTED only when every stratum is), that stratum's effect with
the interval the verdict uses, its outcome in words, and the marks carried from what it rests on."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import pandas as pd

from harness.beyond.budget import interval
from harness.report.markdown import markdown_table
from harness.verdict.claims import Comparison
from harness.verdict.decision import DEFAULT_RULE, DecisionRule, Verdict
from harness.verdict.decision import weakest as weakest_stratum
from harness.verdict.replication import ORDERING_CLAIMS, KeptReplication, dataset_name, replication_verdicts
from harness.verdict.verdicts import ClaimVerdict


def verdict_level(rule: DecisionRule = DEFAULT_RULE) -> float:
    """The interval whose ends are the verdicts' one-sided tests at alpha."""
    return 1 - 2 * rule.alpha


def weakest(comparisons: Sequence[Comparison], claim: str, stratum: str) -> Comparison | None:
    """The stratum's comparison its verdict rests on: the scored one furthest from support (largest p_support)."""
    scored = [c for c in comparisons if c.claim == claim and c.stratum == stratum and "difference" in c.values]
    return max(scored, key=lambda c: (c.p_support, -c.values["difference"]), default=None)


def _effect(c: Comparison, level: float) -> str:
    estimate = float(c.values["difference"])
    low, high = interval(estimate, float(c.values.get("se", math.nan)), float(c.values.get("df", math.inf)), level)
    span = f"{estimate:+.2f} [{low:+.2f}, {high:+.2f}]" if math.isfinite(low) else f"{estimate:+.2f}"
    return span + (f", {c.outcome}" if c.outcome else "")


def source_cell(verdict: ClaimVerdict | None, comparisons: Sequence[Comparison], level: float) -> str:
    """One source's verdict on one claim: verdict, counts, the weakest stratum and its weakest comparison."""
    if verdict is None:
        return "–"
    text = (f"**{verdict.verdict}**{' PROVISIONAL' if verdict.provisional else ''} "
            f"({verdict.supported}/{verdict.contradicted}/{verdict.inconclusive})")
    stratum = weakest_stratum(verdict.strata)
    if stratum is None or stratum.name == "nothing":
        return text
    c = weakest(comparisons, verdict.claim, stratum.name)
    return text + f"; rests on {stratum.name}" + (f": {c.id} {_effect(c, level)}" if c is not None else "")


def replication_cell(kept: KeptReplication | None, claim: str, level: float) -> str:
    """The replication's verdict on one claim: pooled over datasets where the claim has a gap (claims 1-3), else
    how its datasets decided one by one; with PROVISIONAL and NEAR CHANCE marks from the datasets it rests on."""
    if kept is None:
        return "– (no replication records)"
    replication = kept.replication
    flagged = kept.diagnosis[kept.diagnosis["under_trained"].astype(bool)] if len(kept.diagnosis) else kept.diagnosis
    under = {str(d) for d in flagged.get("dataset", pd.Series(dtype=str))}
    near = f"; NEAR CHANCE, left out: {', '.join(replication.near_chance)}" if replication.near_chance else ""
    if claim in ORDERING_CLAIMS and (decision := replication.pooled_verdict(claim)) is not None:
        pooled = replication.rests_on(claim)
        stratum = pooled.stratum
        low, high = pooled.interval(level)
        rests = sorted(set(pooled.datasets) & under)
        mark = f" PROVISIONAL ({', '.join(dataset_name(d) for d in rests)} under-trained)" if rests else ""
        return (f"**{decision.verdict}**{mark} over {len(pooled.datasets)} datasets; rests on {stratum}: every "
                f"dataset p = {pooled.p_support:.2g}; mean {pooled.estimate:+.2f} [{low:+.2f}, {high:+.2f}], "
                f"{pooled.mean_outcome or pooled.mean_verdict}{near}")
    counts = {v: 0 for v in Verdict}
    for d in replication.datasets:
        found = d.verdicts.get(claim)
        if found is not None and d.tested(claim):
            counts[found.verdict] += 1
    tested = sum(counts.values())
    if not tested:
        return "– (not measured by the replication)"
    overall = replication_verdicts(replication)[claim]
    return (f"**{overall.verdict}** ({overall.supported}/{overall.contradicted}/{overall.inconclusive}) over every "
            f"dataset's comparisons, not pooled; per dataset: {counts[Verdict.SUPPORTED]} SUPPORTED, "
            f"{counts[Verdict.CONTRADICTED]} CONTRADICTED, {counts[Verdict.INCONCLUSIVE]} INCONCLUSIVE of {tested}")


def answer_table(paper: Mapping[str, ClaimVerdict], paper_comparisons: Sequence[Comparison],
                 kept: KeptReplication | None, grid: Mapping[str, ClaimVerdict], grid_comparisons: Sequence[Comparison],
                 grid_name: str, rule: DecisionRule = DEFAULT_RULE) -> pd.DataFrame:
    level = verdict_level(rule)
    rows = []
    for claim in dict.fromkeys([*paper, *grid]):
        rows.append({"claim": claim,
                     "the paper's own tables": source_cell(paper.get(claim), paper_comparisons, level),
                     "the replication (pooled over datasets)": replication_cell(kept, claim, level),
                     f"this run (`{grid_name}`)": source_cell(grid.get(claim), grid_comparisons, level)})
    return pd.DataFrame(rows)


def answer_section(paper: Mapping[str, ClaimVerdict], paper_comparisons: Sequence[Comparison],
                   kept: KeptReplication | None, grid: Mapping[str, ClaimVerdict],
                   grid_comparisons: Sequence[Comparison], grid_name: str, rule: DecisionRule = DEFAULT_RULE) -> str:
    level = verdict_level(rule)
    return "\n".join([
        "## The answer", "",
        "Each claim on each source, judged once by the engine (`claims/claims.yaml`, `harness/verdict/`): its verdict "
        "(supported/contradicted/inconclusive comparisons), the stratum it rests on (a claim is SUPPORTED only when "
        "every stratum is, so the weakest decides) with that stratum's weakest comparison or, for the replication, "
        f"its pooled mean; effects in F1 points with {level:.0%} intervals, whose ends are the verdicts' one-sided "
        f"{rule.alpha:g} tests, and the outcome in words. A universal claim (\"never\", \"is worse\") pooled over "
        "datasets is SUPPORTED only when every dataset's own gap clears the boundary (\"every dataset p\"); the "
        "mean is its \"on average\" reading. The replication is the broadest evidence we have"
        + (f" ({len(kept.replication.datasets)} datasets, {kept.cells['seed'].nunique()} paired seeds each)"
           if kept is not None else "") + ", at a fine-tuning budget below the paper's (see \"Healing or "
        "under-training?\").", "",
        markdown_table(answer_table(paper, paper_comparisons, kept, grid, grid_comparisons, grid_name, rule)), ""])


# ---------------------------------------------------------------- one judgement per source, checked on the text

_VERDICT = re.compile(r"\*\*(SUPPORTED|CONTRADICTED|INCONCLUSIVE)\*\*")


def _table_rows(text: str, header_start: str) -> list[list[str]]:
    """The cells of the markdown table whose header row starts with ``header_start``."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(header_start)), None)
    if start is None:
        return []
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _first_verdict(cell: str) -> str | None:
    found = _VERDICT.search(cell)
    return found.group(1) if found else None


def inconsistencies(text: str) -> list[str]:
    """Where REPORT.md gives one source's claim two verdicts: the answer table against the verdicts table (the
    paper's tables, this run) and against the replication section's pooled line. Empty when every section reads
    the same judgement."""
    answer = {row[0]: row for row in _table_rows(text, "| claim | the paper's own tables |")}
    verdicts = {row[0]: row for row in _table_rows(text, "| claim | paper's own tables | our grid |")}
    pooled_line = next((line for line in text.splitlines() if line.startswith("Across datasets (the dataset")), "")
    pooled = dict(re.findall(r"([a-z-]+) \*\*(SUPPORTED|CONTRADICTED|INCONCLUSIVE)\*\*", pooled_line))
    problems = []
    for claim, row in answer.items():
        if claim in verdicts:
            for column, (mine, theirs) in {"paper": (row[1], verdicts[claim][1]),
                                           "this run": (row[3], verdicts[claim][2])}.items():
                if _first_verdict(mine) != _first_verdict(theirs):
                    problems.append(f"{claim} ({column}): the answer says {_first_verdict(mine)}, the verdicts "
                                    f"table {_first_verdict(theirs)}")
        if claim in pooled and _first_verdict(row[2]) != pooled[claim]:
            problems.append(f"{claim} (replication): the answer says {_first_verdict(row[2])}, the replication "
                            f"section {pooled[claim]}")
    if not answer:
        problems.append("no answer table")
    return problems
