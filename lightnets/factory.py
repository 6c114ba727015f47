"""`create_model`: build a registered model by name, load weights, or make it a backbone."""

from __future__ import annotations

from torch import nn

from lightnets.errors import ConfigError
from lightnets.registry import model_builder, model_card, resolve_name


def create_model(
    name: str,
    num_classes: int = 1000,
    in_chans: int = 3,
    pretrained: str | None = None,
    features_only: bool = False,
    **overrides,
) -> nn.Module:
    """Build model `name` (or one of its aliases).

    Args:
        num_classes: classifier outputs; 0 removes the classifier (pooled features out).
        in_chans: input channels (1 for grayscale or IR liveness cameras).
        pretrained: a .safetensors/.pth file or an https URL, in lightnets or timm layout.
        features_only: return a backbone whose forward gives the multi-scale feature maps.
        overrides: builder arguments such as width, drop_rate, drop_path_rate, small_input.
    """
    canonical = resolve_name(name)
    card = model_card(canonical)
    kwargs = {"in_chans": in_chans, **overrides}
    if card.embedding_dim is None:
        kwargs["num_classes"] = num_classes
    try:
        model = model_builder(canonical)(**kwargs)
    except TypeError as err:  # an override the builder does not take
        raise ConfigError(f"{canonical}: {err}") from None
    model.model_name = canonical
    model.card = card
    if pretrained:
        from lightnets.weights import load_weights

        load_weights(model, pretrained)
    if features_only:
        from lightnets.models._common import FeatureExtractor

        model = FeatureExtractor(model)
    return model
