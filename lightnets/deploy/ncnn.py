"""ncnn export (.ncnn.param + .ncnn.bin) through pnnx, and a runner on the ncnn Python package.

Export traces the model with TorchScript at batch 1 and runs the pnnx converter on the trace; pnnx
maps channel shuffle to ShuffleChannel, fuses conv + activation, and folds constant-weight
`F.conv2d` (VGNet's fixed kernels) into convolutions. fp32 writes float32 weights; fp16 writes
float16 weights (pnnx's default) and the runner lets ncnn use fp16 storage and arithmetic where the
CPU has them (ARMv8.2, x86 with F16C/AVX512-FP16). int8 is not offered: ncnn quantizes with its
ncnn2table / ncnn2int8 tools, which the pip packages do not ship.

Batch: ncnn runs one image at a time (a Mat is C x H x W); the runner loops over the batch, so any
batch works (metadata "batch": None). The .bin is a companion file of the .param: keep them side
by side. ncnn files have no room for metadata; the caller's sidecar is the only copy.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor, nn

from lightnets.deploy.loaders import NCNN_BIN, NCNN_PARAM, bin_path
from lightnets.errors import ConfigError, import_optional
from lightnets.files import check_writable

PRECISIONS = ("fp32", "fp16")


def _require(name: str):
    return import_optional(name, "ncnn", "ncnn export")


def export(
    model: nn.Module,
    path: Path,
    example: Tensor,
    precision: str,
    calibration: Iterable[Tensor] | None,
    metadata: dict,
) -> Path:
    """Write `path` (.ncnn.param) and its .ncnn.bin; returns `path`. Sets metadata["batch"] =
    None and metadata["companion_files"] = [the .bin's name]."""
    if precision not in PRECISIONS:
        raise ConfigError(
            f"ncnn exports {', '.join(PRECISIONS)}, not {precision} (ncnn's int8 "
            "tools, ncnn2table and ncnn2int8, are not in its pip packages)"
        )
    pnnx = _require("pnnx")
    # absolute: pnnx runs in its scratch folder, where a relative path would point elsewhere
    path = Path(path).absolute()
    weights = bin_path(path)
    check_writable(path)
    check_writable(weights)
    image = example[:1].contiguous()
    # pnnx writes seven files next to its input: work in a scratch folder beside the output, so
    # that the two kept files are moved in with a rename (atomic, same file system)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".pnnx.") as scratch:
        scratch = Path(scratch)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.jit.trace(model.eval(), image).save(str(scratch / "model.pt"))
        outputs = {
            name: str(scratch / f"model{suffix}")
            for name, suffix in [
                ("pnnxparam", ".pnnx.param"), ("pnnxbin", ".pnnx.bin"), ("pnnxpy", "_pnnx.py"),
                ("pnnxonnx", ".pnnx.onnx"), ("ncnnparam", NCNN_PARAM), ("ncnnbin", NCNN_BIN),
                ("ncnnpy", "_ncnn.py"),
            ]
        }  # fmt: skip
        shape = ",".join(str(s) for s in image.shape)
        command = [pnnx.EXEC_PATH, str(scratch / "model.pt"), f"inputshape=[{shape}]f32"]
        command += [f"{k}={v}" for k, v in outputs.items()]
        command += [f"fp16={int(precision == 'fp16')}", "device=cpu"]
        done = subprocess.run(command, capture_output=True, text=True, cwd=scratch)
        if done.returncode != 0 or not Path(outputs["ncnnparam"]).is_file():
            log = (done.stdout + done.stderr).strip().splitlines()
            opened = [line for line in log if "open failed" in line]
            cause = opened[0] if opened else " | ".join(log[-5:])
            raise ConfigError(f"pnnx failed (exit {done.returncode}) in {scratch}: {cause}")
        os.replace(outputs["ncnnbin"], weights)
        os.replace(outputs["ncnnparam"], path)
    metadata.update(batch=None, companion_files=[weights.name])
    return path
