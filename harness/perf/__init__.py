"""Speed: our training loop against transformers' Trainer (``bench``, ``bench_settings``,
``trainer_baseline``, ``performance_doc``), this machine's rates for the cost estimate (``estimate``),
and the check of the GPU path on a GPU (``gpu_check``).
"""
