"""Deployment: inference-time re-parameterization, verified ONNX export and the runtimes the
profiler times (eager, ONNX Runtime, OpenVINO).

`reparameterize` needs only torch; `export_onnx` imports onnx and onnxruntime when called, and each
runtime imports its package when its runner is built.
"""

from lightnets.deploy.onnx import export_onnx, onnx_parity
from lightnets.deploy.reparam import ReparamReport, reparameterize
from lightnets.deploy.runtimes import RUNTIMES, check_runtime, make_runner

__all__ = [
    "RUNTIMES",
    "ReparamReport",
    "check_runtime",
    "export_onnx",
    "make_runner",
    "onnx_parity",
    "reparameterize",
]
