"""bert-healing: a reproducibility benchmark for "Healing Powers of BERT" (arXiv 2406.14459).

Modules follow the paper's method section: ``corrupt`` (Section 3), ``models`` and ``data``
(Section 4.1), ``train`` (Section 4 protocol), ``cell`` (one experiment), ``grid`` (Tables 2-5),
``aggregate``/``plots``/``report`` (results), ``claims`` (the paper's findings as verdicts).
"""

__version__ = "0.1.0"


class BadInput(ValueError):
    """A user-facing configuration or data error: the CLI prints its message and exits 2."""
