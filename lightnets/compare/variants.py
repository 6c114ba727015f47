"""Study networks that the registry does not hold: a registered MixConv kernel-study model
("MixConv: Mixed Depthwise Convolutional Kernels", Tan & Le, arXiv:1907.09595) at another width,
with the exponential channel split, or with dilated 3x3 kernels in place of large ones (§3
ablations, Fig. 8).

A trial is one `lightnets train --model NAME` run, so the name says everything about the network:

    {base}[_exp][_dil][_wNNN]     base: mobilenet_v1_k7, mobilenet_v2_mixk9, ... (registered)

    _exp    every MDConv splits its channels exponentially (the first, smallest kernel gets about
            half) instead of equally
    _dil    every depthwise kernel k > 3 becomes a 3x3 kernel with dilation (k - 1) / 2: the same
            receptive field with the MACs and parameters of a 3x3 kernel
    _wNNN   width multiplier NNN / 100 (the base builders take `width`)

The builder builds the base network, then rebuilds each depthwise MixConv2d it holds with the
new split or dilation (same channels, stride and padding) and initialises the new kernels as
`lightnets.models` does (He normal, fan-out). Only the trial processes (`lightnets train` started
by lightnets.compare.trials) register these names (`ensure_registered`), so importing or
calling lightnets.compare never changes `lightnets.list_models()`; the compare process builds
them with `create(name)`. To load such a run dir with other commands, call `ensure_registered`
first.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from torch import nn

from lightnets import rundir
from lightnets.errors import UnknownNameError
from lightnets.layers import MixConv2d
from lightnets.registry import (
    ModelCard,
    list_models,
    model_builder,
    model_card,
    register_model,
    resolve_name,
)

MIXCONV = "arXiv:1907.09595"
VARIANT = re.compile(
    r"(?P<base>mobilenet_v[12]_(?:mix)?k\d+)(?P<exp>_exp)?(?P<dil>_dil)?(?:_w(?P<w>\d{3}))?"
)


def variant_name(base: str, *, exp: bool = False, dil: bool = False, width: float | None = None):
    """The registered name of a study network (see the module docstring)."""
    suffix = ("_exp" if exp else "") + ("_dil" if dil else "")
    if width is not None and width != 1.0:
        suffix += f"_w{round(width * 100):03d}"
    return base + suffix


@dataclass(frozen=True)
class Variant:
    """A parsed study-network name."""

    name: str
    base: str
    width: float | None
    exp: bool
    dil: bool


def parse(name: str) -> Variant | None:
    """The Variant a name describes, or None for a name that is not a study-network name."""
    match = VARIANT.fullmatch(name)
    if match is None or match.group("base") == name:
        return None
    width = int(match.group("w")) / 100 if match.group("w") else None
    exp, dil = bool(match.group("exp")), bool(match.group("dil"))
    return Variant(name, match.group("base"), width, exp, dil)


def canonical(name: str) -> str:
    """The registered name of `name` (aliases resolved), or the variant name whose base is
    registered; UnknownNameError with close matches otherwise. Registers nothing."""
    variant = parse(name)
    if variant is None:
        return resolve_name(name)
    try:
        resolve_name(variant.base)
    except UnknownNameError:
        raise UnknownNameError(
            f"unknown model {name!r}: its base {variant.base!r} is not a registered "
            "kernel-study model"
        ) from None
    return name


def card(name: str) -> ModelCard:
    """The card of a registered model, or of a study network (its base's sizes, its own note)."""
    variant = parse(name)
    if variant is None:
        return model_card(name)
    base = model_card(variant.base)
    parts = [f"{variant.base} (MixConv kernel study)"]
    if variant.exp:
        parts.append("exponential channel split")
    if variant.dil:
        parts.append("3x3 kernels dilated to the same receptive field")
    if variant.width is not None:
        parts.append(f"width {variant.width:g}")
    return ModelCard(
        paper=MIXCONV,
        min_input=base.min_input,
        img_size=base.img_size,
        note="Study network of lightnets.compare: " + ", ".join(parts) + ".",
    )


def create(name: str, **kwargs) -> nn.Module:
    """`lightnets.create_model(name, **kwargs)`, for study networks too, without registering."""
    import lightnets

    variant = parse(name)
    if variant is None:
        return lightnets.create_model(name, **kwargs)
    model = build_variant(
        variant.base, width=variant.width, exp=variant.exp, dil=variant.dil, **kwargs
    )
    model.model_name, model.card = name, card(name)
    return model


def ensure_registered(name: str) -> str:
    """Register study network `name` in this process (trial processes, so that `lightnets
    train --model NAME` and its `--resume` find it); a no-op for other names. Returns `name`."""
    variant = parse(name)
    if variant is None or name in list_models():
        return name
    canonical(name)
    build = partial(
        build_variant, variant.base, width=variant.width, exp=variant.exp, dil=variant.dil
    )
    register_model(name=name, card=card(name))(build)
    return name


def trial_model(run_dir: str | Path, weights: bool = False) -> nn.Module:
    """The network a trial trained, built from its run dir's config.json and classes.json (the
    `lightnets train` rules: classes, input channels, stride-1 stem for images <= 64 px), at
    random init or with the run's weights (best/, else last/; the EMA's when kept)."""
    from lightnets.checkpoints import wants_small_input, weights_path

    run_dir = Path(run_dir)
    config = json.loads((run_dir / rundir.CONFIG).read_text())
    classes = json.loads((run_dir / rundir.CLASSES).read_text())
    kwargs = {"num_classes": config.get("num_classes") or len(classes)}
    kwargs["in_chans"] = config.get("in_chans") or 3
    if wants_small_input(config["img_size"], config.get("small_input")):
        kwargs["small_input"] = True
    for key in ("drop_rate", "drop_path_rate"):
        if config.get(key) is not None:
            kwargs[key] = config[key]
    if config.get("arch") is not None:  # mixnet_custom: the run's copy of its table
        kept = run_dir / "arch.toml"
        kwargs["arch"] = str(kept) if kept.is_file() else config["arch"]
    model = create(config["model"], **kwargs)
    if weights:
        from lightnets.weights import load_weights

        load_weights(model, weights_path(run_dir))
    return model.eval()


def build_variant(
    base: str, *, width: float | None = None, exp: bool = False, dil: bool = False, **kwargs
) -> nn.Module:
    """The registered `base` network (at `width`), its depthwise MixConv2d layers rebuilt with the
    exponential split (`exp`) and/or dilated 3x3 kernels (`dil`)."""
    if width is not None:
        kwargs["width"] = width
    model = model_builder(base)(**kwargs)
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, MixConv2d) and child.depthwise:
                setattr(parent, child_name, _rebuild(child, exp, dil))
    return model


def _rebuild(conv: MixConv2d, exp: bool, dil: bool) -> MixConv2d:
    kernel_sizes, dilation = conv.kernel_size, conv.dilation
    if dil:
        # a 3x3 kernel with dilation d spans 2d + 1 pixels: d = (k - 1) / 2 spans k (Fig. 8)
        dilation = tuple(d * (k - 1) // 2 for k, d in zip(kernel_sizes, dilation))
        kernel_sizes = (3,) * len(kernel_sizes)
    new = MixConv2d(
        conv.in_channels,
        conv.out_channels,
        kernel_sizes,
        conv.stride,
        dilation,
        split="exponential" if exp and len(kernel_sizes) > 1 else conv.split,
        depthwise=True,
        padding=conv.padding,
        bias=conv.convs[0].bias is not None,
        impl=conv.impl,
    )
    for m in new.convs:  # lightnets.models init_weights: He normal, fan-out
        fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    return new
