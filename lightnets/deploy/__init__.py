"""Deployment: inference-time re-parameterization and verified ONNX export.

`reparameterize` needs only torch; `export_onnx` imports onnx and onnxruntime when called.
"""

from lightnets.deploy.onnx import export_onnx, onnx_parity
from lightnets.deploy.reparam import ReparamReport, reparameterize

__all__ = ["ReparamReport", "export_onnx", "onnx_parity", "reparameterize"]
