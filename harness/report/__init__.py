"""REPORT.md, generated from result files: the paper's tables next to ours and the verdicts (``document``),
the replication across datasets (``replication``), the sections beyond the paper (``beyond``), in one
markdown style (``markdown``).
"""
