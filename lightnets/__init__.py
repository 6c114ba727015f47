"""lightnets: efficient (lightweight) convolutional networks for PyTorch.

`import lightnets` loads torch and the registry only; model families load on first use, and tools
(matplotlib, onnx, onnxruntime, datasets) load inside the functions that need them.
"""

__version__ = "0.1.0"

from lightnets.factory import create_model  # noqa: E402
from lightnets.registry import ModelCard, list_models, model_card, register_model  # noqa: E402
from lightnets.weights import convert_timm_state_dict, load_weights  # noqa: E402

__all__ = [
    "ModelCard",
    "__version__",
    "convert_timm_state_dict",
    "create_model",
    "list_models",
    "load_weights",
    "model_card",
    "register_model",
]
