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
    _check_count("num_classes", num_classes, minimum=0)
    _check_count("in_chans", in_chans, minimum=1)
    kwargs = {"in_chans": in_chans, **overrides}
    if card.embedding_dim is None:
        kwargs["num_classes"] = num_classes
    builder = model_builder(canonical)
    _check_overrides(canonical, builder, kwargs)
    model = builder(**kwargs)
    model.model_name = canonical
    model.card = card
    if pretrained:
        from lightnets.weights import load_weights

        load_weights(model, pretrained)
    if features_only:
        from lightnets.models._common import FeatureExtractor

        model = FeatureExtractor(model)
    return model


def _check_count(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_overrides(name: str, builder, kwargs: dict) -> None:
    """Reject an argument the builder does not take, by its signature: calling it and catching
    TypeError would also turn a bug inside the builder into a user error."""
    import inspect
    import typing

    params = dict(inspect.signature(builder).parameters)
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        # builders forward **kwargs to the model class they are annotated to return
        fn = getattr(builder, "func", builder)  # functools.partial
        target = typing.get_type_hints(fn).get("return")
        if not isinstance(target, type):
            return
        params.update(inspect.signature(target).parameters)
        if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(target).parameters.values()):
            return
    unknown = sorted(k for k in kwargs if k not in params)
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], [k for k in params if k != "kwargs"], n=2)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"{name} takes no argument {unknown[0]!r}{hint}")
