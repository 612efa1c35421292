"""Many cells: a profile of params.yaml (``profiles``), its cells (``expand``), the runner (``run``) and where
cells run (``executors``: a local pool; ``cluster``: Ray, Slurm), what a grid costs (``cost``), the tables
over seeds (``aggregate``) and the records kept in git (``keep``).
"""
