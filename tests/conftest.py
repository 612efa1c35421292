"""Tests run offline (no test may reach the Hugging Face hub) and never on the real CPU's precision rule.

``precision: auto`` resolves to bf16 where the hardware computes bf16 natively and to fp32 elsewhere
(``harness.method.precision``), so an expected identity built from a config with a fixed precision holds on
one kind of machine only. In this process the hardware the rule looks at is therefore always a fake:

* by default (``avx2_only_by_default``, the whole session) an AVX2-only CPU, so ``auto`` is fp32: a
  test that trains a cell never trains in bf16 because of the machine it runs on (emulated bf16 is
  ~10x slower on a CPU without bf16 units);
* a test that depends on what ``auto`` resolves to takes the ``machine`` fixture and runs twice, as
  an AVX2-only CPU (fp32) and as a bf16-native one (bf16), on every machine. Such a test must only
  resolve, expand and compare identities: training under the bf16 fake would be emulated bf16 on an
  AVX2-only CPU.

Subprocesses (``python -m harness``, ``dvc repro``) resolve on the real machine: a test that runs
them either fixes ``precision`` in its params or asserts nothing that depends on it.
"""

import os
import sys

# Before torch is imported (harness.method.precision imports it): see harness/__main__.py for OMP_WAIT_POLICY.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from dataclasses import dataclass  # noqa: E402

import pytest  # noqa: E402

import harness.cli  # noqa: E402,F401  (every module of the package, so `pretend` reaches each binding)
import harness.method.precision  # noqa: E402
from harness.method.precision import Hardware  # noqa: E402


@dataclass(frozen=True)
class Machine:
    """A fake machine: what ``detect_hardware`` reports on it and what ``precision: auto`` resolves to."""

    hardware: Hardware
    precision: str


_REAL_DETECT_HARDWARE = harness.method.precision.detect_hardware
AVX2_ONLY = Machine(Hardware("cpu", "fake AVX2-only x86 (Zen 3)", "AVX2", native_bf16=False), "fp32")
BF16_NATIVE = Machine(Hardware("cpu", "fake AVX512-BF16 x86 (Sapphire Rapids)", "AVX512", native_bf16=True), "bf16")
MACHINES = {"avx2": AVX2_ONLY, "bf16-native": BF16_NATIVE}


def pretend(patch: pytest.MonkeyPatch, machine: Machine) -> None:
    """Make ``detect_hardware`` report ``machine`` whatever device it is asked about, in every module of the
    package that has it: ``harness.method.precision`` (where ``resolve_precision``, and so profile expansion,
    looks it up) and each module that imported it (``estimate``, ``bench``, the cell's record)."""
    def fake(device=None):
        return machine.hardware

    fake.pretends = True
    for module in [m for name, m in sys.modules.items() if name.startswith("harness.")]:
        found = getattr(module, "detect_hardware", None)
        if found is _REAL_DETECT_HARDWARE or getattr(found, "pretends", False):
            patch.setattr(module, "detect_hardware", fake)


@pytest.fixture(scope="session", autouse=True)
def avx2_only_by_default():
    with pytest.MonkeyPatch.context() as patch:
        pretend(patch, BF16_NATIVE if os.environ.get('FAKE_BF16') else AVX2_ONLY)
        yield AVX2_ONLY


@pytest.fixture(params=list(MACHINES.values()), ids=list(MACHINES))
def machine(request, monkeypatch) -> Machine:
    """The test runs once as an AVX2-only CPU and once as a bf16-native one (resolution only: do not train)."""
    pretend(monkeypatch, request.param)
    return request.param
