"""Activations by the short names used in architecture tables; all are torch's own modules."""

from __future__ import annotations

from torch import nn

from lightnets.errors import UnknownNameError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "swish": nn.SiLU,
    "silu": nn.SiLU,
    "hard_swish": nn.Hardswish,
    "hswish": nn.Hardswish,
    "hard_sigmoid": nn.Hardsigmoid,
    "sigmoid": nn.Sigmoid,
    "prelu": nn.PReLU,
    "identity": nn.Identity,
}


def get_act(act: str | type[nn.Module] | None) -> type[nn.Module] | None:
    """Resolve a table's activation name to its module class; classes and None pass through."""
    if act is None or isinstance(act, type):
        return act
    try:
        return ACTIVATIONS[act]
    except KeyError:
        raise UnknownNameError(
            f"unknown activation {act!r}; known: {', '.join(ACTIVATIONS)}"
        ) from None


def make_act(act_layer: type[nn.Module] | None, channels: int) -> nn.Module:
    """Instantiate an activation; PReLU learns one slope per channel (MobileFaceNet)."""
    if act_layer is None:
        return nn.Identity()
    if act_layer is nn.PReLU:
        return nn.PReLU(channels)
    if act_layer in (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Hardsigmoid):
        return act_layer(inplace=True)
    return act_layer()
