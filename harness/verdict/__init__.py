"""The paper's claims as verdicts: the decision rule and its noise model (``decision``), the evidence
(``sources``: our records, the paper's tables), each claim's comparisons (``claims``), whether the grid
converged (``convergence``), contradictions inside a source (``integrity``), one verdict per claim
(``verdicts``), the rule's error rates measured on simulated grids (``calibration``), and the verdicts per
dataset and pooled across datasets (``replication``).
"""
