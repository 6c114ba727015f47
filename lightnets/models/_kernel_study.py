"""The MixConv paper's kernel study (Fig. 4): one network family, every depthwise kernel replaced.

MobileNetV1 and MobileNetV2 each register 12 points: one kernel size k in {3, ..., 13} for every
depthwise conv (`_k{k}`), or MDConv with kernels {3, ..., k} (`_mixk{k}`). Each family keeps its
own table of measured sizes; the registration and the card are the same for both, so they live here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from lightnets.cards import ModelCard, register_model

MIXCONV = "arXiv:1907.09595"


@dataclass(frozen=True)
class KernelVariant:
    """One point of the kernel study and its measured size (models.json, timm builder)."""

    kernel_sizes: tuple[int, ...]
    params_m: float
    macs_m: float


def register_kernel_study(
    prefix: str, family: str, variants: dict[str, KernelVariant], build: Callable
) -> None:
    """Register `{prefix}_{suffix}` for every variant: `build(kernel_sizes=...)` with its card."""
    for suffix, variant in variants.items():
        kernels = ",".join(map(str, variant.kernel_sizes))
        card = ModelCard(
            paper=MIXCONV,
            params_m=variant.params_m,
            ref_macs_m=variant.macs_m,
            ref_source=f"models.json: {family} dw kernels {{{kernels}}} [measured] (timm builder)",
            note=(
                f"MixConv study network (Fig. 4): {family} with every depthwise kernel set to "
                f"({kernels}), channels split equally, remainder to the first group. The paper "
                "plots accuracy only; params_m is the measured count, not a paper figure."
            ),
        )
        register_model(name=f"{prefix}_{suffix}", card=card)(
            partial(build, kernel_sizes=variant.kernel_sizes)
        )
