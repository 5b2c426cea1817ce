"""The machine report on aarch64: an ARM core and the features that pick ONNX Runtime's kernels."""

from __future__ import annotations

from pathlib import Path

from traductor.runtime import machine

CPUINFO = Path(__file__).parent / "cpuinfo"  # a Neoverse-N1's, served to qemu-aarch64


def test_cpu_summary_names_an_arm_core_and_its_int8_features(monkeypatch):
    real_open = open
    monkeypatch.setattr(
        "builtins.open",
        lambda f, *a, **k: (
            real_open(CPUINFO, *a, **k) if f == "/proc/cpuinfo" else real_open(f, *a, **k)
        ),
    )
    monkeypatch.setattr(machine.platform, "machine", lambda: "aarch64")
    summary = machine.cpu_summary()
    assert summary.startswith("Neoverse-N1 (aarch64: NEON, DOTPROD)")
    assert "AVX" not in summary
