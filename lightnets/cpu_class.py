"""The instruction-set class of this machine's CPU, as int8 and bf16 results depend on it.

Runtimes pick their int8/bf16 kernels by what the CPU offers: on x86-64 u8 x s8 dot products with
saturation (AVX2), without (AVX-512 VNNI), bf16 arithmetic (AVX512-BF16) or tile units (AMX); on
aarch64 NEON, dot products (dotprod) and int8 matrix multiplies (i8mm). An artifact verified on one
class can compute differently on another, so every verification records the class it ran on.

Read from /proc/cpuinfo (Linux) with no third-party package: this module must import without
torch, for `lightnets verify` on a board. `ONEDNN_MAX_CPU_ISA` caps what oneDNN (OpenVINO's CPU
plugin) uses below what the CPU has; the class then names the cap.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# x86-64 classes, highest first: (label, cpuinfo flags that must all be present)
X86_CLASSES = (
    ("AMX", {"amx_tile", "amx_int8", "amx_bf16"}),
    ("AVX-512 VNNI BF16", {"avx512f", "avx512_vnni", "avx512_bf16"}),
    ("AVX-512 VNNI", {"avx512f", "avx512_vnni"}),
    ("AVX-512", {"avx512f", "avx512bw", "avx512vl"}),
    ("AVX2 VNNI", {"avx2", "avx_vnni"}),
    ("AVX2", {"avx2", "fma"}),
)
# aarch64 features worth naming, in /proc/cpuinfo's spelling -> ours
ARM_FEATURES = (("asimd", "NEON"), ("asimddp", "dotprod"), ("i8mm", "i8mm"), ("bf16", "bf16"))

# ONEDNN_MAX_CPU_ISA values (oneDNN's names) from which oneDNN computes in bf16 natively
ONEDNN_BF16_ISAS = {
    "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
    "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "ALL",
}  # fmt: skip


def cpu_flags() -> set[str]:
    """The CPU's feature flags ("flags" on x86, "Features" on ARM); empty where unreadable."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def onednn_cap() -> str | None:
    """ONEDNN_MAX_CPU_ISA when set (upper case), else None."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    return cap or None


def cpu_class(flags: set[str] | None = None, machine: str | None = None) -> str:
    """E.g. "x86-64 AVX-512 VNNI", "x86-64 AMX", "aarch64 NEON+dotprod+i8mm"; with
    ONEDNN_MAX_CPU_ISA set, the cap follows in parentheses."""
    flags = cpu_flags() if flags is None else flags
    machine = (machine or platform.machine()).lower()
    if machine in ("aarch64", "arm64"):
        label = "aarch64 " + "+".join(ours for theirs, ours in ARM_FEATURES if theirs in flags)
    elif machine in ("x86_64", "amd64"):
        names = [name for name, needs in X86_CLASSES if needs <= flags]
        label = "x86-64 " + (names[0] if names else "SSE")
    else:
        label = machine or "unknown"
    cap = onednn_cap()
    return f"{label} (oneDNN capped at {cap})" if cap else label.strip()


def onednn_computes_bf16() -> bool:
    """False when ONEDNN_MAX_CPU_ISA caps oneDNN below native bf16 (OpenVINO then fails to compile
    a bf16 model on such a cap, e.g. AVX2); True when it is unset or at a bf16 level."""
    cap = onednn_cap()
    return cap is None or cap in ONEDNN_BF16_ISAS
