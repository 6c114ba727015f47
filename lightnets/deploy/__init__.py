"""Deployment: inference-time re-parameterization, verified export for every runtime and
precision, int8 quantization, and the runtimes the profiler times (eager, ONNX Runtime, OpenVINO).

`targets` is the runtime x precision registry (TARGETS, get_target, export_verified, the sidecar
metadata every artifact carries); `quantize` holds the int8 quantizers (onnxruntime's and NNCF's)
and the mixed-precision layer selection. `reparameterize` needs only torch; `export_onnx` imports
onnx and onnxruntime when called, and each runtime imports its package when it is used.
"""

from lightnets.deploy.onnx import export_onnx, onnx_parity
from lightnets.deploy.reparam import ReparamReport, reparameterize
from lightnets.deploy.runtimes import RUNTIMES, check_runtime, make_runner
from lightnets.deploy.targets import TARGETS, export_verified, get_target, read_sidecar

__all__ = [
    "RUNTIMES",
    "TARGETS",
    "ReparamReport",
    "check_runtime",
    "export_onnx",
    "export_verified",
    "get_target",
    "make_runner",
    "onnx_parity",
    "read_sidecar",
    "reparameterize",
]
