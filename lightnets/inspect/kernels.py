"""Depthwise kernels of a network, collected as plain tensors (`classify.py` names them).

The VGNet paper ("Efficient CNN Architecture Design Guided by Visualization", arXiv:2207.10318,
§3) designed its blocks from pictures of trained depthwise kernels.
`collect_depthwise_kernels(model)` gathers every depthwise layer (plain nn.Conv2d with
groups == in_channels == out_channels, each kernel-size group of a MixConv2d, and the buffers of
a FixedDepthwiseConv2d) as a `DepthwiseKernels` record, in module order.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lightnets.cpu import torch_threads
from lightnets.errors import ConfigError
from lightnets.layers.fixed import FixedDepthwiseConv2d
from lightnets.layers.mixconv import MixConv2d
from lightnets.layers.separable import GlobalDepthwiseConv2d


@dataclass(frozen=True)
class DepthwiseKernels:
    """The kernels of one depthwise layer (or one kernel-size group of a MixConv2d).

    weight: (C, k, k) float32 copy on the CPU. stage: index into `model.stages` for lightnets
    models (-1 for the stem, len(stages) for the head); for other modules the resolution level
    (number of strided depthwise layers up to and including this one).
    """

    name: str
    weight: Tensor
    stride: int
    kernel_size: int
    stage: int
    fixed: bool
    dilation: int = 1
    group: int | None = None  # kernel-size group of a MixConv2d
    parent: str | None = None  # the MixConv2d that owns this group

    @property
    def channels(self) -> int:
        return self.weight.shape[0]


def _is_depthwise(conv: nn.Conv2d) -> bool:
    k = conv.kernel_size
    # a 1x1 depthwise conv is a per-channel scale: no spatial pattern to look at
    return conv.groups == conv.in_channels == conv.out_channels and k[0] == k[1] and k[0] > 1


def _stage_of(name: str, num_stages: int | None) -> int | None:
    parts = name.split(".")
    if num_stages is None:
        return None
    if parts[0] == "stages" and len(parts) > 1 and parts[1].isdigit():
        return int(parts[1])
    if parts[0] == "stem":
        return -1
    return num_stages


def collect_depthwise_kernels(model: nn.Module) -> OrderedDict[str, DepthwiseKernels]:
    """Every depthwise layer of `model` in module order, keyed by module name.

    A MixConv2d contributes one record per kernel-size group (named after the group's conv,
    `<mixconv>.convs.<i>`). The learned pooling of GlobalDepthwiseConv2d (MobileFaceNet's GDConv) is
    skipped: its kernel weights positions of the whole map, it is not a filter.
    Raises ValueError if the model has no depthwise layer.
    """
    stages = getattr(model, "stages", None)
    num_stages = len(stages) if isinstance(stages, nn.Sequential) else None
    found = _depthwise_layers(model)
    if not found:
        raise ConfigError(
            f"{module_name(model)} has no depthwise convolution (groups == in == out "
            "channels, kernel > 1) to inspect"
        )
    records: OrderedDict[str, DepthwiseKernels] = OrderedDict()
    level = 0
    for name, weight, stride, fixed, dilation, group, parent in found:
        level += stride > 1 and not group  # a MixConv2d downsamples once, not once per group
        stage = _stage_of(name, num_stages)
        w = weight.detach().to("cpu", torch.float32).reshape(-1, *weight.shape[-2:]).clone()
        records[name] = DepthwiseKernels(
            name=name,
            weight=w,
            stride=int(stride),
            kernel_size=int(w.shape[-1]),
            stage=level if stage is None else stage,
            fixed=fixed,
            dilation=int(dilation),
            group=group,
            parent=parent,
        )
    return records


# a depthwise layer found: name, weight, stride, fixed, dilation, MixConv group, MixConv name
_Layer = tuple[str, Tensor, int, bool, int, int | None, str | None]


def _depthwise_layers(model: nn.Module) -> list[_Layer]:
    """Every depthwise layer of `model` in module order (GDConv's pooling left out)."""
    skip: set[int] = set()
    found: list[_Layer] = []
    for name, module in model.named_modules():
        if id(module) in skip:
            continue
        if isinstance(module, GlobalDepthwiseConv2d):
            skip.add(id(module.conv))
        elif isinstance(module, FixedDepthwiseConv2d):
            found.append((name, module.weight, module.stride, True, 1, None, None))
        elif isinstance(module, MixConv2d) and module.depthwise:
            for i, conv in enumerate(module.convs):
                skip.add(id(conv))
                if _is_depthwise(conv):
                    found.append(
                        (
                            f"{name}.convs.{i}",
                            conv.weight,
                            conv.stride[0],
                            False,
                            conv.dilation[0],
                            i,
                            name,
                        )
                    )
        elif isinstance(module, nn.Conv2d) and _is_depthwise(module):
            found.append(
                (name, module.weight, module.stride[0], False, module.dilation[0], None, None)
            )
    return found


def module_name(model: nn.Module) -> str:
    """The registered name of a zoo model, else its class name (for messages and titles)."""
    return getattr(model, "model_name", None) or type(model).__name__


def one_thread(fn):
    """Run `fn` with one intra-op thread. Its tensors are stacks of tiny kernels: a parallel region
    saves microseconds of work and, on a loaded machine, costs tens of milliseconds of waiting for
    the other threads (measured: analysing mobilenet_v2_w035 took 12 s with 2 threads, 1 s with 1).
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch_threads(1):
            return fn(*args, **kwargs)

    return wrapper
