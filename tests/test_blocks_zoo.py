"""Blocks and models of the ShuffleNet, SqueezeNet, Xception and MobileFaceNet families.

Parameter counts are compared with closed forms written from the papers' tables, block outputs with
the same computation composed from torch.nn.functional, and map sizes with the reference
implementations' (torchvision, timm) known geometry.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lightnets
from lightnets.blocks import FireModule, ShuffleUnitV1, ShuffleUnitV2, XceptionBlock


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def randomize_bn(module: nn.Module) -> nn.Module:
    """Non-trivial BN statistics and affine terms, so an eval-mode BN is not the identity."""
    gen = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
    return module.eval()


def bn(x, m: nn.BatchNorm2d):
    return F.batch_norm(x, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)


def shuffle_by_index(x, groups: int):
    """Channel shuffle as an explicit permutation: output j*g + i is input i*(C/g) + j (§3.1)."""
    c = x.shape[1]
    per = c // groups
    order = [i * per + j for j in range(per) for i in range(groups)]
    return x[:, order]


# ---------------------------------------------------------------- FireModule (SqueezeNet §3.2)


@pytest.mark.parametrize("cin,s,e1,e3", [(96, 16, 64, 64), (512, 64, 256, 256), (7, 3, 5, 2)])
def test_fire_module_params_closed_form(cin, s, e1, e3):
    expected = (cin * s + s) + (s * e1 + e1) + (s * 9 * e3 + e3)  # biased convs, no BN
    assert n_params(FireModule(cin, s, e1, e3)) == expected


def test_fire_module_equals_functional_composition():
    torch.manual_seed(0)
    fire = FireModule(10, 4, 6, 8).eval()
    x = torch.randn(2, 10, 9, 7)
    sq = F.relu(F.conv2d(x, fire.squeeze.conv.weight, fire.squeeze.conv.bias))
    e1 = F.relu(F.conv2d(sq, fire.expand1x1.conv.weight, fire.expand1x1.conv.bias))
    e3 = F.relu(F.conv2d(sq, fire.expand3x3.conv.weight, fire.expand3x3.conv.bias, padding=1))
    y = fire(x)
    assert y.shape == (2, 14, 9, 7)
    torch.testing.assert_close(y, torch.cat([e1, e3], dim=1))


def test_fire_module_rejects_bad_widths():
    with pytest.raises(ValueError, match="squeeze"):
        FireModule(8, 0, 4, 4)


# ------------------------------------------------------------ XceptionBlock (Xception Fig. 5)


def xception_block_params(cin: int, cout: int, reps: int, stride: int, grow_first: bool) -> int:
    widths = [cin] + [cout] * reps if grow_first else [cin] * reps + [cout]
    total = sum(9 * widths[i] + widths[i] * widths[i + 1] + 2 * widths[i + 1] for i in range(reps))
    if stride > 1 or cin != cout:
        total += cin * cout + 2 * cout  # 1x1 shortcut conv + BN
    return total


@pytest.mark.parametrize(
    "cin,cout,reps,stride,grow_first",
    [
        (64, 128, 2, 2, True),
        (728, 728, 3, 1, True),
        (728, 1024, 2, 2, False),
        (16, 24, 2, 1, True),
    ],
)
def test_xception_block_params_closed_form(cin, cout, reps, stride, grow_first):
    block = XceptionBlock(cin, cout, reps, stride, grow_first=grow_first)
    assert n_params(block) == xception_block_params(cin, cout, reps, stride, grow_first)


@pytest.mark.parametrize("start_with_relu", [True, False])
def test_xception_block_equals_functional_composition(start_with_relu):
    torch.manual_seed(0)
    block = randomize_bn(
        XceptionBlock(6, 10, 2, 2, start_with_relu=start_with_relu, grow_first=False)
    )
    x = torch.randn(2, 6, 11, 11)
    h = x
    for i, unit in enumerate(block.convs):
        if i > 0 or start_with_relu:
            h = F.relu(h)
        h = F.conv2d(h, unit.conv.dw.weight, padding=1, groups=h.shape[1])
        h = bn(F.conv2d(h, unit.conv.pw.weight), unit.bn)
    h = F.max_pool2d(h, 3, 2, 1)
    skip = bn(F.conv2d(x, block.shortcut.conv.weight, stride=2), block.shortcut.bn)
    with torch.no_grad():
        y = block(x)
    assert y.shape == (2, 10, 6, 6)
    torch.testing.assert_close(y, h + skip)


def test_xception_block_keeps_identity_shortcut_and_input():
    block = randomize_bn(XceptionBlock(8, 8, 3, 1))
    assert isinstance(block.shortcut, nn.Identity)
    x = torch.randn(1, 8, 5, 5)
    before = x.clone()
    with torch.no_grad():
        block(x)
    torch.testing.assert_close(x, before)  # the first ReLU must not overwrite the shortcut


# ------------------------------------------------ ShuffleUnitV1 (ShuffleNet Fig. 2b/c, §3.2)


def shuffle_v1_params(cin: int, cout: int, stride: int, groups: int, mid: int, g1: int) -> int:
    branch = cout - cin if stride == 2 else cout
    return (cin * mid // g1 + 2 * mid) + (9 * mid + 2 * mid) + (mid * branch // groups + 2 * branch)


@pytest.mark.parametrize(
    "cin,cout,stride,groups,group_first",
    [
        (24, 240, 2, 3, False),
        (240, 240, 1, 3, True),
        (240, 480, 2, 3, True),
        (384, 384, 1, 8, True),
    ],
)
def test_shuffle_unit_v1_params_closed_form(cin, cout, stride, groups, group_first):
    unit = ShuffleUnitV1(cin, cout, stride, groups, group_first=group_first)
    g1 = groups if group_first else 1
    assert n_params(unit) == shuffle_v1_params(cin, cout, stride, groups, cout // 4, g1)


@pytest.mark.parametrize("stride", [1, 2])
def test_shuffle_unit_v1_equals_functional_composition(stride):
    torch.manual_seed(0)
    g, cin = 3, 12
    cout = cin if stride == 1 else 36
    unit = randomize_bn(ShuffleUnitV1(cin, cout, stride, g))
    x = torch.randn(2, cin, 9, 9)
    h = F.relu(bn(F.conv2d(x, unit.expand.conv.weight, groups=g), unit.expand.bn))
    h = shuffle_by_index(h, g)
    h = bn(
        F.conv2d(h, unit.dw.conv.weight, stride=stride, padding=1, groups=h.shape[1]), unit.dw.bn
    )  # no ReLU after the depthwise conv
    h = bn(F.conv2d(h, unit.project.conv.weight, groups=g), unit.project.bn)
    if stride == 1:
        ref = F.relu(x + h)
    else:
        ref = F.relu(torch.cat([F.avg_pool2d(x, 3, 2, 1), h], dim=1))
    with torch.no_grad():
        y = unit(x)
    assert y.shape == (2, cout, 9 // stride + (stride == 2), 9 // stride + (stride == 2))
    torch.testing.assert_close(y, ref)


def test_shuffle_unit_v1_rejects_mismatched_widths():
    with pytest.raises(ValueError, match="out_channels"):
        ShuffleUnitV1(24, 48, 1, 3)
    with pytest.raises(ValueError, match="out_channels"):
        ShuffleUnitV1(48, 48, 2, 3)


# ---------------------------------------------- ShuffleUnitV2 (ShuffleNetV2 Fig. 3c/d)


def shuffle_v2_params(cin: int, cout: int, stride: int) -> int:
    half = cout // 2
    branch = (
        ((cin if stride == 2 else half) * half + 2 * half)
        + (9 * half + 2 * half)
        + (half * half + 2 * half)
    )
    shortcut = (9 * cin + 2 * cin) + (cin * half + 2 * half) if stride == 2 else 0
    return branch + shortcut


@pytest.mark.parametrize("cin,cout,stride", [(24, 116, 2), (116, 116, 1), (464, 976, 2)])
def test_shuffle_unit_v2_params_closed_form(cin, cout, stride):
    assert n_params(ShuffleUnitV2(cin, cout, stride)) == shuffle_v2_params(cin, cout, stride)


@pytest.mark.parametrize("stride", [1, 2])
def test_shuffle_unit_v2_equals_functional_composition(stride):
    torch.manual_seed(0)
    cin, cout = (16, 16) if stride == 1 else (8, 16)
    unit = randomize_bn(ShuffleUnitV2(cin, cout, stride))
    x = torch.randn(2, cin, 7, 7)

    def cna(h, layer, stride=1, groups=1, act=True):
        pad = layer.conv.kernel_size[0] // 2
        h = bn(F.conv2d(h, layer.conv.weight, stride=stride, padding=pad, groups=groups), layer.bn)
        return F.relu(h) if act else h

    def branch(h):
        h = cna(h, unit.branch[0])
        h = cna(h, unit.branch[1], stride, groups=h.shape[1], act=False)
        return cna(h, unit.branch[2])

    if stride == 1:
        kept, processed = x[:, : cin // 2], x[:, cin // 2 :]
        out = torch.cat([kept, branch(processed)], dim=1)
    else:
        short = cna(cna(x, unit.shortcut[0], 2, groups=cin, act=False), unit.shortcut[1])
        out = torch.cat([short, branch(x)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(unit(x), shuffle_by_index(out, 2))


# ------------------------------------------------------ ShuffleNetV1 against the paper's Table 1

TABLE_1 = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
WIDTHS = {"w050": 0.5, "w100": 1.0, "w150": 1.5, "w200": 2.0}
# models.json "ShuffleNetV1 <s>x (g=<g>) [measured]": params (M, 4 decimals), conv+linear MACs (M)
MEASURED = {
    (1, "w050"): (0.5348, 43.09),
    (3, "w050"): (0.7189, 42.69),
    (8, "w050"): (1.012, 44.35),
    (1, "w100"): (1.5319, 143.08),
    (2, "w100"): (1.7338, 140.84),
    (3, "w100"): (1.8657, 137.46),
    (4, "w100"): (1.9683, 134.34),
    (8, "w100"): (2.4348, 138.37),
    (1, "w150"): (2.993, 308.10),
    (3, "w150"): (3.4422, 292.44),
    (8, "w150"): (4.27, 290.19),
}


def shufflenet_v1_closed_form(groups: int, width: float, size: int = 224, classes: int = 1000):
    """(params, MACs) of Table 1: 24-wide 3x3/2 stem, 3x3/2 max pool, stages of 4/8/4 units,
    bottleneck out/4 (rounded up to a multiple of g), dense first 1x1 in stage 2, FC with bias."""
    params = 27 * 24 + 2 * 24
    side = math.ceil(size / 2)
    macs = side * side * 27 * 24
    side = math.ceil(side / 2)  # max pool
    cin = 24
    for stage, (repeats, c) in enumerate(zip((4, 8, 4), TABLE_1[groups])):
        out = round(c * width)
        mid = groups * math.ceil(out / 4 / groups)
        for i in range(repeats):
            g1 = 1 if stage == 0 and i == 0 else groups
            branch = out - cin if i == 0 else out
            in_side = side
            if i == 0:
                side = math.ceil(side / 2)
            params += cin * mid // g1 + 2 * mid + 11 * mid + mid * branch // groups + 2 * branch
            macs += in_side**2 * cin * mid // g1 + side**2 * (9 * mid + mid * branch // groups)
            cin = out
    params += cin * classes + classes
    macs += cin * classes
    return params, macs / 1e6


@pytest.mark.parametrize("groups", sorted(TABLE_1))
@pytest.mark.parametrize("suffix", sorted(WIDTHS))
def test_shufflenet_v1_matches_table_1(groups, suffix):
    name = f"shufflenet_v1_g{groups}_{suffix}"
    model = lightnets.create_model(name)
    params, macs = shufflenet_v1_closed_form(groups, WIDTHS[suffix])
    assert n_params(model) == params
    # the card's params_m is the measured row's where there is one, this closed form otherwise
    assert model.card.params_m == pytest.approx(params / 1e6, abs=5e-5)
    assert model.stage_channels == [round(c * WIDTHS[suffix]) for c in TABLE_1[groups]]
    if (groups, suffix) in MEASURED:
        ref_params_m, ref_macs = MEASURED[groups, suffix]
        assert params / 1e6 == pytest.approx(ref_params_m, abs=5e-5)
        assert macs == pytest.approx(ref_macs, abs=5e-3)
        assert model.card.ref_macs_m == ref_macs


@pytest.mark.parametrize("name", ["shufflenet_v1_g3_w100", "shufflenet_v1_g4_w050"])
def test_shufflenet_v1_macs_closed_form(name):
    from torch.utils.flop_counter import FlopCounterMode

    model = lightnets.create_model(name).eval()
    groups, width = int(name.split("_g")[1][0]), WIDTHS[name[-4:]]
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    assert counter.get_total_flops() / 2e6 == pytest.approx(
        shufflenet_v1_closed_form(groups, width)[1], rel=1e-9
    )


def test_shufflenet_v1_first_unit_is_dense_and_bottleneck_is_a_quarter():
    model = lightnets.create_model("shufflenet_v1_g8_w100")
    first, second = model.stages[0][0], model.stages[0][1]
    assert first.expand.conv.groups == 1 and second.expand.conv.groups == 8
    assert first.expand.conv.out_channels == 384 // 4
    assert model.stages[2][0].project.conv.out_channels == 1536 - 768  # concat shortcut


# ------------------------------------------------------------- ShuffleNetV2 / SqueezeNet / Xception


@pytest.mark.parametrize(
    "name,params",
    [
        ("shufflenet_v2_x0_5", 1366792),
        ("squeezenet1_0", 1248424),
        ("squeezenet1_1", 1235496),
        ("legacy_xception", 22855952),
    ],
)
def test_torchvision_and_timm_names_resolve_to_exact_ports(name, params):
    assert n_params(lightnets.create_model(name)) == params


@pytest.mark.parametrize(
    "name,size,sides",
    [
        ("squeezenet_1_0", 224, [54, 27, 13]),  # torchvision's feature map sizes
        ("squeezenet_1_1", 224, [55, 27, 13]),
        ("xception", 299, [74, 37, 19, 19, 10]),  # timm legacy_xception
    ],
)
def test_unpadded_reference_geometry(name, size, sides):
    model = lightnets.create_model(name).eval()
    h = model.stem(torch.randn(1, 3, size, size))
    got = []
    with torch.no_grad():
        for stage in model.stages:
            h = stage(h)
            got.append(h.shape[-1])
    assert got == sides


def test_squeezenet_classifier_is_conv10_relu_then_pool():
    torch.manual_seed(0)
    model = lightnets.create_model("squeezenet_1_1", num_classes=5).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        fmap = model.forward_features(x)
        conv = model.classifier
        ref = F.relu(F.conv2d(fmap, conv.weight, conv.bias)).mean((2, 3))
        torch.testing.assert_close(model(x), ref)
        assert model.forward_head(fmap, pre_logits=True).shape == (2, model.num_features)
    assert conv.weight.detach().std().item() == pytest.approx(0.01, rel=0.1)  # conv10 init
    model.reset_classifier(0)
    assert model(x).shape == (2, 512)
    model.reset_classifier(11)
    assert model(x).shape == (2, 11)
    assert n_params(model.classifier) == 512 * 11 + 11


@pytest.mark.parametrize("name", ["squeezenet_1_0", "squeezenet_1_1", "xception"])
def test_min_input_is_the_smallest_that_runs(name):
    model = lightnets.create_model(name).eval()
    m = model.card.min_input
    with torch.no_grad():
        assert model(torch.randn(1, 3, m, m)).shape == (1, 1000)
        if name.startswith("squeezenet"):  # unpadded stem + ceil-mode pools: one less fails
            with pytest.raises(RuntimeError):
                model.stages(model.stem(torch.randn(1, 3, m - 1, m - 1)))


@pytest.mark.parametrize(
    "name", ["shufflenet_v1_g3_w100", "shufflenet_v2_w100", "squeezenet_1_0", "xception"]
)
def test_small_input_and_in_chans(name):
    model = lightnets.create_model(name, num_classes=3, in_chans=1, small_input=True).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 1, 32, 32))
    assert y.shape == (2, 3) and torch.isfinite(y).all()


# ------------------------------------------------------------------------------- MobileFaceNet


def test_mobilefacenet_counts_and_embedding():
    model = lightnets.create_model("mobilefacenet").eval()
    assert model.card.embedding_dim == 128 and model.num_classes == 0
    conv_weights = sum(
        m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    )
    # Table 1 conv weights alone (models.json note: 0.976M): stem 3x3, dw 3x3, bottlenecks, head
    table = [(2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1)]
    expected, cin = 27 * 64 + 9 * 64, 64
    for t, c, n, _ in table:
        for _ in range(n):
            expected += cin * cin * t + 9 * cin * t + cin * t * c
            cin = c
    expected += 128 * 512 + 49 * 512 + 512 * 128
    assert conv_weights == expected == 976000
    assert isinstance(model.head.gdc, lightnets.layers.GlobalDepthwiseConv2d)
    assert sum(isinstance(m, nn.PReLU) for m in model.modules()) > 0
    with torch.no_grad():
        assert model(torch.randn(2, 3, 112, 112)).shape == (2, 128)
        with pytest.raises(ValueError, match="7, 7"):
            model(torch.randn(1, 3, 128, 128))


def test_mobilefacenet_rejects_small_input():
    with pytest.raises(ValueError, match="small_input"):
        lightnets.create_model("mobilefacenet", small_input=True)
