"""What a timing depends on (CPU, threads, versions), so runs on different machines compare."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

import torch

from lightnets.cpu import default_threads


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what platform reports."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def machine_info(device: str = "cpu", threads: int | None = None, runtime: str = "eager") -> dict:
    """What a timing depends on, so runs on different machines can be compared."""
    info = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads or default_threads(),
        "device": str(device),
        "runtime": runtime,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if str(device).startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
    if runtime == "onnxruntime":
        with contextlib.suppress(ImportError):
            import onnxruntime

            info["onnxruntime"] = onnxruntime.__version__
    return info


def machine_line(machine: dict) -> str:
    """One line for a table footer: CPU, threads, torch, device, runtime (and the GPU)."""
    where = (
        f"machine: {machine['cpu']}, {machine['threads']} threads, torch {machine['torch']}, "
        f"device {machine['device']}, runtime {machine['runtime']}"
    )
    return where + (f" ({machine['gpu']})" if "gpu" in machine else "")
