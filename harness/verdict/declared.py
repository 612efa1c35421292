"""The findings as data: ``claims/claims.yaml`` read into frozen specs, checked once, with one clear error.

A finding's entry says what it reads, which comparisons it makes (a generator registered by name in
``harness.verdict.claims``), its quantifier (``every``: intersection-union over its strata and units;
``average``: a majority of units), its boundaries (each with its reason; two are tested in fixed order and
give four outcomes), and its test (registered by name). The engine (``harness.verdict.claims``) judges any
declared finding; the pytest items of ``claims/`` and the claim tables of README.md and claims/README.md are
generated from the same file (``claims_table``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from harness.errors import BadInput

# claims/claims.yaml, read through the package's link to it (harness/verdict/claims.yaml): one file, and a copy of
# the package (an install, a test's copy) carries it as package data
CLAIMS_FILE = Path(__file__).with_name("claims.yaml")
QUANTIFIERS = ("every", "average")
ORIGINS = ("paper", "ours", "zhou-srikumar-2022")
MEASURES_OF_RUNS = ("f1", "status")  # the rest are the representation analysis' measures (harness.beyond.analysis)


@dataclass(frozen=True)
class Boundary:
    """A value the predicted difference should lie above, and why."""

    value: float
    reason: str


@dataclass(frozen=True)
class Ordering:
    """One declared prediction ``measure(low) < measure(high)`` (``<=`` within the margin where ``weak``);
    ``low``/``high`` name a setting (clean, top, bottom, 100%) and, where the finding reads two moments, the
    moment after it (``clean before``)."""

    stratum: str
    low: str
    high: str
    weak: bool = False


@dataclass(frozen=True)
class ClaimSpec:
    name: str
    module: str  # pytest items test_<module>_verdict and test_<module>[<id>]
    origin: str
    section: str
    words: str
    statement: str
    measure: str
    modes: tuple[str, ...]
    generator: str
    orderings: tuple[Ordering, ...]
    strata: str
    quantifier: str
    test: str
    boundaries: tuple[Boundary, ...]
    margins: tuple[tuple[str, float], ...] = ()
    margin_reason: str = ""
    moments: tuple[str, ...] = ("after",)
    scale: str = "raw"
    headline: bool = True
    verdict_boundary: float | None = None

    @property
    def boundary(self) -> float:
        """The verdict's boundary: ``verdict_boundary`` where declared, else the last (the first is tested first)."""
        return self.boundaries[-1].value if self.verdict_boundary is None else self.verdict_boundary

    @property
    def first_boundary(self) -> float:
        return self.boundaries[0].value

    def margin(self, key: str, default: float | None = None) -> float | None:
        return dict(self.margins).get(key, default)


def _listed(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else (str(value),)


def _spec(entry: dict, where: str) -> ClaimSpec:
    need = ("name", "module", "origin", "section", "words", "statement", "reads", "comparisons", "strata",
            "quantifier", "test", "boundaries")
    missing = [key for key in need if key not in entry]
    if missing:
        raise BadInput(f"{where}: missing {missing}")
    name = entry["name"]
    if entry["quantifier"] not in QUANTIFIERS:
        raise BadInput(f"{where} ({name}): quantifier must be one of {QUANTIFIERS}, got {entry['quantifier']!r}")
    if entry["origin"] not in ORIGINS:
        raise BadInput(f"{where} ({name}): origin must be one of {ORIGINS}, got {entry['origin']!r}")
    if not str(entry["module"]).isidentifier():
        raise BadInput(f"{where} ({name}): module {entry['module']!r} is not a Python name (it names pytest items)")
    boundaries = entry["boundaries"]
    if not isinstance(boundaries, list) or not 1 <= len(boundaries) <= 2 or \
            any(not isinstance(b, dict) or "value" not in b or not b.get("reason") for b in boundaries):
        raise BadInput(f"{where} ({name}): boundaries must be one or two {{value, reason}} entries")
    values = [float(b["value"]) for b in boundaries]
    if values != sorted(values) or len(set(values)) != len(values):
        raise BadInput(f"{where} ({name}): two boundaries are tested in increasing order, got {values}")
    reads, comparisons = entry["reads"], entry["comparisons"]
    if not isinstance(reads, dict) or "measure" not in reads:
        raise BadInput(f"{where} ({name}): reads needs a measure")
    if not isinstance(comparisons, dict) or "generator" not in comparisons:
        raise BadInput(f"{where} ({name}): comparisons needs a generator")
    orderings = tuple(Ordering(str(o["stratum"]), str(o["low"]), str(o["high"]), bool(o.get("weak", False)))
                      for o in comparisons.get("orderings", []))
    verdict_boundary = entry.get("verdict_boundary")
    if verdict_boundary is not None and float(verdict_boundary) not in values:
        raise BadInput(f"{where} ({name}): verdict_boundary {verdict_boundary} is not one of its boundaries {values}")
    margins = dict(entry.get("margins") or {})
    reason = str(margins.pop("reason", ""))
    if margins and not reason:
        raise BadInput(f"{where} ({name}): a margin needs its reason")
    return ClaimSpec(
        name=name, module=str(entry["module"]), origin=entry["origin"], section=str(entry["section"]),
        words=" ".join(str(entry["words"]).split()), statement=str(entry["statement"]), measure=str(reads["measure"]),
        modes=_listed(reads.get("mode", "full")), generator=str(comparisons["generator"]), orderings=orderings,
        strata=str(entry["strata"]), quantifier=entry["quantifier"], test=str(entry["test"]),
        boundaries=tuple(Boundary(float(b["value"]), " ".join(str(b["reason"]).split())) for b in boundaries),
        margins=tuple((str(k), float(v)) for k, v in margins.items()), margin_reason=" ".join(reason.split()),
        moments=_listed(reads.get("moment", "after")), scale=str(reads.get("scale", "raw")),
        headline=bool(entry.get("headline", True)),
        verdict_boundary=None if verdict_boundary is None else float(verdict_boundary))


def load_claims(path: str | Path = CLAIMS_FILE) -> tuple[ClaimSpec, ...]:
    """Every declared finding of ``path``, in its order; a malformed file is one BadInput naming the entry."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise BadInput(f"{path}: cannot read the declared claims: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("claims"), list) or not document["claims"]:
        raise BadInput(f"{path}: needs a non-empty list `claims:`")
    specs = tuple(_spec(entry, f"{path.name}, claim {i + 1}") for i, entry in enumerate(document["claims"]))
    for key in ("name", "module"):
        seen = [getattr(s, key) for s in specs]
        twice = sorted({v for v in seen if seen.count(v) > 1})
        if twice:
            raise BadInput(f"{path}: {key} declared twice: {twice}")
    return specs


@lru_cache(maxsize=4)
def declared_claims(path: str = str(CLAIMS_FILE)) -> tuple[ClaimSpec, ...]:
    """``load_claims`` once per file (the specs are frozen)."""
    return load_claims(path)


def claim_spec(name: str, specs: tuple[ClaimSpec, ...] | None = None) -> ClaimSpec:
    for spec in specs or declared_claims():
        if spec.name == name:
            return spec
    raise BadInput(f"no declared claim {name!r}")


# ---------------------------------------------------------------- the tables generated from the file


def claims_table(specs: tuple[ClaimSpec, ...], *, detail: bool) -> str:
    """The markdown claim table of README.md (``detail=False``) or claims/README.md (``detail=True``)."""
    if not detail:
        rows = ["| # | finding (source) | quantifier | pytest |", "|---|---|---|---|"]
        rows += [f"| {i} | {s.statement} ({s.origin}, {s.section}) | {s.quantifier} | `-k {s.module}` |"
                 for i, s in enumerate(specs, 1)]
        return "\n".join(rows)
    rows = [("| pytest items | finding | reads | comparisons | strata | quantifier | boundaries (first tested first) "
             "| test | in the exit code |"), "|---|---|---|---|---|---|---|---|---|"]
    for s in specs:
        bounds = "; ".join(f"{b.value:+g}: {b.reason}" for b in s.boundaries)
        reads = f"{s.measure} ({', '.join(s.modes)})" if s.measure in MEASURES_OF_RUNS else \
            f"analysis: {s.measure}, {'/'.join(s.moments)}, {s.scale}"
        rows.append(f"| `test_{s.module}` | {s.statement} ({s.origin}, {s.section}) | {reads} | `{s.generator}` "
                    f"| {s.strata} | {s.quantifier} | {bounds} | `{s.test}` | {'yes' if s.headline else 'no'} |")
    return "\n".join(rows)


BEGIN, END = "<!-- claims-table:begin -->", "<!-- claims-table:end -->"


def with_table(text: str, table: str, where: str) -> str:
    """``text`` with the block between the claims-table markers replaced by ``table``."""
    if BEGIN not in text or END not in text:
        raise BadInput(f"{where}: the markers {BEGIN} ... {END} are missing")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"
