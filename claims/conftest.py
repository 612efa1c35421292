"""``pytest claims/``: the paper's findings as verdicts, on our results or on the paper's own tables.

    pytest claims/                                 # results/cells.csv (after `dvc repro`)
    pytest claims/ --results PATH --metric selected
    pytest claims/ --source paper                  # claims/paper_tables.csv, the transcribed Tables 2-5
    pytest claims/ --verdicts-out verdicts.json    # the verdicts for the report

Every comparison of a claim is one parametrised case; it fails only when CONTRADICTED.
INCONCLUSIVE cases pass, are counted in the summary line of their claim and listed with ``-v``.
The verdict logic and its tolerances live in ``harness/claims.py`` (``DecisionRule``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import BadInput
from harness.claims import (Comparison, Finding, Verdict, aggregate, evaluate_claims, integrity_findings,
                            load_source, verdicts_document)
from harness.results import check_writable, write_text_atomic


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("claims", "claim verdicts (claims/)")
    group.addoption("--source", choices=["results", "paper"], default="results",
                    help="results: our grid (default); paper: the paper's transcribed tables")
    group.addoption("--results", metavar="PATH", default=None,
                    help="results CSV for --source results (default: results/cells.csv)")
    group.addoption("--metric", choices=["best", "selected"], default="best",
                    help="best: best epoch on test, the paper's protocol (default); selected: epoch and lr "
                         "chosen on validation, scored on test")
    group.addoption("--verdicts-out", metavar="PATH", default=None, help="also write the verdicts as JSON")


@dataclass
class ClaimSession:
    """What one run knows: the source, all its comparisons, and those whose test ran."""

    source: str
    path: str
    metric: str
    comparisons: list[Comparison]
    findings: list[Finding]
    notes: list[str]
    ran: list[Comparison] = field(default_factory=list)

    def cases(self, claim: str) -> list[Comparison]:
        return [c for c in self.comparisons if c.claim == claim]


STATE = pytest.StashKey[ClaimSession]()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Load and judge the source once; a missing or malformed file is one clear usage error."""
    config = session.config
    source, metric = config.getoption("source"), config.getoption("metric")
    path = config.getoption("results") if source == "results" else None
    try:
        frame = load_source(source, path, metric)
        if config.getoption("verdicts_out"):  # fail now, not after every test has run
            check_writable(Path(config.getoption("verdicts_out")).parent)
    except BadInput as error:
        raise pytest.UsageError(str(error)) from None
    config.stash[STATE] = ClaimSession(source, frame.attrs["path"], metric, evaluate_claims(frame, source),
                                       integrity_findings(frame), list(frame.attrs["notes"]))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each test module names its claim (``CLAIM``); its test runs once per comparison."""
    if "comparison" in metafunc.fixturenames:
        cases = metafunc.config.stash[STATE].cases(metafunc.module.CLAIM)
        metafunc.parametrize("comparison", cases, ids=[c.id for c in cases])


@pytest.fixture
def record_verdict(request: pytest.FixtureRequest, record_property):
    """Record a comparison's verdict (user_properties for junit-xml; the session for the summary)."""

    def record(comparison: Comparison) -> None:
        record_property("claim", comparison.claim)
        record_property("verdict", str(comparison.verdict))
        record_property("detail", comparison.detail)
        request.config.stash[STATE].ran.append(comparison)

    return record


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    out = session.config.getoption("verdicts_out")
    if state is None or not out:
        return
    document = verdicts_document(state.ran, source=state.source, path=state.path, metric=state.metric,
                                 findings=state.findings, notes=state.notes)
    write_text_atomic(out, json.dumps(document, indent=1, default=str) + "\n")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    write = terminalreporter.write_line
    terminalreporter.section(f"claim verdicts ({state.source}: {state.path}"
                             + (f", metric {state.metric}" if state.source == "results" else "") + ")")
    inconclusive = [c for c in state.ran if c.verdict is Verdict.INCONCLUSIVE]
    if inconclusive and config.getoption("verbose") > 0:
        write("INCONCLUSIVE (within the noise: passed, not counted as support):")
        for c in inconclusive:
            write(f"  {c.claim} {c.id}: {c.detail}")
    elif inconclusive:
        write(f"{len(inconclusive)} INCONCLUSIVE comparisons passed without counting as support "
              "(-v lists them; --verdicts-out saves them)")
    if state.findings:
        write("data integrity (suspected transcription or copy errors, or degenerate runs):")
        for finding in state.findings:
            write(f"  {finding.kind} {finding.where}: {finding.message}")
    for note in state.notes:
        write(f"note: {note}")
    if config.getoption("verdicts_out"):
        write(f"verdicts written to {config.getoption('verdicts_out')}")
    for verdict in aggregate(state.ran).values():
        write(verdict.line(), bold=True)

