import os
import sys

# Must precede importing torch: OpenMP threads that spin-wait for each other made 2-thread steps
# 5-80x slower whenever anything else shared the 2 cores; sleeping threads cost ~nothing when idle.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from harness.cli import main  # noqa: E402

sys.exit(main())
