"""Parameters, MACs and all ops of a network, counted by torch.utils.flop_counter.

- MACs: multiply-accumulates of convolutions and matrix products (aten.convolution, mm, addmm, bmm)
  as counted by torch.utils.flop_counter, whose FLOPs are 2 x MACs. Biases are not counted. This is
  the papers' convention ("FLOPs" in MixNet/MnasNet, "mult-adds" in MobileNet).
- all ops: MACs plus one op per output element of every batch norm (at inference a scale and a
  shift, i.e. one multiply-add), activation and elementwise add/sub/mul/div (residual adds, SE
  gating, hand-written hard-swish), plus one op per input element of pooling and means (global
  pooling, SE squeeze). Data movement (split, concat, channel shuffle, padding, copies) counts zero.
- fixed: values of fixed kernels, i.e. buffers with at least 3 dimensions (the shape of a
  convolution weight). VGNet's Gaussian and edge kernels are cost (they are convolved), but they
  are not learned, so they are not parameters. Batch-norm statistics are 1-D and never count.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode
from torch.utils.flop_counter import flop_registry as MAC_OPS  # counted as 2 FLOPs per MAC

from lightnets._deprecation import renamed_kwargs

aten = torch.ops.aten


@dataclass(frozen=True)
class ParamCount:
    """Parameter counts: `trainable` (requires_grad), `frozen` (a Parameter with requires_grad
    off), `fixed` (fixed-kernel buffers: convolved, never learned)."""

    trainable: int
    frozen: int
    fixed: int

    @property
    def learned(self) -> int:
        """All nn.Parameters, trainable or frozen: what the papers call parameters."""
        return self.trainable + self.frozen


def is_fixed_kernel(buffer: Tensor) -> bool:
    """A buffer shaped like a convolution weight (C_out, C_in/groups, *kernel); BN stats are 1-D."""
    return buffer.ndim >= 3 and buffer.is_floating_point()


def count_params(model: nn.Module) -> ParamCount:
    """Trainable, frozen and fixed-kernel values of `model` (shared tensors counted once)."""
    trainable = frozen = 0
    for p in model.parameters():  # parameters() already skips duplicates
        if p.requires_grad:
            trainable += p.numel()
        else:
            frozen += p.numel()
    fixed = sum(b.numel() for b in model.buffers() if is_fixed_kernel(b))
    return ParamCount(trainable, frozen, fixed)


def _numel(shape) -> int:
    # ops such as batch norm and max pooling return a tuple; the first element is the result
    if isinstance(shape, (tuple, list)) and shape and not isinstance(shape[0], int):
        shape = shape[0]
    return math.prod(shape)


def _per_output(*args, out_shape=None, **kwargs) -> int:
    return _numel(out_shape)


def _per_input(x_shape, *args, out_shape=None, **kwargs) -> int:
    return _numel(x_shape)


# One op per output element: normalisation, activations, elementwise arithmetic. In-place variants
# are distinct aten packets (relu_ vs relu), so both are listed.
# fmt: off
_ELEMENTWISE_NAMES = (
    "_native_batch_norm_legit_no_training", "_native_batch_norm_legit", "native_batch_norm",
    "native_layer_norm", "native_group_norm",
    "relu", "relu_", "hardtanh", "hardtanh_", "silu", "silu_", "sigmoid", "sigmoid_",
    "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_", "_prelu_kernel", "gelu", "gelu_",
    "tanh", "tanh_", "leaky_relu", "leaky_relu_", "elu", "elu_", "mish", "mish_",
    "clamp", "clamp_", "clamp_min", "clamp_min_", "_softmax",
    "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_",
)
# One op per input element: every input value is read and summed or compared once.
_REDUCTION_NAMES = (
    "mean", "sum", "amax", "avg_pool2d", "max_pool2d", "max_pool2d_with_indices",
    "_adaptive_avg_pool2d", "adaptive_max_pool2d",
)
# fmt: on
ELEMENTWISE_OPS = {getattr(aten, n): _per_output for n in _ELEMENTWISE_NAMES} | {
    getattr(aten, n): _per_input for n in _REDUCTION_NAMES
}


@dataclass(frozen=True)
class MacCount:
    """Counts for one forward pass of the given input (per image when the batch is 1).

    `by_module` maps a submodule's qualified name ("" for the whole model) to (MACs, all ops).
    """

    macs: int
    all_ops: int
    by_module: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False, compare=False)


@renamed_kwargs(resolution="img_size")
def example_input(model: nn.Module, img_size: int, batch: int = 1, device="cpu") -> Tensor:
    """A random (batch, model.in_chans, img_size, img_size) image batch."""
    return torch.randn(batch, getattr(model, "in_chans", 3), img_size, img_size, device=device)


def count_macs(model: nn.Module, x: Tensor) -> MacCount:
    """MACs (convolutions and matrix products) and all ops of `model(x)`, in eval mode.

    One torch.utils.flop_counter pass counts both: its own formulas for MACs, and ELEMENTWISE_OPS
    added through `custom_mapping` for the rest. The model's train/eval mode is restored.
    """
    counter = FlopCounterMode(display=False, custom_mapping=ELEMENTWISE_OPS)
    with eval_mode(model), torch.no_grad(), counter:
        model(x)
    root = type(model).__name__
    by_module = {}
    for name, ops in counter.get_flop_counts().items():
        if name == "Global" or not (name == root or name.startswith(root + ".")):
            continue
        macs = sum(v for op, v in ops.items() if op in MAC_OPS) // 2
        other = sum(v for op, v in ops.items() if op not in MAC_OPS)
        by_module[name[len(root) + 1 :]] = (macs, macs + other)
    macs, all_ops = by_module.get("", (0, 0))
    return MacCount(macs, all_ops, by_module)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run in eval mode, then restore the model's train/eval mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
