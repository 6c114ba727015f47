"""MixConv's ablations (arXiv:1907.09595): kernel size (Fig. 1/4), channel split and dilation
(§4, Fig. 8): the networks each study trains and the claims it judges."""

from __future__ import annotations

from lightnets.compare import stats
from lightnets.compare.claims import (
    MIXCONV,
    NOISE_NOTE,
    Evidence,
    Scale,
    _combined,
    _fewer,
    _higher,
    claim,
)
from lightnets.compare.stats import INCONCLUSIVE
from lightnets.compare.variants import variant_name

# ------------------------------------------------------------------------------ MixConv


def _kernel_models(scale: Scale) -> tuple[list[str], list[str]]:
    sizes = scale.kernel_sizes
    singles = [variant_name(f"mobilenet_v2_k{k}", width=scale.width) for k in sizes]
    mixed = [variant_name(f"mobilenet_v2_mixk{k}", width=scale.width) for k in sizes[1:]]
    return singles, mixed


def kernel_size_models(scale: Scale) -> list[str]:
    singles, mixed = _kernel_models(scale)
    return singles + mixed


def kernel_size_claims(ev: Evidence, scale: Scale) -> list[dict]:
    singles, mixed = _kernel_models(scale)
    singles = [m for m in singles if ev.has(m)]
    mixed = [m for m in mixed if ev.has(m)]
    out = []
    text = "Accuracy first rises with the depthwise kernel size, then falls for the largest kernels"
    if len(singles) >= 3:
        verdict, best = stats.peak_verdict([ev.acc(m) for m in singles])
        shown = ", ".join(f"{m} {ev.acc(m).text()}" for m in singles)
        if any(ev.near_chance(m) for m in singles):
            verdict, shown = INCONCLUSIVE, f"{shown}; near chance ({ev.chance:.1f}%)"
        out.append(
            claim(
                text,
                f"{MIXCONV} Fig. 1, Fig. 4",
                verdict,
                f"highest mean: {singles[best]}; {shown}",
            )
        )
    else:
        out.append(claim(text, f"{MIXCONV} Fig. 1, Fig. 4", INCONCLUSIVE, "fewer than 3 kernels"))
    text = "MDConv {3, .., k} is more accurate than the best single kernel, with fewer MACs"
    if singles and mixed:
        best_single = max(singles, key=lambda m: ev.acc(m).mean)
        best_mixed = max(mixed, key=lambda m: ev.acc(m).mean)
        accuracy, macs = _higher(ev, best_mixed, best_single), _fewer(ev, best_mixed, best_single)
        if accuracy[0] == INCONCLUSIVE:  # the pair was picked by means within noise: its MACs
            macs = (INCONCLUSIVE, macs[1])  # compare two arbitrary networks, deciding nothing
        out.append(_combined(text, f"{MIXCONV} Fig. 4", [accuracy, macs]))
    else:
        out.append(claim(text, f"{MIXCONV} Fig. 4", INCONCLUSIVE, "no finished trials"))
    return out


def _pairs(scale: Scale, min_groups: int = 2, **variant) -> list[tuple[str, str]]:
    """(plain, variant) MobileNetV1 MDConv networks for each kernel set {3, .., k} of at least
    `min_groups` kernel sizes."""
    pairs = []
    for k in scale.kernel_sizes[1:]:
        if (k - 1) // 2 < min_groups:
            continue
        base = f"mobilenet_v1_mixk{k}"
        pairs.append(
            (
                variant_name(base, width=scale.width),
                variant_name(base, width=scale.width, **variant),
            )
        )
    return pairs


# with two kernel sizes the exponential split is the equal one (half the channels each): the
# study starts at three, {3, 5, 7}
SPLIT_MIN_GROUPS = 3


def split_models(scale: Scale) -> list[str]:
    return [m for pair in _pairs(scale, SPLIT_MIN_GROUPS, exp=True) for m in pair]


def split_claims(ev: Evidence, scale: Scale) -> list[dict]:
    pairs = _pairs(scale, SPLIT_MIN_GROUPS, exp=True)
    source = f"{MIXCONV} §4 channel partition, Fig. 8"
    return [
        _combined(
            "On MobileNetV1 the exponential channel split is slightly more accurate than the "
            "equal split",
            source,
            [_higher(ev, exp, equal) for equal, exp in pairs],
            NOISE_NOTE,
        ),
        _combined(
            "The exponential split needs fewer parameters and MACs (small kernels get more "
            "channels)",
            source,
            [
                r
                for equal, exp in pairs
                for r in (_fewer(ev, exp, equal, "params_m"), _fewer(ev, exp, equal))
            ],
        ),
    ]


def dilation_models(scale: Scale) -> list[str]:
    return [m for pair in _pairs(scale, dil=True) for m in pair]


def dilation_claims(ev: Evidence, scale: Scale) -> list[dict]:
    pairs = _pairs(scale, dil=True)
    source = f"{MIXCONV} §4 dilated convolution, Fig. 8"
    large, dilated = pairs[-1]
    return [
        _combined(
            "Dilated 3x3 kernels are less accurate than large kernels of the same receptive "
            "field, the more so the larger the kernel",
            source,
            [_higher(ev, large, dilated)],
        ),
        _combined(
            "Dilated 3x3 kernels cost fewer MACs than the large kernels they replace",
            source,
            [_fewer(ev, dil, big) for big, dil in pairs],
        ),
    ]
