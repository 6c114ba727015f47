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
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lightnets.errors import ConfigError, MissingDependencyError
from lightnets.files import check_writable

PRECISIONS = ("fp32", "fp16")
PARAM, BIN = ".ncnn.param", ".ncnn.bin"


def _require(name: str):
    try:
        return __import__(name)
    except ImportError:
        raise MissingDependencyError(
            f"ncnn export needs {name}: pip install lightnets[ncnn]"
        ) from None


def bin_path(param: str | os.PathLike) -> Path:
    """`model.ncnn.param` -> `model.ncnn.bin` (the weights)."""
    param = Path(param)
    if not param.name.endswith(PARAM):
        raise ConfigError(f"{param}: an ncnn model is named *{PARAM}")
    return param.with_name(param.name[: -len(PARAM)] + BIN)


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
                ("pnnxonnx", ".pnnx.onnx"), ("ncnnparam", PARAM), ("ncnnbin", BIN),
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


def blob_names(param: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(inputs, outputs) of an ncnn .param: the Input layers' blobs, and the blobs no layer
    reads."""
    lines = Path(param).read_text().split("\n")
    if lines[0].strip() != "7767517":
        raise ConfigError(f"{param}: not an ncnn text .param (magic {lines[0].strip()!r})")
    inputs, produced, consumed = [], [], set()
    for line in lines[2:]:
        fields = line.split()
        if len(fields) < 4:
            continue
        kind, n_in, n_out = fields[0], int(fields[2]), int(fields[3])
        bottoms, tops = fields[4 : 4 + n_in], fields[4 + n_in : 4 + n_in + n_out]
        consumed.update(bottoms)
        produced += tops
        if kind == "Input":
            inputs += tops
    return inputs, [b for b in produced if b not in consumed]


def load(path: Path, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A function running the ncnn model at `path` (.ncnn.param, with its .ncnn.bin beside it)
    on an NCHW float32 batch, one image at a time; returns the outputs stacked.

    Precision: fp32 (no reduced-precision storage or arithmetic) unless the sidecar says fp16.
    """
    ncnn = _require("ncnn")
    path = Path(path)
    weights = bin_path(path)
    for file in (path, weights):
        if not file.is_file():
            raise FileNotFoundError(f"no ncnn model file at {file}")
    (source,), (sink,) = blob_names(path)
    net = ncnn.Net()
    if threads:
        net.opt.num_threads = threads
    if _precision(path) != "fp16":  # ncnn picks fp16/bf16 storage by default where it can
        for option in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic"):
            setattr(net.opt, option, False)
        net.opt.use_bf16_storage = False
    if net.load_param(str(path)) != 0 or net.load_model(str(weights)) != 0:
        raise ConfigError(f"ncnn cannot load {path} and {weights.name}")

    def run(x: np.ndarray) -> np.ndarray:
        outs = []
        for image in np.ascontiguousarray(x, dtype=np.float32):
            with net.create_extractor() as extractor:
                extractor.input(source, ncnn.Mat(image).clone())
                status, out = extractor.extract(sink)
                if status != 0:
                    raise RuntimeError(f"ncnn failed on {path} (status {status})")
                outs.append(np.array(out).reshape(-1))
        return np.stack(outs)

    return run


def _precision(path: Path) -> str:
    from lightnets.deploy.targets import read_sidecar, sidecar_path

    return read_sidecar(path).get("precision", "fp32") if sidecar_path(path).is_file() else "fp32"
