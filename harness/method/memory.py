"""A block's resident-set peak, measured for that block (one helper for ``bench`` and ``cell``)."""

from __future__ import annotations

import re
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _status_kib(field_name: str) -> int | None:
    try:
        match = re.search(rf"^{field_name}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


@contextmanager
def rss_peak() -> Iterator[dict]:
    """Measure a block's resident-set peak (MiB): yields a dict filled with ``peak_mb`` and ``delta_mb``."""
    reset = False
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux >= 4.0: VmHWM := current RSS
        reset = True
    except OSError:
        pass
    start = _status_kib("VmRSS")
    start_mb = start / 1024 if start is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    measured: dict = {}
    yield measured
    hwm = _status_kib("VmHWM") if reset else None
    peak_mb = hwm / 1024 if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    measured.update(peak_mb=peak_mb, delta_mb=max(0.0, peak_mb - start_mb), per_run=reset)
