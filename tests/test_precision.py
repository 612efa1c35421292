"""harness/precision.py: ``auto`` is bf16 exactly where the hardware computes bf16 natively."""

from __future__ import annotations

import pytest
import torch

from harness import BadInput
from harness.precision import Hardware, detect_hardware, resolve_precision

AVX2 = Hardware("cpu", "AMD EPYC", "AVX2", native_bf16=False)
SAPPHIRE_RAPIDS = Hardware("cpu", "Intel Xeon", "AVX512", native_bf16=True)
H100 = Hardware("cuda", "NVIDIA H100", "sm_90", native_bf16=True)


@pytest.mark.parametrize("hardware, expected", [(AVX2, "fp32"), (SAPPHIRE_RAPIDS, "bf16"), (H100, "bf16")])
def test_auto_is_bf16_only_where_native(hardware, expected):
    assert resolve_precision("auto", hardware) == expected


@pytest.mark.parametrize("asked", ["fp32", "bf16"])
def test_an_explicit_precision_is_kept(asked):
    assert resolve_precision(asked, AVX2) == asked


def test_unknown_precision_is_refused():
    with pytest.raises(BadInput, match="precision must be one of"):
        resolve_precision("fp16", AVX2)


def test_this_cpu_is_described_from_torchs_own_query():
    found = detect_hardware("cpu")
    capabilities = torch.cpu.get_capabilities()
    assert found.device == "cpu" and found.capability == torch.backends.cpu.get_cpu_capability()
    # no bf16 units, no native bf16; with them, it depends on the dispatcher and oneDNN caps as well
    if not (capabilities.get("avx512_bf16") or capabilities.get("amx_bf16")):
        assert found.native_bf16 is False
    assert found.capability in found.describe() and ("no native bf16" in found.describe()) != found.native_bf16


def test_capping_the_dispatcher_to_avx2_turns_native_bf16_off(monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True, "cpu_name": "fake"})
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")  # ATEN_CPU_CAPABILITY=avx2
    assert detect_hardware("cpu").native_bf16 is False
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert detect_hardware("cpu").native_bf16 is True
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)  # ONEDNN_MAX_CPU_ISA=AVX2
    assert detect_hardware("cpu").native_bf16 is False
