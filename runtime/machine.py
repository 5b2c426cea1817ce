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
# ... and on aarch64 (/proc/cpuinfo "Features"): int8 dot products (SDOT/UDOT, Cortex-A76 and
# later, not the Raspberry Pi 4's A72), int8 matrix multiply (SMMLA), and SME, which newer ONNX
# Runtime builds use through KleidiAI.
_ARM_FEATURES = {
    "asimd": "NEON",
    "asimddp": "DOTPROD",
    "i8mm": "I8MM",
    "bf16": "BF16",
    "sve": "SVE",
    "sme": "SME",
}
# Arm Ltd's "CPU part" numbers (implementer 0x41) of common boards and servers.
_ARM_PARTS = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd08": "Cortex-A72",
    "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1",
    "0xd40": "Neoverse-V1",
    "0xd41": "Cortex-A78",
    "0xd46": "Cortex-A510",
    "0xd47": "Cortex-A710",
    "0xd49": "Neoverse-N2",
    "0xd4f": "Neoverse-V2",
}


def cpu_summary() -> str:
    """'AMD EPYC (AVX2, AVX-512, AVX512-VNNI), 2 cores' or 'Neoverse-N1 (aarch64: NEON, DOTPROD),
    2 cores' from /proc/cpuinfo; the platform elsewhere. (Under qemu-user this is the host's CPU,
    not the emulated one, unless the emulated tree serves its own /proc/cpuinfo, as
    `make test-arm64` does.)"""
    name, flags, part = platform.processor() or platform.machine(), set(), None
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name":
                name = value.strip()
            elif key == "CPU part" and part is None:
                part = value.strip()
            elif key in ("flags", "Features"):
                flags = set(value.split())
                if key == "flags":
                    break
    except OSError:
        pass
    if "asimd" in flags or platform.machine().lower() in ("aarch64", "arm64"):
        name = _ARM_PARTS.get(part or "", name)
        have = [label for flag, label in _ARM_FEATURES.items() if flag in flags]
        return f"{name} (aarch64: {', '.join(have) or 'features unknown'}), {os.cpu_count()} cores"
    have = [label for flag, label in _FEATURES.items() if flag in flags]
    return f"{name} ({', '.join(have) or 'no AVX2'}), {os.cpu_count()} cores"
