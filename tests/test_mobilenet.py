"""MobileNetV1/V2/V3 and the MixConv kernel study: exact against timm, closed-form counts, grid."""

from __future__ import annotations

import json
import zlib

import pytest
import torch
from conftest import FIXTURES
from torch import nn

import lightnets
from lightnets.layers import MixConv2d

# ---------------------------------------------------------------- timm equivalence (own fill rule)


def timm_fill(keys: list) -> dict[str, torch.Tensor]:
    """Deterministic values per timm key, seeded by the key's CRC32 (rule of reference/timm)."""
    state = {}
    for key, shape in keys:
        gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        shape = tuple(shape)
        if key.endswith("num_batches_tracked"):
            value = torch.zeros(shape, dtype=torch.long)
        elif key.endswith("running_var"):
            value = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith("running_mean"):
            value = torch.randn(shape, generator=gen) * 0.1
        elif len(shape) == 1 and key.endswith("weight"):
            value = torch.rand(shape, generator=gen) * 0.5 + 0.5
        elif len(shape) == 1:
            value = torch.randn(shape, generator=gen) * 0.1
        else:
            fan_in = int(torch.tensor(shape[1:]).prod())
            value = torch.randn(shape, generator=gen) / fan_in**0.5
        state[key] = value
    return state


TIMM = ["mobilenetv1_100", "mobilenetv2_100", "mobilenetv3_large_100", "mobilenetv3_small_100"]


@pytest.mark.parametrize("timm_name", TIMM)
def test_timm_weights_reproduce_timm_logits(timm_name):
    ref = json.loads((FIXTURES / "timm" / f"{timm_name}.json").read_text())
    model = lightnets.create_model(timm_name).eval()
    assert model.card.timm_name == timm_name
    state = lightnets.convert_timm_state_dict(timm_name, timm_fill(ref["keys"]))
    model.load_state_dict(state, strict=True)
    x = torch.randn((2, 3, 224, 224), generator=torch.Generator().manual_seed(20191907))
    with torch.no_grad():
        logits = model(x)
    expected = torch.tensor(ref["logits"])
    assert ((logits - expected).norm() / expected.norm()).item() < 1e-4


# ------------------------------------------- closed-form parameter and MAC counts (no lightnets)


def _round8(v: float) -> int:
    r = max(8, int(v + 4) // 8 * 8)
    return r + 8 if r < 0.9 * v else r


def _dw_weights(channels: int, kernels: tuple[int, ...]) -> int:
    g = len(kernels)
    sizes = [channels // g] * g
    sizes[0] += channels - sum(sizes)
    return sum(k * k * c for c, k in zip(sizes, kernels))


def closed_form(rows, width, kernels, head=None, size=224, classes=1000):
    """(params, MACs in millions) of stem -> rows (t, c, n, s) -> [1x1 head] -> classifier.

    A row with t=None is MobileNetV1's depthwise separable block (ReLU after both convs, which
    costs nothing); otherwise an inverted residual whose expansion conv exists when t*c_in != c_in.
    Every conv is followed by BN (2 parameters per channel); MACs = weights x output pixels.
    """
    c, h = _round8(32 * width), -(-size // 2)
    params, macs = 27 * c + 2 * c, 27 * c * h * h
    for t, out, n, s in rows:
        for i in range(n):
            o = _round8(out * width)
            mid = c if t is None else _round8(c * t)
            if mid != c:
                params += c * mid + 2 * mid
                macs += c * mid * h * h
            h = -(-h // (s if i == 0 else 1))
            params += _dw_weights(mid, kernels) + 2 * mid + mid * o + 2 * o
            macs += (_dw_weights(mid, kernels) + mid * o) * h * h
            c = o
    if head:
        params += c * head + 2 * head
        macs += c * head * h * h
        c = head
    return params + c * classes + classes, (macs + c * classes) / 1e6


# the papers' tables, written out again here (Table 1 of 1704.04861, Table 2 of 1801.04381)
V1_ROWS = [
    (None, 64, 1, 1),
    (None, 128, 2, 2),
    (None, 256, 2, 2),
    (None, 512, 6, 2),
    (None, 1024, 2, 2),
]
V2_ROWS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]
WIDTHS = {
    "mobilenet_v1_w025": ("v1", 0.25),
    "mobilenet_v1_w050": ("v1", 0.5),
    "mobilenet_v1_w075": ("v1", 0.75),
    "mobilenet_v1_w100": ("v1", 1.0),
    "mobilenet_v2_w035": ("v2", 0.35),
    "mobilenet_v2_w050": ("v2", 0.5),
    "mobilenet_v2_w075": ("v2", 0.75),
    "mobilenet_v2_w100": ("v2", 1.0),
    "mobilenet_v2_w140": ("v2", 1.4),
}


def _closed_form_for(version: str, width: float, kernels=(3,)):
    if version == "v1":
        return closed_form(V1_ROWS, width, kernels)
    return closed_form(V2_ROWS, width, kernels, head=_round8(1280 * width) if width > 1 else 1280)


@pytest.mark.parametrize("name", sorted(WIDTHS))
def test_cards_match_the_closed_form_count(name):
    params, macs = _closed_form_for(*WIDTHS[name])
    card = lightnets.model_card(name)
    assert card.ref_params == params
    assert card.ref_macs_m == pytest.approx(macs, abs=0.01)


@pytest.mark.parametrize("name", ["mobilenet_v1_w025", "mobilenet_v2_w035", "mobilenet_v2_w140"])
def test_width_variants_have_the_closed_form_parameter_count(name):
    # test_models checks every card; this checks the formula itself on a model at the extremes
    model = lightnets.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == _closed_form_for(*WIDTHS[name])[0]


# ------------------------------------------------------------------- the MixConv kernel study

STUDY = {
    f"mobilenet_{v}_{s}": (v, k)
    for v in ("v1", "v2")
    for s, k in [(f"k{k}", (k,)) for k in (3, 5, 7, 9, 11, 13)]
    + [(f"mixk{k}", tuple(range(3, k + 1, 2))) for k in (3, 5, 7, 9, 11, 13)]
}


def test_the_study_grid_is_complete():
    assert sorted(STUDY) == lightnets.list_models("mobilenet_v[12]_*k*")
    assert len(STUDY) == 24


@pytest.mark.parametrize("name", sorted(STUDY))
def test_study_network_uses_the_kernels_everywhere(name):
    version, kernels = STUDY[name]
    model = lightnets.create_model(name)
    depthwise = [m for m in model.modules() if isinstance(m, MixConv2d) and m.depthwise]
    assert len(depthwise) == (13 if version == "v1" else 17)
    assert all(m.kernel_size == kernels for m in depthwise)
    plain = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups == 1]
    assert all(m.kernel_size in ((1, 1), (3, 3)) for m in plain)  # 1x1 convs and the 3x3 stem
    params, macs = _closed_form_for(version, 1.0, kernels)
    # the card's measured figures (timm builder, 4 decimals) agree with the closed form
    assert model.card.params_m == pytest.approx(params / 1e6, abs=5e-5)
    assert model.card.ref_macs_m == pytest.approx(macs, abs=0.005)
    assert sum(p.numel() for p in model.parameters()) == params


def test_kernel_sizes_factory_takes_any_kernels_and_widths():
    from lightnets.models.mobilenet_v2 import MOBILENET_V2, mobilenet_v2

    model = mobilenet_v2(width=0.5, kernel_sizes=(3, 7), num_classes=5)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 5)
    assert all(row.k == (3,) for row in MOBILENET_V2)  # the table itself is untouched
    with pytest.raises(ValueError, match="bad row"):
        mobilenet_v2(kernel_sizes=(4,))


# ------------------------------------------------------------------------- MobileNetV3 details


def test_v3_head_pools_before_its_biased_conv():
    model = lightnets.create_model("mobilenet_v3_small_w100", num_classes=3).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        f = model.forward_features(x)
        assert f.shape == (2, 576, 2, 2)
        conv = model.head.conv
        assert conv.bias is not None and isinstance(model.head.bn, nn.Identity)
        pooled = f.mean((2, 3))
        hidden = nn.functional.hardswish(pooled @ conv.weight.flatten(1).T + conv.bias)
        expected = model.classifier(hidden)
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)


def test_v3_se_width_comes_from_the_expanded_width():
    model = lightnets.create_model("mobilenet_v3_large_w100")
    reduced = [
        b.se.reduce.out_channels
        for stage in model.stages
        for b in stage
        if hasattr(b, "se") and not isinstance(b.se, nn.Identity)
    ]
    assert reduced == [24, 32, 32, 120, 168, 168, 240, 240]  # make_divisible(exp / 4, 8)


def test_v3_custom_table_reports_the_strides_of_every_row():
    from lightnets.models._common import FeatureExtractor
    from lightnets.models.mobilenet_v3 import BneckRow, MobileNetV3

    # stage 0 (width 16) halves the map in its second row, stage 1 (24) in its first
    table = (
        BneckRow(1, 16, 1, 16, (3,)),
        BneckRow(1, 16, 2, 64, (3,)),
        BneckRow(1, 24, 2, 72, (3,)),
        BneckRow(1, 24, 1, 72, (3,)),
    )
    model = MobileNetV3(table, last_channels=96, head_channels=128, num_classes=5).eval()
    assert [i["reduction"] for i in model.feature_info] == [4, 8, 8]
    assert model.min_input == 8
    backbone = FeatureExtractor(model, out_indices=[0, 1, 2])
    with torch.no_grad():
        maps = backbone(torch.randn(1, 3, 64, 64))
    assert [m.shape[-1] for m in maps] == [64 // i["reduction"] for i in model.feature_info]


def test_v3_reparam_report_merges_no_mixed_convs():
    from lightnets.deploy import reparameterize

    report = reparameterize(lightnets.create_model("mobilenet_v3_large_w100")).reparam_report
    assert report.merged_convs == []  # every depthwise conv has one kernel size
    assert report.summary().startswith("merged 0 mixed convs")
    assert len(report.unwrapped) > 0


# ------------------------------------------------------------------------------- common options


@pytest.mark.parametrize(
    "name", ["mobilenet_v1_w050", "mobilenet_v2_w100", "mobilenet_v3_large_w100"]
)
def test_small_input_grayscale_and_aliases(name):
    model = lightnets.create_model(name, in_chans=1, num_classes=10, small_input=True).eval()
    assert model.min_input == 16
    with torch.no_grad():
        assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
        assert model.forward_features(torch.randn(1, 1, 32, 32)).shape[-1] == 2  # 32 / 16


def test_aliases_reach_the_models():
    pairs = [
        ("mobilenet_v2", "mobilenet_v2_w100"),
        ("mobilenetv2_140", "mobilenet_v2_w140"),
        ("mobilenet_v3_large", "mobilenet_v3_large_w100"),
        ("mobilenet_v3_small", "mobilenet_v3_small_w100"),
        ("mobilenetv1_100", "mobilenet_v1_w100"),
    ]
    for alias, name in pairs:
        assert lightnets.create_model(alias).model_name == name


def test_bad_width_is_a_value_error():
    with pytest.raises(ValueError, match="width"):
        lightnets.create_model("mobilenet_v2_k5", width=0)
