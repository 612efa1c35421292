"""A claim's verdict from its comparisons (``harness.verdict.decision.claim_verdict``: Holm over contradictions,
every stratum for support; the headline names the weakest stratum), and the verdicts as data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from harness.verdict.claims import SPECS, Comparison, evaluate_claims, votes_of
from harness.verdict.convergence import diagnose, under_trained_slices
from harness.verdict.decision import DEFAULT_RULE, DecisionRule, StratumVerdict, Verdict, claim_verdict
from harness.verdict.declared import ClaimSpec
from harness.verdict.integrity import Finding, integrity_findings
from harness.verdict.run_noise import SETTING, measured_run_sd, run_sd_for
from harness.verdict.sources import (
    REPLICATION_RECORDS,
    REPO,
    evidence_note,
    kept_cells,
    load_analysis,
    load_predictions,
    load_source,
    results_frame,
)


@dataclass(frozen=True)
class ClaimVerdict:
    """A claim's headline (its weakest stratum), its strata, and the comparison counts."""

    claim: str
    verdict: Verdict
    supported: int
    contradicted: int
    inconclusive: int
    detail: str
    strata: tuple[StratumVerdict, ...] = ()
    provisional: bool = False
    provisional_detail: str = ""

    @property
    def total(self) -> int:
        return self.supported + self.contradicted + self.inconclusive

    def line(self) -> str:
        return (f"{self.claim}: {self.verdict} (supported {self.supported} / contradicted {self.contradicted} / "
                f"inconclusive {self.inconclusive})")

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": str(self.verdict), "line": self.line(),
                "strata": [{**asdict(s), "verdict": str(s.verdict)} for s in self.strata]}


def aggregate(comparisons: Iterable[Comparison], rule: DecisionRule = DEFAULT_RULE,
              specs: tuple[ClaimSpec, ...] = SPECS) -> dict[str, ClaimVerdict]:
    """One verdict per declared claim (in the file's order; claims without comparisons left out), each by its
    quantifier.

    ``comparisons`` carry their verdicts after the claim's Holm step (``harness.verdict.claims.evaluate_claims``),
    so the counts below are of decided comparisons as the claim reads them."""
    comparisons = list(comparisons)
    verdicts = {}
    for spec in specs:
        claim = spec.name
        mine = [c for c in comparisons if c.claim == claim]
        if not mine:
            continue
        decided = claim_verdict(votes_of(mine), rule, spec.quantifier)
        strata, decisive = decided.strata, decided.decisive
        counts = [sum(c.verdict is v for c in mine) for v in (Verdict.SUPPORTED, Verdict.CONTRADICTED,
                                                               Verdict.INCONCLUSIVE)]
        detail = f"{spec.quantifier}: weakest of {len(strata)} strata: {decisive.name} ({decisive.detail})"
        outcomes = [c.outcome for c in mine if c.outcome]
        if outcomes:
            detail += "; outcomes: " + ", ".join(f"{outcomes.count(o)} {o}" for o in dict.fromkeys(outcomes))
        failed = sum(int(c.values.get("failed_low", 0)) + int(c.values.get("failed_high", 0)) for c in mine)
        if failed:
            detail += f"; failed runs left out of its comparisons: {failed} (counted by failed-runs)"
        provisional = [c for c in mine if c.provisional]
        slices_named = sorted({"/".join(c.ids[k] for k in ("model", "dataset")) + f" {c.ids['table']}"
                               for c in provisional})
        verdicts[claim] = ClaimVerdict(
            claim, decided.verdict, *counts, detail, strata, bool(provisional),
            f"PROVISIONAL: {len(provisional)} of {len(mine)} comparisons come from under-trained slices "
            f"({', '.join(slices_named)})" if provisional else "")
    return verdicts


# ---------------------------------------------------------------- machine-readable verdicts


def verdicts_document(comparisons: list[Comparison], *, source: str, path: str = "", metric: str = "",
                      findings: Iterable[Finding] = (), notes: Iterable[str] = (),
                      rule: DecisionRule = DEFAULT_RULE, convergence: list[dict] | None = None,
                      verdicts: Mapping[str, ClaimVerdict] | None = None) -> dict:
    """The verdicts as JSON-ready data for the report: per claim (headline, strata), every comparison, integrity.
    ``verdicts``: the claims' verdicts where the source judged them otherwise than ``aggregate`` (pooled)."""
    verdicts = aggregate(comparisons, rule) if verdicts is None else verdicts
    return {
        "source": source, "path": path, "metric": metric, "rule": asdict(rule),
        "claims": {claim: verdict.to_dict() for claim, verdict in verdicts.items()},
        "comparisons": [c.to_dict() for c in comparisons],
        "integrity": [asdict(f) for f in findings],
        "convergence": convergence or [],
        "notes": list(notes),
    }


# ---------------------------------------------------------------- one source, judged


@dataclass(frozen=True)
class Judgement:
    """Everything one reading of one source gives: its comparisons, verdicts and what they rest on."""

    source: str
    path: str
    metric: str
    comparisons: list[Comparison]
    verdicts: dict[str, ClaimVerdict]
    diagnosis: pd.DataFrame
    findings: list[Finding]
    notes: list[str]


def one_run_sd(datasets, rule: DecisionRule, records: Path = REPLICATION_RECORDS) -> tuple[dict[str, float], str]:
    """One run's SD per dataset for a one-run source: the upper bound of our own seed spread on that dataset
    (``harness.verdict.run_noise``, measured on the replication's kept records); without them, the rule's assumed
    SD, said so."""
    cells, _ = kept_cells(records) if records.is_dir() else (pd.DataFrame(), 0)
    measured = measured_run_sd(results_frame(cells, "selected", str(records))) if len(cells) else {}
    if not measured:
        return {}, (f"one run per value: run-to-run SD {rule.assumed_run_sd:g} F1 assumed (no measured seed spread in "
                    f"{records}) plus the test set's sampling error")
    chosen = {str(d): run_sd_for(str(d), measured) for d in datasets}
    return ({d: c.run_sd for d, c in chosen.items()},
            "one run per value: each dataset's run-to-run SD is our own measured seed spread's upper bound "
            f"(harness.verdict.run_noise, {records.relative_to(REPO) if records.is_relative_to(REPO) else records}): "
            + "; ".join(c.note for c in chosen.values()) + "; plus the test set's sampling error")


def one_run(frame: pd.DataFrame) -> bool:
    """Whether some setting of ``frame`` has a single run (one seed): its comparisons then take a run SD."""
    keys = [c for c in ("dataset", *SETTING) if c in frame.columns]
    return bool(len(frame)) and int(frame.groupby(keys, dropna=False)["seed"].nunique().min()) == 1


def judge(source: str, path: str | Path | None = None, metric: str = "selected",
          rule: DecisionRule = DEFAULT_RULE) -> Judgement:
    """Load a source (``harness.verdict.sources``), with our grid's per-example predictions from the records beside
    the results file (``<folder>/cells/``) and its representation analysis (claim 5), diagnose its
    convergence on the rows the verdicts read, and judge every claim."""
    frame = load_source(source, path, metric)
    run_sd: dict[str, float] = {}
    notes = list(frame.attrs["notes"])
    if source == "results":
        where = Path(frame.attrs["path"])
        cells = pd.read_csv(where)
        diagnosis = diagnose(cells, metric=metric)
        if diagnosis.empty:
            notes.append("no training curves in the results file: the convergence diagnostic could not run")
        predictions = load_predictions(frame, where.with_name("cells"))
        separation = load_analysis(where.with_name("analysis.csv"))
        if one_run(frame):  # a grid of one seed cannot measure its own run noise: ours, measured, as the paper's
            run_sd, note = one_run_sd(frame["dataset"].unique(), rule)
            notes.append(note)
    else:
        diagnosis, predictions, separation = diagnose(pd.DataFrame()), {}, None
        run_sd, note = one_run_sd(frame["dataset"].unique(), rule)
        notes.append(note)
    note = evidence_note(frame, predictions)
    notes += [note] if note else []
    comparisons = evaluate_claims(frame, source, rule, under_trained_slices(diagnosis), separation, predictions,
                                  run_sd=run_sd)
    return Judgement(source, frame.attrs["path"], metric, comparisons, aggregate(comparisons, rule), diagnosis,
                     integrity_findings(frame), notes)
