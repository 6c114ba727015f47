"""OpenVINO (CPU) on an exported ONNX file: compile, run, and check against PyTorch.

OpenVINO reads the ONNX file directly. A static input shape lets its CPU plugin pick kernels for
that shape; without one the batch axis stays dynamic (what `lightnets profile --runtime openvino`
needs: its runner is in lightnets.deploy.runtimes).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lightnets.errors import MissingDependencyError


def _require_openvino():
    try:
        import openvino
    except ImportError:
        raise MissingDependencyError(
            "OpenVINO is not installed: pip install lightnets[openvino]"
        ) from None
    return openvino


def compile_openvino(
    path: str | os.PathLike,
    threads: int | None = None,
    input_shape: Sequence[int] | None = None,
    hint: str = "LATENCY",
    precision: str = "f32",
) -> Callable[[np.ndarray], np.ndarray]:
    """A function running the ONNX file at `path` with OpenVINO on the CPU.

    Args:
        threads: INFERENCE_NUM_THREADS (None: OpenVINO's default, all cores).
        input_shape: fix the input shape, e.g. (1, 3, 224, 224); None keeps it dynamic.
        hint: PERFORMANCE_HINT, "LATENCY" (one stream) or "THROUGHPUT".
        precision: INFERENCE_PRECISION_HINT. f32 by default: on CPUs with bf16 instructions
            (AVX512-BF16, AMX) OpenVINO otherwise computes in bf16, about 4e-3 away from PyTorch.
    """
    ov = _require_openvino()
    if not Path(path).is_file():
        raise FileNotFoundError(f"no ONNX file at {path}")
    core = ov.Core()
    model = core.read_model(str(path))
    if input_shape is not None:
        model.reshape(list(input_shape))
    config = {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": precision}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    output = compiled.output(0)

    def run(x: np.ndarray) -> np.ndarray:
        return request.infer([x])[output]

    return run


def openvino_parity(path: str | os.PathLike, reference: nn.Module, x: Tensor) -> float:
    """relative_error of OpenVINO on `x` vs `reference(x)`."""
    from lightnets.deploy.onnx import relative_error

    run = compile_openvino(path, input_shape=tuple(x.shape))
    with torch.no_grad():
        expected = reference.eval()(x)
    return relative_error(run(x.numpy()), expected)
