"""lightnets: efficient (lightweight) convolutional networks for PyTorch.

The public names below load on first use (PEP 562), so that `import lightnets` costs nothing and
the torch-free parts (`lightnets verify`, lightnets.cpu_class, lightnets.deploy.loaders) run on a
machine without torch. Model families load on first use too, and tools (matplotlib, onnx,
onnxruntime, datasets) inside the functions that need them.
"""

from lightnets._lazy import lazy_names

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


__getattr__, __dir__ = lazy_names(__name__, _API, globals())
