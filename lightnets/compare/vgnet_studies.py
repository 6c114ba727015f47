"""VGNet's claims (arXiv:2207.10318): fixed Gaussian / edge kernels at equal budgets (Tables
2-4), and strided depthwise kernels that turn low-pass when trained (§1.1)."""

from __future__ import annotations

from collections.abc import Sequence

from lightnets.compare import stats
from lightnets.compare.claims import NOISE_NOTE, VGNET, Evidence, Scale, _combined, _higher
from lightnets.compare.stats import INCONCLUSIVE
from lightnets.compare.variants import variant_name
from lightnets.errors import ConfigError

# ------------------------------------------------------------------------------ VGNet


def fixed_kernel_models(scale: Scale) -> list[str]:
    models = [
        "vgnet_c_1_0mp",
        "vgnet_g_1_0mp",
        "vgnet_g_1_5mp",
        "vgnet_f_1_5mp",
        "vgnet_f_1_5mp_gauss",
    ]
    return [*models, "vgnet_c_1_5mp"] if scale.every_model else models


def _equal_budget(ev: Evidence, a: str, b: str, tolerance: float = 0.02) -> tuple[str, str]:
    x, y = ev.cost(a, "params_m"), ev.cost(b, "params_m")
    if x is None or y is None:
        return INCONCLUSIVE, f"no params for {a} or {b}"
    ok = abs(x - y) <= tolerance * max(x, y)
    return stats.exact_verdict(ok), f"{a} {x:.3f} vs {b} {y:.3f} M params"


def fixed_kernel_claims(ev: Evidence, scale: Scale) -> list[dict]:
    source = f"{VGNET} Tables 2-4"
    pairs = [("vgnet_g_1_0mp", "vgnet_c_1_0mp"), ("vgnet_g_1_5mp", "vgnet_c_1_5mp")]
    pairs = [p for p in pairs if ev.has(*p)]
    out = [
        _combined(
            "Fixed Gaussian downsampling (VGNetG) is at least as accurate as learned depthwise "
            "downsampling (VGNetC) at the same parameter budget",
            source,
            [r for g, c in pairs for r in (_equal_budget(ev, g, c), _higher(ev, g, c))],
            NOISE_NOTE,
        ),
        _combined(
            "Fixed edge kernels in the half-identity blocks (VGNetF) cost accuracy against the "
            "same network with learned kernels (paper: -3.2 points at 1.5 MP)",
            source,
            [
                _equal_budget(ev, "vgnet_f_1_5mp", "vgnet_g_1_5mp"),
                _higher(ev, "vgnet_g_1_5mp", "vgnet_f_1_5mp"),
            ],
        ),
        _combined(
            "Mixing Gaussian kernels into the fixed edge bank costs less (paper: -1.4 instead of "
            "-3.2 points)",
            source,
            [_higher(ev, "vgnet_f_1_5mp_gauss", "vgnet_f_1_5mp")],
        ),
    ]
    return out


def blur_models(scale: Scale) -> list[str]:
    models = ["vgnet_c_1_0mp"]
    if scale.every_model:
        models.append(variant_name("mobilenet_v2_k3", width=scale.width))
    return models


def strided_kernels(model) -> tuple[float, float, int]:
    """(mean low-frequency energy share, blur share, kernels) of the learned strided depthwise
    kernels of `model` (lightnets.inspect: f < 1/4 cycle/pixel, the band a stride 2 keeps)."""
    from lightnets.inspect import classify_kernels, collect_depthwise_kernels, low_frequency_energy

    records = [r for r in collect_depthwise_kernels(model).values() if r.stride > 1 and not r.fixed]
    if not records:
        raise ConfigError("the model has no learned strided depthwise kernel")
    energy, blur, count = 0.0, 0.0, 0
    for r in records:
        energy += float(low_frequency_energy(r.weight).nansum())
        blur += classify_kernels(r.weight).classes.count("gaussian")
        count += r.channels
    return energy / count, blur / count, count


def kernel_analysis(result: dict) -> list[dict]:
    """Per finished trial: strided-kernel low-pass measures of the trained checkpoint and of a
    random init of the same network (seeded with the trial's seed)."""
    import torch

    from lightnets.compare.variants import trial_model

    rows = []
    for t in result["trials"]:
        trained = trial_model(t["run_dir"], weights=True)
        torch.manual_seed(t["seed"])
        init = trial_model(t["run_dir"])
        lfe_t, blur_t, n = strided_kernels(trained)
        lfe_i, blur_i, _ = strided_kernels(init)
        rows.append(
            {
                "model": t["model"],
                "seed": t["seed"],
                "kernels": n,
                "lfe_trained": lfe_t,
                "lfe_init": lfe_i,
                "blur_trained": blur_t,
                "blur_init": blur_i,
            }
        )
    return rows


def blur_claims(ev: Evidence, scale: Scale, analysis: Sequence[dict]) -> list[dict]:
    out = []
    for model in dict.fromkeys(r["model"] for r in analysis):
        mine = [r for r in analysis if r["model"] == model]
        parts = []
        for key, what in (("lfe", "low-frequency energy share"), ("blur", "blur share")):
            trained = stats.summarize([r[f"{key}_trained"] for r in mine])
            init = stats.summarize([r[f"{key}_init"] for r in mine])
            verdict, d = stats.higher_verdict(trained, init)
            parts.append(
                (
                    verdict,
                    f"{what} trained {trained.text('.3f')} vs init {init.text('.3f')}: {d.text()}",
                )
            )
        out.append(
            _combined(
                f"{model}: learned strided depthwise kernels become low-pass (blur-like)",
                f"{VGNET} §1.1",
                parts,
                "white noise scores 0.25 low-frequency energy",
            )
        )
    return out
