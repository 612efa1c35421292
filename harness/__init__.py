"""bert-healing: a reproducibility benchmark for "Healing Powers of BERT" (arXiv 2406.14459).

The package reads like the paper, one subpackage a floor; each imports only the floors below it
(pyproject.toml's import-linter contract, checked in CI):

  cli       the command line: one module per group of verbs
  report    REPORT.md: the paper's tables next to ours, the verdicts, the sections beyond the paper
  beyond    analyses beyond the paper: representations, ablations, the healing curve
  verdict   the paper's claims as calibrated verdicts; the replication across datasets
  perf      speed: our loop against transformers' Trainer, the cost estimate's measurements, the GPU check
  figures   every figure, drawn from result tables
  grid      many cells: profiles of params.yaml, their cells, executors (local, Ray, Slurm), records kept
  method    one cell: corruption (Section 3), models, data (Section 4.1), training, the cell's record
  files     the one way files are written and result tables read
  errors    the failures a user can cause, with their exit codes
"""

__version__ = "0.1.0"
