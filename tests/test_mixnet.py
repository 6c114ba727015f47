"""MixNet, EfficientNet-B0, MnasNet-A1 specifics: multipliers, drop path, TF mode, tables."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import lightnets
from lightnets.layers import DropPath, TfSameConv2d
from lightnets.models.mixnet import MIXNET_S, MixNet, MixRow


def blocks_per_stage(model) -> list[int]:
    return [len(stage) for stage in model.stages]


def test_mixnet_l_is_mixnet_m_widened_by_1_3():
    # widths rounded to multiples of 8, stem included: 24->32, 32->40 (41.6), 40->56 (52), ...
    m = lightnets.create_model("mixnet_m")
    big = lightnets.create_model("mixnet_l")
    assert big.stage_channels == [32, 40, 56, 104, 160, 264]
    assert big.stem.conv.out_channels == 32 and big.num_features == m.num_features == 1536
    assert blocks_per_stage(big) == blocks_per_stage(m)


@pytest.mark.parametrize("depth", [0.5, 1.2, 2.0])
def test_depth_multiplier_rounds_each_row_up(depth):
    model = MixNet(MIXNET_S, stem=16, head=1536, depth=depth)
    expected = {}
    for row in MIXNET_S:  # rows of one width form a stage
        expected[row.out] = expected.get(row.out, 0) + math.ceil(row.n * depth)
    assert blocks_per_stage(model) == list(expected.values())


def test_drop_path_grows_linearly_with_the_block_index():
    model = lightnets.create_model("mixnet_s", drop_path_rate=0.2)
    blocks = [b for stage in model.stages for b in stage]
    for i, block in enumerate(blocks):
        if block.use_skip and i > 0:
            assert isinstance(block.drop_path, DropPath)
            assert block.drop_path.p == pytest.approx(0.2 * i / len(blocks))
        else:  # no residual (or rate 0 for the first block): nothing to drop
            assert not isinstance(block.drop_path, DropPath)


def test_drop_rates_follow_the_papers():
    rates = {"mixnet_s": 0.2, "mixnet_m": 0.25, "mixnet_l": 0.25, "tf_mixnet_l": 0.25,
             "efficientnet_b0": 0.2, "mnasnet_a1": 0.2}  # fmt: skip
    for name, p in rates.items():
        assert lightnets.create_model(name).dropout.p == p


def test_tf_variants_pad_like_tensorflow_and_use_tf_batchnorm():
    tf, pt = lightnets.create_model("tf_mixnet_s"), lightnets.create_model("mixnet_s")
    strided = [m for m in tf.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    assert strided and all(isinstance(m, TfSameConv2d) for m in strided)
    assert not any(isinstance(m, TfSameConv2d) for m in pt.modules())
    assert {m.eps for m in tf.modules() if isinstance(m, nn.BatchNorm2d)} == {1e-3}
    assert {m.eps for m in pt.modules() if isinstance(m, nn.BatchNorm2d)} == {1e-5}
    # TF SAME on an even input pads a stride-2 conv at the bottom/right only, so the first output
    # row sees input rows 0..2; PyTorch's symmetric padding shows it rows -1..1
    x = torch.zeros(1, 3, 8, 8)
    y = x.clone()
    y[..., 2, :] = 1.0
    with torch.no_grad():
        assert not torch.equal(tf.stem.conv(x)[..., 0, :], tf.stem.conv(y)[..., 0, :])
        assert torch.equal(pt.stem.conv(x)[..., 0, :], pt.stem.conv(y)[..., 0, :])


def test_reparam_report_counts_the_mixed_convs_it_merged():
    from lightnets.deploy import reparameterize
    from lightnets.layers import MixConv2d

    model = lightnets.create_model("mixnet_s")
    report = reparameterize(model).reparam_report
    mixed = {n for n, m in model.named_modules() if isinstance(m, MixConv2d) and len(m.convs) > 1}
    assert report.merged_convs and set(report.merged_convs) == mixed - set(report.kept_split)
    assert report.summary().startswith(f"merged {len(report.merged_convs)} mixed convs")
    single = {n for n, m in model.named_modules() if isinstance(m, MixConv2d) and len(m.convs) == 1}
    assert set(report.unwrapped) == single


def test_se_reduces_from_the_block_input():
    # MixNet-M stage 3 block 0: input 40, expanded to 240, SE ratio 0.25 -> 10 channels
    block = lightnets.create_model("mixnet_m").stages[3][0]
    assert block.se.reduce.in_channels == 240 and block.se.reduce.out_channels == 10


def test_small_input_keeps_the_stages():
    model = lightnets.create_model("mixnet_s", small_input=True, num_classes=10).eval()
    assert model.stem.conv.stride == (1, 1) and model.min_input == 16
    assert model.feature_info[-1]["reduction"] == 16
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize(
    "kwargs", [{"s": 3}, {"k": (4,)}, {"k": ()}, {"pw": (0, 1)}, {"n": 0}], ids=str
)
def test_bad_rows_are_rejected(kwargs):
    row = {"n": 1, "out": 16, "s": 1, "e": 1, "k": (3,), **kwargs}
    with pytest.raises(ValueError, match="bad row"):
        MixRow(**row)


@pytest.mark.parametrize("kwargs", [{"width": 0.0}, {"depth": -1.0}, {"drop_path_rate": 1.0}])
def test_bad_multipliers_name_the_argument(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        lightnets.create_model("mixnet_s", **kwargs)


def test_timm_names_find_the_models():
    assert lightnets.create_model("semnasnet_100").model_name == "mnasnet_a1"
    for name in ("mixnet_s", "tf_mixnet_m", "efficientnet_b0"):
        assert lightnets.model_card(name).timm_name == name


@pytest.mark.parametrize(
    "name, paper_m",
    [("mixnet_s", 4.1), ("mixnet_m", 5.0), ("mixnet_l", 7.3), ("efficientnet_b0", 5.3),
     ("mnasnet_a1", 3.9)],
)  # fmt: skip
def test_params_round_to_the_paper_figure(name, paper_m):
    n = sum(p.numel() for p in lightnets.create_model(name).parameters())
    assert round(n / 1e6, 1) == paper_m
