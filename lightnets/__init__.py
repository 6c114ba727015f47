"""lightnets: efficient (lightweight) convolutional networks for PyTorch.

The public names below load on first use (PEP 562), so that `import lightnets` costs nothing and
the torch-free parts (`lightnets verify`, lightnets.cpu_class, lightnets.deploy.loaders) run on a
machine without torch. Model families load on first use too, and tools (matplotlib, onnx,
onnxruntime, datasets) inside the functions that need them.
"""

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_API = {
    "ModelCard": "lightnets.registry",
    "convert_timm_state_dict": "lightnets.weights",
    "create_model": "lightnets.factory",
    "list_models": "lightnets.registry",
    "load_weights": "lightnets.weights",
    "model_card": "lightnets.registry",
    "register_model": "lightnets.registry",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'lightnets' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
