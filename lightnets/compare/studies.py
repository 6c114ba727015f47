"""The papers' ablations as predefined comparisons, each ending in the paper's claim and whether
this run supports it, contradicts it, or is inconclusive (lightnets.compare.stats: decided from
mean ± spread over seeds; inconclusive within noise or with one seed; exact for MACs/params).

    mixconv-kernel-size         MixConv (arXiv:1907.09595) Fig. 1/4: MobileNetV2, one kernel size
                                for every depthwise conv vs MDConv {3, .., k}
    mixconv-split               MixConv §4 ablation (Fig. 8): equal vs exponential channel split
    mixconv-dilation            MixConv §4 ablation (Fig. 8): large kernels vs dilated 3x3 kernels
    vgnet-fixed-kernels         VGNet (arXiv:2207.10318) Tables 2-4: learned (C) vs fixed Gaussian
                                downsampling (G) vs fixed edge kernels (F), equal parameter budgets
    vgnet-strided-kernels-blur  VGNet §1.1: do strided depthwise kernels become low-pass when
                                trained? (lightnets.inspect on the checkpoints vs random init)

Scales set width, input size, budget and seeds: `tiny` (CI: 1 epoch, 1 seed, 16 images per class,
seconds per trial), `small` (an afternoon on a CPU), `paper` (the papers' input size and budget;
a GPU cluster). Study networks the registry lacks (another width, split or dilation) are named and
built by lightnets.compare.variants.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lightnets.compare.claims import SCALES, Evidence, Scale
from lightnets.compare.mixconv_studies import (
    dilation_claims,
    dilation_models,
    kernel_size_claims,
    kernel_size_models,
    split_claims,
    split_models,
)
from lightnets.compare.stats import CONTRADICTS, INCONCLUSIVE, SUPPORTS
from lightnets.compare.vgnet_studies import (
    blur_claims,
    blur_models,
    fixed_kernel_claims,
    fixed_kernel_models,
    kernel_analysis,
)
from lightnets.errors import ConfigError, UnknownNameError
from lightnets.tables import Column, render

# ------------------------------------------------------------------------------ the registry


@dataclass(frozen=True)
class Study:
    name: str
    summary: str
    models: Callable[[Scale], list[str]]
    claims: Callable[..., list[dict]]
    mixconv: bool = False  # uses the MixConv recipe at paper scale
    kernels: bool = False  # analyses the trained kernels


STUDIES = {
    s.name: s
    for s in (
        Study("mixconv-kernel-size", "MobileNetV2: single kernels 3..k vs MDConv {3..k}",
              kernel_size_models, kernel_size_claims, mixconv=True),
        Study("mixconv-split", "MobileNetV1 MDConv: equal vs exponential channel split",
              split_models, split_claims, mixconv=True),
        Study("mixconv-dilation", "MobileNetV1 MDConv: large kernels vs dilated 3x3 kernels",
              dilation_models, dilation_claims, mixconv=True),
        Study("vgnet-fixed-kernels", "VGNet C (learned) vs G (Gaussian) vs F (edge kernels)",
              fixed_kernel_models, fixed_kernel_claims),
        Study("vgnet-strided-kernels-blur", "do strided depthwise kernels learn to blur?",
              blur_models, blur_claims, kernels=True),
    )
}  # fmt: skip


def get_study(name: str) -> Study:
    if name not in STUDIES:
        import difflib

        close = difflib.get_close_matches(name, STUDIES, n=2, cutoff=0.4)
        hint = (
            f"; did you mean {' or '.join(close)}?" if close else f"; one of {', '.join(STUDIES)}"
        )
        raise UnknownNameError(f"unknown study {name!r}{hint}")
    return STUDIES[name]


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise ConfigError(f"--scale must be one of {', '.join(SCALES)}, got {name!r}")
    return SCALES[name]


CLAIM_COLUMNS = (
    Column("verdict", "verdict"),
    Column("claim", "claim (source)"),
    Column("evidence", "evidence"),
)


def render_claims(claims: Sequence[dict], fmt: str = "table") -> str:
    rows = [{**c, "claim": f"{c['claim']} ({c['source']})"} for c in claims]
    return render(rows, CLAIM_COLUMNS, fmt, json_key="claims")


def study(
    name: str,
    data: str,
    *,
    scale: str = "tiny",
    output=None,
    epochs: int | None = None,
    seeds: int | None = None,
    img_size: int | None = None,
    images_per_class: int | None = None,
    recipe: str | None = None,
    **compare_kwargs,
) -> dict:
    """Run study `name` at `scale` (explicit arguments override the scale's) and judge its claims.

    Returns the comparison's results (see `compare`) with "study", "scale" and "claims" added
    (and "kernels" for the kernel analysis); also written to OUT/results.json and OUT/study.md.
    """
    from lightnets.compare.comparison import compare, write_results
    from lightnets.compare.spec import CompareSpec

    chosen, preset = get_study(name), get_scale(scale)
    per_class = images_per_class if images_per_class is not None else preset.images_per_class
    if data == "digits" or not (Path(data) / "train").is_dir():
        per_class = images_per_class  # a subset needs an image folder; CIFAR/digits run whole
    result = compare(
        chosen.models(preset),
        data,
        output=output or Path("runs") / f"study-{name}-{scale}",
        epochs=epochs or preset.epochs,
        seeds=seeds or preset.seeds,
        img_size=img_size or preset.img_size,
        images_per_class=per_class,
        recipe=recipe
        if recipe is not None
        else (preset.recipe_mixconv if chosen.mixconv else None),
        study=f"{name}@{scale}",
        **compare_kwargs,
    )
    ev = Evidence(result)
    extra = {"study": name, "scale": scale}
    if chosen.kernels:
        extra["kernels"] = kernel_analysis(result)
        extra["claims"] = chosen.claims(ev, preset, extra["kernels"])
    else:
        extra["claims"] = chosen.claims(ev, preset)
    out = Path(result["out"])
    spec = CompareSpec.from_dict(result["spec"])
    text = (
        f"# {name} ({scale})\n\n{chosen.summary}\n\n{render_claims(extra['claims'], 'markdown')}\n"
    )
    parts = (result["models"], result["trials"], result["failed"], result["notes"])
    return write_results(out, spec, *parts, extra, texts={"study.md": text})


__all__ = [
    "SCALES",
    "STUDIES",
    "Scale",
    "Study",
    "get_scale",
    "get_study",
    "render_claims",
    "study",
    "SUPPORTS",
    "CONTRADICTS",
    "INCONCLUSIVE",
]
