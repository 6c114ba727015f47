"""LiteRT (TensorFlow Lite) export (.tflite) with litert-torch, and a runner on its interpreter.

fp32: `litert_torch.convert(model, (example,))`. int8: PT2E static quantization first
(litert-torch's `PT2EQuantizer`, symmetric, per-channel weights, per-tensor activations),
calibrated on the caller's batches; the converter's STATIC mode folds the quantize/dequantize
pairs into int8 kernels and also makes the file's input and output int8: the runner quantizes the
float input and dequantizes the logits with the scales stored in the file. Caveat (litert-torch
0.10): the STATIC file strays from PyTorch's PT2E simulation of the same quantized model, which a
file without STATIC matches exactly (on the input-dependent part of an untrained MobileNetV2's
logits: cosine 0.1 vs 1.0); on the whole logits it is as close to fp32 as ExecuTorch's int8
(relative error ~0.17, cosine ~0.99). Check int8 files on real images.

fp16: the fp32 file with its weights cast to float16 by ai-edge-quantizer (FLOAT_CASTING); each
weight is dequantized once at load and the arithmetic stays fp32 on CPUs (XNNPACK), so fp16
halves the file, not the time.

Layout: the converted model keeps PyTorch's NCHW input; inside it runs NHWC, behind one
TRANSPOSE at the input that litert-torch adds. So the runner takes NCHW as it is.

Batch: fixed, the example's (metadata "batch"). A dynamic batch axis fails to convert on
litert-torch 0.10 (its JAX lowering of the flatten before the classifier needs concrete shapes);
the runner splits larger batches and pads smaller ones (and resizes a file with a dynamic axis).
The metadata goes into the flatbuffer's metadata table under "lightnets" (JSON), next to the
sidecar the caller writes.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lightnets.errors import ConfigError, import_optional
from lightnets.files import atomic_write, check_writable

PRECISIONS = ("fp32", "fp16", "int8")
MAX_CALIBRATION_BATCH = 256  # calibration runs in PyTorch, on a graph with a dynamic batch
METADATA_NAME = "lightnets"


def _require(converter: bool = True):
    for name in ("litert_torch", "ai_edge_litert") if converter else ("ai_edge_litert",):
        import_optional(name, "litert", "LiteRT")


def int8_quantizer():
    """litert-torch's PT2E quantizer: symmetric, per-channel weights."""
    from litert_torch.quantize.pt2e_quantizer import (
        PT2EQuantizer,
        get_symmetric_quantization_config,
    )

    return PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))


def export(
    model: nn.Module,
    path: Path,
    example: Tensor,
    precision: str,
    calibration: Iterable[Tensor] | None,
    metadata: dict,
) -> Path:
    """Write `model` as a .tflite at `path`; returns `path`. Sets metadata["batch"] to the
    example's batch, the only one the file runs."""
    if precision not in PRECISIONS:
        raise ConfigError(f"litert exports {', '.join(PRECISIONS)}, not {precision}")
    _require()
    import litert_torch

    from lightnets.deploy.executorch import batch_example, pt2e_int8

    path = Path(path)
    check_writable(path)
    model, quant_config = model.eval(), None
    if precision == "int8":
        from litert_torch.quantize.quant_config import QuantConfig

        quantizer = int8_quantizer()
        # STATIC mode: the converter folds the quantize/dequantize pairs into int8 kernels;
        # without it the file keeps float kernels between the pairs (bigger and slower than fp32)
        quant_config = QuantConfig(pt2e_quantizer=quantizer)
        pair, dynamic_shapes = batch_example(example, MAX_CALIBRATION_BATCH)
        model = pt2e_int8(
            model, pair, quantizer, calibration,
            dynamic_shapes=dynamic_shapes, max_batch=MAX_CALIBRATION_BATCH, fold_quantize=False,
        )  # fmt: skip
    metadata["batch"] = int(example.shape[0])
    # the converter reports progress on stdout, which is `lightnets deploy`'s table and JSON
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", FutureWarning)
        flatbuffer = bytes(
            litert_torch.convert(model, (example,), quant_config=quant_config).model_content()
        )
    if precision == "fp16":
        flatbuffer = _fp16_weights(flatbuffer)
    flatbuffer = _with_metadata(flatbuffer, metadata)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(flatbuffer))
    return path


def _fp16_weights(flatbuffer: bytes) -> bytes:
    """The model with every supported op's float weights stored as float16."""
    from ai_edge_quantizer import quantizer, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName

    recipe = recipe_manager.RecipeManager()
    recipe.add_weight_only_config(
        regex=".*",
        operation_name=TFLOperationName.ALL_SUPPORTED,
        num_bits=16,
        algorithm_key=AlgorithmName.FLOAT_CASTING,
    )
    q = quantizer.Quantizer(bytearray(flatbuffer), recipe.get_quantization_recipe())
    return bytes(q.quantize(enable_progress_report=False).quantized_model)


def _with_metadata(flatbuffer: bytes, metadata: dict) -> bytes:
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    model.metadata = [m for m in model.metadata or [] if m.name != METADATA_NAME]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_metadata(path: Path) -> dict:
    """The metadata embedded by `export` ({} for a .tflite written elsewhere)."""
    _require(converter=False)
    from ai_edge_litert import schema_py_generated as schema

    data = Path(path).read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() and entry.Name().decode() == METADATA_NAME:
            return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    return {}
