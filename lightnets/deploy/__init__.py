"""Deployment: inference-time re-parameterization, verified export for every runtime and
precision, int8 quantization, and the runners the profiler times.

`targets` is the runtime x precision registry (TARGETS: what each runtime exports and needs),
`loaders` runs an artifact (numpy in and out, no torch), `sidecar` is the metadata every artifact
carries, `artifacts` exports and verifies (`export_verified`, `make_runner`) by the rule in
`checks`, `reference` is the reference set `lightnets verify` re-runs, `quantize` holds the int8
quantizers (`calibration`: the images they calibrate on). `matrix` is the matrix of `lightnets
deploy` (every runtime x precision exported, scored and timed) and `report` words and draws it.
The names below load on first use, so that the torch-free modules stay torch-free.
"""

from lightnets._lazy import lazy_names

# public name -> the module that defines it
_API = {
    "ReparamReport": "lightnets.deploy.reparam",
    "TARGETS": "lightnets.deploy.targets",
    "TIMED_RUNTIMES": "lightnets.deploy.targets",
    "check_runtime": "lightnets.deploy.artifacts",
    "export_onnx": "lightnets.deploy.onnx",
    "export_verified": "lightnets.deploy.artifacts",
    "get_target": "lightnets.deploy.targets",
    "make_runner": "lightnets.deploy.artifacts",
    "onnx_parity": "lightnets.deploy.onnx",
    "read_sidecar": "lightnets.deploy.sidecar",
    "reparameterize": "lightnets.deploy.reparam",
}
__all__ = list(_API)


__getattr__, __dir__ = lazy_names(__name__, _API, globals())
