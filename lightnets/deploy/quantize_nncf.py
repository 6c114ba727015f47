"""int8 by NNCF: `quantize_openvino` (nncf.quantize on an OpenVINO model: per-channel weights,
the "mixed" preset's asymmetric activations) and `quantize_onnx_nncf` (the same on an ONNX graph,
for onnxruntime: bias correction, which onnxruntime's own quantizer lacks; more accurate, slower
on x86). Calibration batches are lightnets.deploy.calibration's; the report and the layer kinds
kept in float lightnets.deploy.quant_graph's.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterable

import numpy as np
from torch import Tensor

from lightnets.deploy.calibration import as_batches
from lightnets.deploy.quant_graph import (
    QuantReport,
    float_nodes,
    onnx_graph,
    onnx_input_name,
    openvino_graph,
    require_module,
)
from lightnets.errors import ConfigError


def quantize_openvino(
    model,
    calibration: Iterable[Tensor],
    keep_float: Iterable[str] = (),
    *,
    preset: str = "mixed",
    fast_bias_correction: bool = True,
    overflow_fix: str = "enable",
):
    """An int8 copy of the openvino.Model `model`, by nncf.quantize calibrated on `calibration`;
    returns (model, QuantReport). preset "mixed": asymmetric activations, symmetric weights
    (NNCF's advice for models with non-ReLU activations); "performance": symmetric both.
    overflow_fix "enable": 7-bit weights everywhere, for the same VPMADDUBSW saturation on x86
    without VNNI as `quantize_onnx`'s reduce_range (NNCF's default fixes the first layer only);
    "first_layer" or "disable" as NNCF's."""
    nncf = require_module("nncf", "openvino")
    batches = as_batches(calibration)
    kept = float_nodes(openvino_graph(model), keep_float)
    quantized = _nncf_quantize(
        nncf, model, batches, kept, preset, fast_bias_correction, overflow_fix
    )
    report = QuantReport("openvino", kept, {"preset": preset, "overflow_fix": overflow_fix})
    return quantized, report


def _nncf_quantize(nncf, model, batches, kept, preset, fast_bias_correction, overflow_fix,
                   transform=None):  # fmt: skip
    """nncf.quantize of an OpenVINO or ONNX model with lightnets' settings, quietly."""
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        OverflowFix,
    )

    names = sorted({n for v in kept.values() for n in v})
    fixes = {"enable": OverflowFix.ENABLE, "first_layer": OverflowFix.FIRST_LAYER,
             "disable": OverflowFix.DISABLE}  # fmt: skip
    if overflow_fix not in fixes:
        raise ConfigError(f"overflow_fix must be one of {', '.join(fixes)}, got {overflow_fix!r}")
    presets = {
        "mixed": nncf.QuantizationPreset.MIXED,
        "performance": nncf.QuantizationPreset.PERFORMANCE,
    }
    if preset not in presets:
        raise ConfigError(f"preset must be one of {', '.join(presets)}, got {preset!r}")
    level = nncf.common.logging.nncf_logger.level
    nncf.set_log_level(logging.ERROR)  # INFO lines on every call
    try:
        # NNCF draws rich progress bars on stdout, which is the command's table and JSON
        with contextlib.redirect_stdout(io.StringIO()):
            return nncf.quantize(
                model,
                nncf.Dataset(batches, transform),
                preset=presets[preset],
                subset_size=len(batches),  # items of the dataset: batches
                fast_bias_correction=fast_bias_correction,
                ignored_scope=nncf.IgnoredScope(names=names, validate=False) if names else None,
                advanced_parameters=AdvancedQuantizationParameters(
                    overflow_fix=fixes[overflow_fix]
                ),
            )
    finally:
        nncf.set_log_level(level)


def quantize_onnx_nncf(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    calibration: Iterable[Tensor],
    keep_float: Iterable[str] = (),
    *,
    preset: str = "mixed",
    fast_bias_correction: bool = True,
    overflow_fix: str = "enable",
) -> QuantReport:
    """The float ONNX file `src` quantized for onnxruntime by NNCF (QDQ, per-channel weights),
    with the settings of `quantize_openvino`. What it adds over `quantize_onnx` is bias
    correction, which onnxruntime's quantizer lacks: on a MixNet-S trained on CIFAR-10 photos
    (32 px) it took the int8 top-1 drop from 3.3 to 0.4 points. The price, on x86: NNCF gives 67
    of MixNet-S's 88 activation quantizers signed int8 (ORT's quantizer: 207, all uint8) and
    leaves SiLU unquantized, while MLAS's x86 int8 convs take uint8 activations; ORT then runs
    much of the graph in float between Q/DQ pairs, 4.6x slower than `quantize_onnx`'s graph at
    224 px (docs/deploy.md). An accuracy option, not the default."""
    nncf = require_module("nncf", "openvino")
    import onnx

    batches = as_batches(calibration)
    model = onnx.load(str(src))
    name = onnx_input_name(model)
    kept = float_nodes(onnx_graph(model), keep_float)
    quantized = _nncf_quantize(
        nncf, model, batches, kept, preset, fast_bias_correction, overflow_fix,
        transform=lambda x: {name: x.astype(np.float32)},
    )  # fmt: skip
    onnx.save(quantized, str(dst))
    options = {"quantizer": "nncf", "preset": preset, "overflow_fix": overflow_fix,
               "fast_bias_correction": fast_bias_correction}  # fmt: skip
    return QuantReport("onnxruntime", kept, options)
