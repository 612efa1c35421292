"""A claim's verdict from its comparisons (``harness.verdict.decision.claim_verdict``: Holm over contradictions,
every stratum for support; the headline names the weakest stratum), and the verdicts as data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from harness.verdict.claims import SPECS, Comparison, evaluate_claims, votes_of
from harness.verdict.declared import ClaimSpec
from harness.verdict.convergence import diagnose, under_trained_slices
from harness.verdict.decision import DEFAULT_RULE, DecisionRule, StratumVerdict, Verdict, claim_verdict
from harness.verdict.integrity import Finding, integrity_findings
from harness.verdict.sources import evidence_note, load_analysis, load_predictions, load_source, mark_guesses


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
                      rule: DecisionRule = DEFAULT_RULE, convergence: list[dict] | None = None) -> dict:
    """The verdicts as JSON-ready data for the report: per claim (headline, strata), every comparison, integrity."""
    return {
        "source": source, "path": path, "metric": metric, "rule": asdict(rule),
        "claims": {claim: verdict.to_dict() for claim, verdict in aggregate(comparisons, rule).items()},
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


def judge(source: str, path: str | Path | None = None, metric: str = "selected",
          rule: DecisionRule = DEFAULT_RULE) -> Judgement:
    """Load a source (``harness.verdict.sources``), with our grid's per-example predictions from the records beside
    the results file (``<folder>/cells/``) and its representation analysis (claim 5), diagnose its
    convergence on the rows the verdicts read, and judge every claim."""
    frame = load_source(source, path, metric)
    notes = list(frame.attrs["notes"])
    if source == "results":
        where = Path(frame.attrs["path"])
        cells = pd.read_csv(where)
        diagnosis = diagnose(cells, metric=metric)
        if diagnosis.empty:
            notes.append("no training curves in the results file: the convergence diagnostic could not run")
        predictions = load_predictions(frame, where.with_name("cells"))
        frame = mark_guesses(frame, predictions)
        separation = load_analysis(where.with_name("analysis.csv"))
    else:
        diagnosis, predictions, separation = diagnose(pd.DataFrame()), {}, None
        notes.append(f"one run per value: run-to-run SD {rule.assumed_run_sd:g} F1 assumed (the literature's low end) "
                     "plus the test set's sampling error; no equivalence within ±"
                     f"{rule.equivalence_margin:g} can be shown at that noise")
    note = evidence_note(frame, predictions)
    notes += [note] if note else []
    comparisons = evaluate_claims(frame, source, rule, under_trained_slices(diagnosis), separation, predictions)
    return Judgement(source, frame.attrs["path"], metric, comparisons, aggregate(comparisons, rule), diagnosis,
                     integrity_findings(frame), notes)
