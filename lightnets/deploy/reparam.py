"""Inference-time re-parameterization: the same function as a trained model, with fewer ops.

Three exact rewrites, each a closed-form change of weights (no retraining, no calibration):

1. Mixed depthwise convs (MixConv, arXiv:1907.09595) become ONE depthwise conv: every group's
   kernel is zero-padded, centred, to the largest size. A centred zero border leaves each output
   unchanged for symmetric padding, and also for TF SAME padding (the extra (K - k) / 2 on each
   side is exactly what TF adds for the bigger kernel; see MixConv2d.merge_blocker for the one
   exception). MixNet's split 1x1 convs with equal splits become one `Conv2d(groups=g)`.
2. BatchNorm is folded into the conv (or linear layer) that feeds it: W' = W * g / s,
   b' = beta + (b - mean) * g / s with s = sqrt(var + eps); per channel, so it also works across
   the groups of a split conv. A BN that feeds a padding-free conv is folded forward into it
   (VGNet's conv -> act -> BN order leaves BNs there).
3. Identities go: Dropout and DropPath (no-ops in eval), folded BNs, and `nn.Identity` children of
   named `nn.Sequential`s such as ConvNormAct.

The result is a deep copy in eval mode; the trained model is never touched. It keeps its class and
API (forward_features, card, ...) but is inference-only: `train()` raises.
"""

from __future__ import annotations

import copy
import types
import warnings
from dataclasses import dataclass, field

import torch
import torch.fx
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from lightnets.layers.drop import DropPath
from lightnets.layers.fixed import FixedDepthwiseConv2d
from lightnets.layers.mixconv import MixConv2d
from lightnets.layers.padding import TfSameConv2d

# modules a BN can be folded into (as the producer of its input)
PRODUCERS = (nn.Conv2d, nn.Linear, MixConv2d, FixedDepthwiseConv2d)


@dataclass
class ReparamReport:
    """What `reparameterize` changed; kept on the result as `model.reparam_report`."""

    merged_convs: list[str] = field(default_factory=list)  # MixConv2d of 2+ groups -> one conv
    unwrapped: list[str] = field(default_factory=list)  # 1-group MixConv2d -> its conv: no merge
    folded_norms: list[str] = field(default_factory=list)  # BN folded into a conv
    kept_norms: list[str] = field(default_factory=list)  # BN with no foldable neighbour
    kept_split: list[str] = field(default_factory=list)  # MixConv2d left as split convs
    removed: int = 0  # identity modules dropped

    def summary(self) -> str:
        return (
            f"merged {len(self.merged_convs)} mixed convs, folded {len(self.folded_norms)} "
            f"norms, kept {len(self.kept_norms)} norms and {len(self.kept_split)} split convs, "
            f"removed {self.removed} identities"
        )


def reparameterize(model: nn.Module, *, merge_unequal: bool = False) -> nn.Module:
    """An eval-only deep copy of `model` computing the same function with merged convs and no BN.

    Args:
        merge_unequal: also merge grouped (1x1) MixConv2d with unequal splits, into one dense conv
            with a block-diagonal kernel. Off by default: it multiplies that layer's MACs by the
            number of groups, which costs more than the split it removes.
    """
    fused = copy.deepcopy(model).eval()
    report = ReparamReport()
    after, before = _norm_pairs(fused)
    with torch.no_grad():
        for name, module in list(fused.named_modules()):
            if isinstance(module, MixConv2d):
                merged = merge_mixconv(module, merge_unequal)
                if merged is module:
                    report.kept_split.append(name)
                else:
                    _set_submodule(fused, name, merged)
                    merges = len(module.convs) > 1
                    (report.merged_convs if merges else report.unwrapped).append(name)
        folded = set()
        for producer_name, norm_name in after:
            producer = fused.get_submodule(producer_name)
            _set_submodule(
                fused, producer_name, fold_norm_into(producer, fused.get_submodule(norm_name))
            )
            _set_submodule(fused, norm_name, nn.Identity())
            folded.add(norm_name)
        for norm_name, consumer_name in before:
            norm, consumer = fused.get_submodule(norm_name), fused.get_submodule(consumer_name)
            _set_submodule(fused, consumer_name, fold_norm_forward(norm, consumer))
            _set_submodule(fused, norm_name, nn.Identity())
            folded.add(norm_name)
    report.folded_norms = sorted(folded)
    report.kept_norms = [n for n, m in fused.named_modules() if isinstance(m, _BatchNorm)]
    report.removed = _remove_identities(fused)
    fused.requires_grad_(False)
    fused.reparam_report = report
    fused.train = types.MethodType(_eval_only_train, fused)
    return fused


def _eval_only_train(self: nn.Module, mode: bool = True) -> nn.Module:
    if mode:
        raise RuntimeError(
            "this model was re-parameterized for inference; train the original model instead"
        )
    return nn.Module.train(self, False)


# ---------------------------------------------------------------------- rewrites of one module


def merge_mixconv(mix: MixConv2d, merge_unequal: bool = False) -> nn.Module:
    """One nn.Conv2d (TfSameConv2d for TF padding at stride 2) equal to `mix`, or `mix` itself
    when that is not exact or (unequal 1x1 splits, unless `merge_unequal`) not worth it."""
    if mix.merge_blocker():
        return mix
    if not mix.depthwise and mix.merged_groups == 1 and len(mix.convs) > 1 and not merge_unequal:
        return mix
    size, dilation, groups = mix.merged_kernel_size, mix.merged_dilation, mix.merged_groups
    bias = mix.merged_bias()
    if mix.padding == "tf_same" and mix.stride > 1:
        conv = TfSameConv2d(
            mix.in_channels,
            mix.out_channels,
            size,
            mix.stride,
            0,
            dilation,
            groups,
            bias is not None,
        )
    else:
        pad = dilation * (size - 1) // 2
        conv = nn.Conv2d(
            mix.in_channels,
            mix.out_channels,
            size,
            mix.stride,
            pad,
            dilation,
            groups,
            bias is not None,
        )
    weight = mix.merged_weight()
    conv = conv.to(device=weight.device, dtype=weight.dtype)
    conv.weight.copy_(weight)
    if bias is not None:
        conv.bias.copy_(bias)
    return conv


def _norm_scale_shift(norm: _BatchNorm) -> tuple[Tensor, Tensor]:
    """BN in eval as y = x * scale + shift, per channel, computed in float64."""
    std = torch.sqrt(norm.running_var.double() + norm.eps)
    gamma = norm.weight.double() if norm.weight is not None else torch.ones_like(std)
    beta = norm.bias.double() if norm.bias is not None else torch.zeros_like(std)
    scale = gamma / std
    return scale, beta - norm.running_mean.double() * scale


def _with_bias(layer: nn.Conv2d | nn.Linear) -> None:
    if layer.bias is None:
        out = layer.weight.shape[0]
        layer.bias = nn.Parameter(layer.weight.new_zeros(out), requires_grad=False)


def fold_norm_into(producer: nn.Module, norm: _BatchNorm) -> nn.Module:
    """`producer` followed by `norm`, as one layer (the producer, updated, or its replacement)."""
    scale, shift = _norm_scale_shift(norm)
    if isinstance(producer, FixedDepthwiseConv2d):  # fixed buffer -> a plain depthwise conv
        k = producer.weight.shape[-1]
        conv = nn.Conv2d(
            producer.channels, producer.channels, k, producer.stride, producer.padding,
            groups=producer.channels, bias=False,
        ).to(producer.weight)  # fmt: skip
        conv.weight.copy_(producer.weight)
        producer = conv
    if isinstance(producer, MixConv2d):  # left split: fold each group's slice of the BN
        start = 0
        for conv, size in zip(producer.convs, producer.out_splits):
            _scale_layer(conv, scale[start : start + size], shift[start : start + size])
            start += size
        return producer
    _scale_layer(producer, scale, shift)
    return producer


def _scale_layer(layer: nn.Conv2d | nn.Linear, scale: Tensor, shift: Tensor) -> None:
    _with_bias(layer)
    w = layer.weight.double()
    layer.weight.copy_(w * scale.view(-1, *([1] * (w.ndim - 1))))
    layer.bias.copy_(layer.bias.double() * scale + shift)


def fold_norm_forward(norm: _BatchNorm, consumer: nn.Conv2d | nn.Linear) -> nn.Module:
    """`norm` followed by a padding-free `consumer`, as the consumer with new weights:
    W' = W * scale over input channels, b' = b + W . shift (exact only without zero padding)."""
    scale, shift = _norm_scale_shift(norm)
    _with_bias(consumer)
    w = consumer.weight.double()
    groups = getattr(consumer, "groups", 1)
    out, per_group = w.shape[0], w.shape[1]
    # input channel of weight [o, i] is (o // (out / groups)) * per_group + i
    group_of_out = torch.arange(out) // (out // groups)
    index = group_of_out[:, None] * per_group + torch.arange(per_group)[None, :]
    view = (out, per_group) + (1,) * (w.ndim - 2)
    s, t = scale[index].view(view), shift[index].view(view)
    consumer.bias.copy_(consumer.bias.double() + (w * t).flatten(1).sum(1))
    consumer.weight.copy_(w * s)
    return consumer


# ---------------------------------------------------------------------- finding the pairs


class _Tracer(torch.fx.Tracer):
    """Stops at convs, norms and MixConv2d, so that BN inputs are the modules that produce them."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (*PRODUCERS, _BatchNorm)) or super().is_leaf_module(m, qualname)


def _norm_pairs(model: nn.Module) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(producer, norm) pairs where the norm is the producer's only consumer, and
    (norm, consumer) pairs where a padding-free conv/linear is the norm's only consumer."""
    try:
        graph = _Tracer().trace(model)
    except Exception as err:  # untraceable custom forward: the Sequential pattern still works
        warnings.warn(
            f"torch.fx cannot trace {type(model).__name__} ({type(err).__name__}); folding BN "
            "only where it follows a conv inside an nn.Sequential",
            stacklevel=3,
        )
        return _sequential_pairs(model), []
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1

    def module_of(node) -> nn.Module | None:
        if isinstance(node, torch.fx.Node) and node.op == "call_module":
            if calls[node.target] == 1:  # a shared module cannot take one site's folding
                return modules[node.target]
        return None

    after, before, used = [], [], set()
    for node in graph.nodes:
        norm = module_of(node)
        if not isinstance(norm, _BatchNorm) or not _foldable_norm(norm) or len(node.args) != 1:
            continue
        producer_node = node.args[0]
        producer = module_of(producer_node)
        if (
            isinstance(producer, PRODUCERS)
            and len(producer_node.users) == 1
            and _channels_out(producer) == norm.num_features
            and producer_node.target not in used
        ):
            after.append((producer_node.target, node.target))
            used.add(producer_node.target)
            continue
        users = list(node.users)
        consumer = module_of(users[0]) if len(users) == 1 else None
        if (
            isinstance(consumer, (nn.Conv2d, nn.Linear))
            and _padding_free(consumer)
            and _channels_in(consumer) == norm.num_features
            and users[0].args[0] is node
            and users[0].target not in used
        ):
            before.append((node.target, users[0].target))
            used.add(users[0].target)
    return after, before


def _sequential_pairs(model: nn.Module) -> list[tuple[str, str]]:
    pairs = []
    for name, seq in model.named_modules():
        if type(seq).forward is not nn.Sequential.forward:
            continue
        items = list(seq.named_children())
        for (a, producer), (b, norm) in zip(items, items[1:]):
            if (
                isinstance(producer, PRODUCERS)
                and isinstance(norm, _BatchNorm)
                and _foldable_norm(norm)
                and _channels_out(producer) == norm.num_features
            ):
                prefix = f"{name}." if name else ""
                pairs.append((prefix + a, prefix + b))
    return pairs


def _foldable_norm(norm: _BatchNorm) -> bool:
    return norm.track_running_stats and norm.running_mean is not None


def _channels_out(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, FixedDepthwiseConv2d):
        return module.channels
    return module.out_channels


def _channels_in(module: nn.Module) -> int:
    return module.in_features if isinstance(module, nn.Linear) else module.in_channels


def _padding_free(layer: nn.Module) -> bool:
    if isinstance(layer, nn.Linear):
        return True
    if type(layer) is not nn.Conv2d or layer.padding_mode != "zeros":
        return False
    return layer.padding == "valid" or all(p == 0 for p in layer.padding)


# ---------------------------------------------------------------------- module surgery


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    if getattr(parent, child) is not module:
        setattr(parent, child, module)


def _remove_identities(model: nn.Module) -> int:
    """Dropout/DropPath -> Identity; drop Identity children of Sequentials with named children
    (numbered ones keep them, so that indexing such as stages[i] keeps its meaning)."""
    removed = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, (nn.Dropout, DropPath)) and name:
            _set_submodule(model, name, nn.Identity())
            removed += 1
    for seq in model.modules():
        if type(seq).forward is not nn.Sequential.forward:
            continue
        names = [n for n, m in seq.named_children() if isinstance(m, nn.Identity)]
        if any(n.isdigit() for n in seq._modules) or len(names) == len(seq):
            continue
        for n in names:
            delattr(seq, n)
            removed += 1
    return removed
