"""What machine this is, in one line for reports: CPU name, the features that pick ONNX Runtime's
kernels, cores. Shared by `traductor bench`, the exporter's model card and the benchmarks."""

from __future__ import annotations

import os
import platform

# CPU features that decide which int8 and float kernels ONNX Runtime runs on x86-64.
_FEATURES = {
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "avx512_vnni": "AVX512-VNNI",
    "avx_vnni": "AVX-VNNI",
    "amx_int8": "AMX-INT8",
}


def cpu_summary() -> str:
    """'AMD EPYC (AVX2, AVX-512, AVX512-VNNI), 2 cores' from /proc/cpuinfo; the platform elsewhere.
    (Under qemu-user this is the host's CPU, not the emulated one.)"""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    have = [label for flag, label in _FEATURES.items() if flag in flags]
    return f"{name} ({', '.join(have) or 'no AVX2'}), {os.cpu_count()} cores"
