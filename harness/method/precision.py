"""Which arithmetic a cell trains in: bf16 autocast only where the hardware computes bf16 natively.

bf16 autocast halves the GEMMs' memory traffic and, on hardware with bf16 units, nearly doubles
their speed (1.8x per 1-thread worker on an AVX512-BF16 Xeon). Without such units PyTorch and
oneDNN *emulate* bf16 by converting to fp32 and back: about 10x slower than plain fp32 on a Zen 3
EPYC (issue 11). So ``precision: auto`` (the default) resolves to

* ``bf16`` on a CUDA device that computes bf16 natively (``torch.cuda.is_bf16_supported``, no
  emulation), or on a CPU whose AVX512-BF16 or AMX-BF16 units torch's dispatcher and oneDNN both
  use (``torch.cpu.get_capabilities``, ``ATEN_CPU_CAPABILITY``, oneDNN's own bf16 check);
* ``fp32`` everywhere else (AVX2-only x86, most laptops, Apple silicon).

The resolved precision, never ``auto``, is what a cell's config holds: it is part of the cell's
identity, so records of two precisions never stand in for each other.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass

import torch

from harness.errors import BadInput

PRECISIONS = ("fp32", "bf16")  # what a cell's config holds
REQUESTS = ("auto", *PRECISIONS)  # what a profile or the command line may ask for


@dataclass(frozen=True)
class Hardware:
    """What the precision rule looked at, as it is written into records, bench and REPORT.md."""

    device: str  # "cpu" or "cuda"
    name: str  # CPU model or GPU name
    capability: str  # torch's CPU kernel level (AVX2, AVX512, ...) or the CUDA compute capability
    native_bf16: bool

    def describe(self) -> str:
        bf16 = "native bf16" if self.native_bf16 else "no native bf16"
        return f"{self.device} {self.name} ({self.capability}, {bf16})"

    def to_dict(self) -> dict:
        return asdict(self)


def _cpu_native_bf16() -> bool:
    """True when both torch's kernels and oneDNN's GEMMs run bf16 on the CPU's own bf16 units."""
    capabilities = torch.cpu.get_capabilities()
    has_units = bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))
    # ATEN_CPU_CAPABILITY=avx2 caps torch's dispatcher below AVX-512: its bf16 kernels are then emulated.
    dispatcher = torch.backends.cpu.get_cpu_capability().upper().startswith(("AVX512", "AMX"))
    # ONEDNN_MAX_CPU_ISA=AVX2 caps oneDNN, which runs the GEMMs; it answers for its own ISA.
    onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return has_units and dispatcher and onednn


def detect_hardware(device: torch.device | str | None = None) -> Hardware:
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return Hardware("cuda", torch.cuda.get_device_name(device), f"sm_{major}{minor}",
                        bool(torch.cuda.is_bf16_supported(including_emulation=False)))
    name = str(torch.cpu.get_capabilities().get("cpu_name") or platform.processor() or platform.machine())
    return Hardware("cpu", name, torch.backends.cpu.get_cpu_capability(), _cpu_native_bf16())


def resolve_precision(requested: str, hardware: Hardware | None = None) -> str:
    """``auto`` -> ``bf16`` where native, else ``fp32``; ``fp32``/``bf16`` are kept as asked."""
    if requested not in REQUESTS:
        raise BadInput(f"precision must be one of {REQUESTS}, got {requested!r}")
    if requested != "auto":
        return requested
    hardware = hardware or detect_hardware()
    return "bf16" if hardware.native_bf16 else "fp32"
