"""harness/method/precision.py: ``auto`` is bf16 exactly where the hardware computes bf16 natively.

The tests that take ``machine`` (tests/conftest.py) run twice, as an AVX2-only CPU and as a
bf16-native one, whatever CPU runs them. The real detection is tested with torch's capability
queries faked, and once on the real CPU, where it asserts only what holds on any CPU.
"""

from __future__ import annotations

import pytest
import torch
import yaml

import harness.method.precision
from harness.cli import main
from harness.errors import BadInput
from harness.grid.expand import expand
from harness.grid.profiles import load_profile
from harness.method.precision import Hardware, resolve_precision

# The real detection, kept before conftest's fake replaces harness.method.precision.detect_hardware for the session.
detect_hardware = harness.method.precision.detect_hardware

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
    # The one test of the real CPU: whatever it is, its description is torch's own query, consistent with itself.
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


def test_capping_onednn_alone_turns_native_bf16_off(monkeypatch):
    # The dispatcher allows AVX-512 but oneDNN (which runs the GEMMs) is capped: its bf16 would be emulated.
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True, "cpu_name": "fake"})
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AMX")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert detect_hardware("cpu") == Hardware("cpu", "fake", "AMX", native_bf16=False)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert detect_hardware("cpu").native_bf16 is True


# ---------------------------------------------------------------- every place `auto` is resolved, on both machines


def test_the_fake_machine_is_what_auto_resolves_on(machine):
    assert harness.method.precision.detect_hardware() == machine.hardware
    assert resolve_precision("auto") == machine.precision


def test_a_profile_resolves_auto_on_the_machine_and_keeps_an_explicit_precision(machine, tmp_path):
    block = {"models": {"tiny-bert": [0]}, "datasets": ["sst2"], "lrs": [1e-3], "seeds": [0]}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"profile": "t", "profiles": {"t": {"blocks": [
        {**block, "name": "unset"}, {**block, "name": "auto", "precision": "auto", "seeds": [1]},
        {**block, "name": "fp32", "precision": "fp32", "seeds": [2]},
        {**block, "name": "bf16", "precision": "bf16", "seeds": [3]}]}}}))
    cells = expand(load_profile("t", params))
    assert [c.precision for c in cells] == [machine.precision, machine.precision, "fp32", "bf16"]


@pytest.mark.parametrize("asked", [None, "auto", "fp32", "bf16"])
def test_the_cell_verb_resolves_auto_on_the_machine(machine, asked, monkeypatch, capsys):
    ran = []

    def run_cell(config, **options):  # what reaches the cell, without training it
        ran.append(config)
        return {"identity": "i", "config_hash": config.hash, "status": "ok", "best_test_f1": 1.0,
                "selected_test_f1": 1.0, "majority_f1": 1.0, "level": 0.0, "tokens_per_s": 1.0, "wall_s": 1.0}

    monkeypatch.setattr("harness.cli.method.run_cell", run_cell)
    argv = ["cell", "--model", "tiny-bert", "--no-progress"] + (["--precision", asked] if asked else [])
    assert main(argv) == 0, capsys.readouterr().err
    assert [c.precision for c in ran] == [machine.precision if asked in (None, "auto") else asked]


def test_the_bench_verb_resolves_auto_on_the_machine(machine, monkeypatch):
    benched = []
    monkeypatch.setattr("harness.cli.perf.bench", lambda settings, **options: benched.append(settings))
    assert main(["bench", "--model", "tiny-bert", "--out", "unused.json"]) == 0
    assert [(s.precision, s.trainer_precision_used) for s in benched] == [(machine.precision, machine.precision)]
