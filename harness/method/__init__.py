"""The method of one cell (the paper's Sections 3-4): a config, a model, its corruption, the data, fine-tuning,
and the record the cell leaves.

Read top to bottom: ``config`` (the cell's identity) -> ``models`` -> ``corrupt`` (Section 3) -> ``data`` and
``prepare`` (Section 4.1, Table 1) -> ``optim`` and ``train`` (the protocol) -> ``representations`` (what the
analysis captures) -> ``record`` -> ``cell`` (one experiment, end to end). ``digest`` checks that the code of
the method is the code recorded for METHOD_VERSION.
"""
