"""OpenVINO (CPU) on an exported ONNX file: compile, run, and check against PyTorch.

`export` and `load` are this module's deployment target (lightnets.deploy.targets): an OpenVINO IR
(.xml + .bin) converted from the ONNX export, in fp32, fp16 (weights stored in float16), bf16
(fp32 weights, run with INFERENCE_PRECISION_HINT bf16) or int8 (NNCF, lightnets.deploy.quantize).
The IR keeps a dynamic batch axis; `load` compiles one static-shape model per input shape it
sees, so each batch size runs with kernels picked for it.

OpenVINO reads the ONNX file directly. A static input shape lets its CPU plugin pick kernels for
that shape; without one the batch axis stays dynamic (what `lightnets profile --runtime openvino`
needs: its runner is in lightnets.deploy.loaders).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lightnets.errors import import_optional


def _require_openvino():
    return import_optional("openvino", "openvino", "OpenVINO")


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
    from lightnets.deploy.checks import relative_error

    run = compile_openvino(path, input_shape=tuple(x.shape))
    with torch.no_grad():
        expected = reference.eval()(x)
    return relative_error(run(x.numpy()), expected)


# ------------------------------------------------------------------ deployment target


def export(model: nn.Module, path: Path, example: Tensor, precision: str, calibration, metadata):
    """Write `model` as an OpenVINO IR at `path` (.xml, weights in the .bin beside it).

    int8 uses `metadata["keep_float"]` and `metadata["quantize"]` (keyword arguments of
    quantize_openvino) and adds what NNCF was told to leave in float to metadata["quantization"].
    The metadata also goes into the IR's rt_info under "lightnets" (JSON)."""
    import tempfile

    from lightnets.deploy.onnx import write_onnx
    from lightnets.errors import ConfigError
    from lightnets.files import check_writable

    ov = _require_openvino()
    path = Path(path)
    if path.suffix != ".xml":
        raise ConfigError(f"an OpenVINO IR is written to a .xml file, got {path}")
    check_writable(path)
    if precision not in ("fp32", "fp16", "bf16", "int8"):
        raise ConfigError(f"openvino exports fp32, fp16, bf16 or int8, not {precision!r}")
    if precision == "int8" and metadata.get("quantize", {}).get("align", True):
        from lightnets.deploy.layout import align_channels

        # OpenVINO 2026.4's AMX int8 kernels miscompute grouped convs whose groups miss the
        # 16-channel block (MixNet's split 1x1s, ShuffleNetV1's grouped 1x1s: 12-33% top-1
        # agreement); made dense first, the same graph agrees at 93% (docs/deploy.md)
        model = align_channels(model, 16)
        metadata["aligned_channels"] = 16
    with tempfile.TemporaryDirectory(prefix="lightnets-ov-") as tmp:
        onnx_path = write_onnx(model.eval(), example, Path(tmp) / "float.onnx")
        ov_model = ov.convert_model(str(onnx_path))
    if precision == "int8":
        from lightnets.deploy.quantize_nncf import quantize_openvino

        if calibration is None:
            raise ConfigError("int8 needs calibration images")
        ov_model, report = quantize_openvino(
            ov_model,
            calibration,
            metadata.get("keep_float", ()),
            **{k: v for k, v in metadata.get("quantize", {}).items() if k != "align"},
        )
        metadata["quantization"] = report.to_dict()
    ov_model.set_rt_info(json.dumps(metadata), "lightnets")
    ov.save_model(ov_model, str(path), compress_to_fp16=precision == "fp16")
    return path
