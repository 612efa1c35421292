"""A claim's verdict from its comparisons (its weakest stratum, ``harness.decision``), and the verdicts as data."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from harness.claims import CLAIMS, Comparison
from harness.decision import DEFAULT_RULE, DecisionRule, StratumVerdict, Verdict, stratum_verdict, weakest

if TYPE_CHECKING:
    from harness.integrity import Finding


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


def aggregate(comparisons: Iterable[Comparison], rule: DecisionRule = DEFAULT_RULE) -> dict[str, ClaimVerdict]:
    """One verdict per claim (in ``CLAIMS`` order; claims without comparisons left out): its weakest stratum."""
    comparisons = list(comparisons)
    verdicts = {}
    for claim in CLAIMS:
        mine = [c for c in comparisons if c.claim == claim]
        if not mine:
            continue
        by_stratum: dict[str, list[Verdict]] = defaultdict(list)
        for c in mine:
            by_stratum[c.stratum or "all comparisons"].append(c.verdict)
        strata = tuple(stratum_verdict(name, found, rule) for name, found in by_stratum.items())
        decisive = weakest(strata)
        counts = [sum(c.verdict is v for c in mine) for v in (Verdict.SUPPORTED, Verdict.CONTRADICTED,
                                                               Verdict.INCONCLUSIVE)]
        detail = f"weakest of {len(strata)} strata: {decisive.name} ({decisive.detail})"
        provisional = [c for c in mine if c.provisional]
        slices_named = sorted({"/".join(c.ids[k] for k in ("model", "dataset")) + f" {c.ids['table']}"
                               for c in provisional})
        verdicts[claim] = ClaimVerdict(
            claim, decisive.verdict, *counts, detail, strata, bool(provisional),
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
