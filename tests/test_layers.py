"""Layer library: each layer against an independent reference (closed form or plain PyTorch)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightnets.blocks import DepthwiseSeparableConv2d, InvertedResidual
from lightnets.layers import (
    ChannelShuffle,
    ConvNormAct,
    DropPath,
    FixedDepthwiseConv2d,
    GlobalDepthwiseConv2d,
    MixConv2d,
    SpatiallySeparableConv2d,
    SqueezeExcite,
    channel_shuffle,
    fixed_kernel,
    get_act,
    make_divisible,
    split_channels,
)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- MixConv2d


@pytest.mark.parametrize(
    ("channels", "kernels"), [(16, (3,)), (24, (3, 5, 7)), (30, (3, 5, 7, 9)), (7, (3, 5))]
)
def test_mixconv_params_closed_form(channels, kernels):
    conv = MixConv2d(channels, channels, kernels)
    splits = split_channels(channels, len(kernels))
    assert n_params(conv) == sum(c * k * k for c, k in zip(splits, kernels))


def test_mixconv_equal_split_gives_remainder_to_first_group():
    assert split_channels(30, 4) == [9, 7, 7, 7]
    assert split_channels(7, 2) == [4, 3]


def test_mixconv_exponential_split_halves():
    sizes = split_channels(64, 4, "exponential")
    assert sizes == [32, 16, 8, 8] and sum(sizes) == 64
    sizes = split_channels(100, 3, "exponential")
    assert sizes == [50, 25, 25]


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["same", "tf_same"])
def test_mixconv_equals_explicit_split_conv_concat(stride, padding):
    torch.manual_seed(0)
    conv = MixConv2d(30, 30, (3, 5, 7, 9), stride=stride, padding=padding)
    x = torch.randn(2, 30, 17, 16)
    parts, outs = torch.split(x, [9, 7, 7, 7], dim=1), []
    for part, sub in zip(parts, conv.convs):
        k = sub.weight.shape[-1]
        if padding == "tf_same" and stride == 2:  # TF pads the extra pixel bottom/right
            ph = max((-(-17 // 2) - 1) * 2 + k - 17, 0)
            pw = max((-(-16 // 2) - 1) * 2 + k - 16, 0)
            part = F.pad(part, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
            outs.append(F.conv2d(part, sub.weight, stride=stride, groups=part.shape[1]))
        else:
            outs.append(
                F.conv2d(part, sub.weight, stride=stride, padding=k // 2, groups=part.shape[1])
            )
    torch.testing.assert_close(conv(x), torch.cat(outs, 1))


def test_mixconv_single_kernel_is_one_depthwise_conv():
    conv = MixConv2d(16, 16, 5)
    assert len(conv.convs) == 1
    ref = nn.Conv2d(16, 16, 5, padding=2, groups=16, bias=False)
    ref.weight.data.copy_(conv.convs[0].weight)
    x = torch.randn(2, 16, 9, 9)
    torch.testing.assert_close(conv(x), ref(x))
    ops = {n.target for n in torch.fx.symbolic_trace(conv).graph.nodes}
    assert torch.cat not in ops and torch.split not in ops


def test_mixconv_regular_groups_and_dilation_per_group():
    conv = MixConv2d(8, 12, (3, 5), depthwise=False, dilation=(1, 2))
    assert conv.in_splits == [4, 4] and conv.out_splits == [6, 6]
    assert n_params(conv) == 4 * 6 * 9 + 4 * 6 * 25
    assert [c.dilation for c in conv.convs] == [(1, 1), (2, 2)]
    assert conv(torch.randn(1, 8, 11, 11)).shape == (1, 12, 11, 11)


@pytest.mark.parametrize("size", [15, 16])
def test_tf_same_matches_manual_pad_at_stride_2(size):
    torch.manual_seed(0)
    conv = MixConv2d(4, 4, 3, stride=2, padding="tf_same")
    x = torch.randn(1, 4, size, size)
    total = max((-(-size // 2) - 1) * 2 + 3 - size, 0)
    ref = F.conv2d(
        F.pad(x, [total // 2, total - total // 2] * 2), conv.convs[0].weight, stride=2, groups=4
    )
    torch.testing.assert_close(conv(x), ref)
    # for even sizes TF pads only bottom/right, so the PyTorch-style symmetric result differs
    symmetric = F.conv2d(x, conv.convs[0].weight, stride=2, padding=1, groups=4)
    assert torch.equal(conv(x), symmetric) == (size % 2 == 1)


def test_tf_same_traces_and_exports():
    conv = MixConv2d(4, 4, (3, 5), stride=2, padding="tf_same").eval()
    x = torch.randn(1, 4, 16, 16)
    torch.testing.assert_close(torch.fx.symbolic_trace(conv)(x), conv(x))
    exported = torch.export.export(conv, (x,))
    torch.testing.assert_close(exported.module()(x), conv(x))


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [7, 8, 13])
def test_shapes_odd_sizes_and_strides(stride, size):
    x = torch.randn(2, 12, size, size)
    out = -(-size // stride)
    assert MixConv2d(12, 12, (3, 5, 7), stride).forward(x).shape == (2, 12, out, out)
    assert ConvNormAct(12, 10, 3, stride).forward(x).shape == (2, 10, out, out)
    assert SpatiallySeparableConv2d(12, 6, 5, stride)(x).shape == (2, 6, out, out)
    assert FixedDepthwiseConv2d(12, "gaussian", 3, stride)(x).shape == (2, 12, out, out)
    assert InvertedResidual(12, 12, stride, 3, (3, 5))(x).shape == (2, 12, out, out)


def test_mixconv_auto_is_a_rule_on_the_layer_arguments():
    from lightnets.layers import mixconv

    # no module-level cache that earlier layers or inputs could fill
    state = [
        n
        for n, v in vars(mixconv).items()
        if isinstance(v, (dict, list, set)) and not n.startswith("__")
    ]
    assert state == []
    # merged exactly where it adds no MACs: one kernel size, or equal groups of a split 1x1
    assert MixConv2d(16, 16, (3, 5), impl="auto").chosen_impl == "split"
    assert MixConv2d(16, 16, (3, 3), impl="auto").chosen_impl == "merged"
    assert MixConv2d(16, 32, (1, 1), depthwise=False, impl="auto").chosen_impl == "merged"
    assert MixConv2d(17, 32, (1, 1), depthwise=False, impl="auto").chosen_impl == "split"
    assert MixConv2d(8, 8, (1, 3), 2, padding="tf_same", impl="auto").chosen_impl == "split"


def test_mixconv_auto_choice_and_graph_do_not_depend_on_what_ran_before():
    def graph(layer):
        return [str(n.target) for n in torch.fx.symbolic_trace(layer).graph.nodes]

    for config in [(16, 16, (3, 5)), (16, 16, (3, 3)), (24, 24, (3, 5, 7), 2)]:
        fresh = MixConv2d(*config, impl="auto")
        used = MixConv2d(*config, impl="auto")
        for size in (7, 12):  # shapes and grad modes that a timing rule would key on
            used(torch.randn(2, config[0], size, size)).sum().backward()
            with torch.no_grad():
                used(torch.randn(1, config[0], size, size))
        assert used.chosen_impl == fresh.chosen_impl == fresh.auto_impl()
        assert graph(used) == graph(fresh)
    torch.manual_seed(0)
    auto = MixConv2d(16, 16, (3, 3), impl="auto")
    split = MixConv2d(16, 16, (3, 3))
    split.load_state_dict(auto.state_dict())
    x = torch.randn(2, 16, 9, 9)
    torch.testing.assert_close(auto(x), split(x))


def test_mixconv_channels_last_training_matches_nchw_and_stays_channels_last():
    # the channels_last training path (dense slices, dense gradients) against the plain
    # composition in NCHW: same output, same input and weight gradients
    torch.manual_seed(0)
    layer = MixConv2d(24, 24, (3, 5, 7), stride=2, depthwise=True).train()
    x = torch.randn(3, 24, 11, 11)
    grad = torch.randn(3, 24, 6, 6)
    reference = layer(x.requires_grad_())
    reference.backward(grad)
    want_x, want_w = x.grad.clone(), [c.weight.grad.clone() for c in layer.convs]
    layer.zero_grad()
    layer = layer.to(memory_format=torch.channels_last)
    x_cl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    seen = []
    for conv in layer.convs:  # the groups' convs see dense channels_last inputs and gradients
        conv.register_forward_pre_hook(
            lambda m, a: seen.append(a[0].is_contiguous(memory_format=torch.channels_last))
        )
        conv.register_full_backward_hook(
            lambda m, gi, go: seen.append(go[0].is_contiguous(memory_format=torch.channels_last))
        )
    out = layer(x_cl)
    out.backward(grad.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, reference)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert seen == [True] * 6
    torch.testing.assert_close(x_cl.grad, want_x)
    for conv, want in zip(layer.convs, want_w):
        torch.testing.assert_close(conv.weight.grad, want, rtol=1e-4, atol=1e-4)
    # inference and tracing keep the plain graph
    assert "contiguous" not in str(torch.fx.symbolic_trace(layer.eval()).graph)


# ------------------------------------------------------------ other convs


def test_spatially_separable_params_and_reference():
    layer = SpatiallySeparableConv2d(6, 8, 5)
    assert n_params(layer) == 6 * 8 * 5 + 8 * 8 * 5
    x = torch.randn(1, 6, 9, 9)
    ref = F.conv2d(
        F.conv2d(x, layer.vertical.weight, padding=(2, 0)), layer.horizontal.weight, padding=(0, 2)
    )
    torch.testing.assert_close(layer(x), ref)


def test_depthwise_separable_params_closed_form():
    block = DepthwiseSeparableConv2d(16, 32, kernel_sizes=(3,))
    # dw 16*9, BN 2*16, pw 16*32, BN 2*32
    assert n_params(block) == 16 * 9 + 2 * 16 + 16 * 32 + 2 * 32


def test_depthwise_separable_equals_plain_composition():
    torch.manual_seed(0)
    ref = nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 1, bias=False),
        nn.BatchNorm2d(8),
    ).eval()
    for bn in (ref[1], ref[4]):  # statistics far from identity, so a missing BN shows
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5), bn.bias.data.uniform_(-1, 1)
    names = {"0": "dw.conv.convs.0", "1": "dw.bn", "3": "pw.conv", "4": "pw.bn"}
    state = {}
    for key, value in ref.state_dict().items():
        index, _, leaf = key.partition(".")
        state[f"{names[index]}.{leaf}"] = value
    block = DepthwiseSeparableConv2d(8, 8, kernel_sizes=(3,), residual=True, pw_act=False).eval()
    block.load_state_dict(state, strict=True)  # both BNs, with exactly these names
    x = torch.randn(2, 8, 10, 10)
    torch.testing.assert_close(block(x), x + ref(x))


def test_global_depthwise_conv_is_weighted_sum_over_the_map():
    gdc = GlobalDepthwiseConv2d(4, 7).eval()
    x = torch.randn(2, 4, 7, 7)
    weighted = (x * gdc.conv.weight[:, 0]).sum((-2, -1))
    bn = gdc.bn
    ref = (weighted - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    torch.testing.assert_close(gdc(x), ref)
    assert n_params(gdc) == 4 * 49 + 2 * 4
    with pytest.raises(ValueError, match="feature_size|expects"):
        gdc(torch.randn(1, 4, 8, 8))


def test_inverted_residual_params_closed_form():
    # 16 -> mid 96 (2 split groups) -> 16, kernels (3, 5, 7), SE 96 -> 8 -> 96
    block = InvertedResidual(
        16, 16, 1, 6, (3, 5, 7), expand_groups=2, project_groups=2, se_channels=8
    )
    expand = 2 * (8 * 48) + 2 * 96
    dw = 32 * (9 + 25 + 49) + 2 * 96
    se = 96 * 8 + 8 + 8 * 96 + 96
    project = 2 * (48 * 8) + 2 * 16
    assert n_params(block) == expand + dw + se + project
    assert block.use_skip


def test_inverted_residual_equals_plain_composition():
    torch.manual_seed(0)
    block = InvertedResidual(8, 8, 1, 4, (3,), se_channels=2).eval()
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:  # non-trivial statistics so BN placement matters
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.data.uniform_()
    x = torch.randn(2, 8, 6, 6)

    def bn_eval(t, bn):
        return F.batch_norm(t, bn.running_mean, bn.running_var, bn.weight, bn.bias, False)

    h = F.relu(bn_eval(F.conv2d(x, convs[0].weight), bns[0]))
    h = F.relu(bn_eval(F.conv2d(h, convs[1].weight, padding=1, groups=32), bns[1]))
    s = h.mean((2, 3), keepdim=True)
    s = torch.sigmoid(
        F.conv2d(
            F.relu(F.conv2d(s, convs[2].weight, convs[2].bias)), convs[3].weight, convs[3].bias
        )
    )
    h = bn_eval(F.conv2d(h * s, convs[4].weight), bns[2])
    torch.testing.assert_close(block(x), x + h)


def test_squeeze_excite_gates_and_params():
    se = SqueezeExcite(16, 4, gate="hard_sigmoid")
    assert n_params(se) == 16 * 4 + 4 + 4 * 16 + 16
    x = torch.randn(2, 16, 5, 5)
    gate = se.gate(se.expand(se.act(se.reduce(x.mean((2, 3), keepdim=True)))))
    torch.testing.assert_close(se(x), x * gate)
    assert isinstance(se.gate, nn.Hardsigmoid)


def test_activations_by_name_are_torch_modules():
    assert get_act("hard_swish") is nn.Hardswish and get_act("swish") is nn.SiLU
    assert get_act("prelu") is nn.PReLU and get_act("relu6") is nn.ReLU6
    with pytest.raises(KeyError, match="gelu2"):
        get_act("gelu2")


def test_make_divisible_rounds_to_8_and_keeps_90_percent():
    assert make_divisible(32 * 0.35) == 16  # 11.2 -> 8 would lose >10%, so 16
    assert make_divisible(24 * 1.4) == 32  # 33.6 -> 32
    assert make_divisible(96 * 0.75) == 72


# ---------------------------------------------------------- channel shuffle


def test_channel_shuffle_closed_form_and_inverse():
    x = torch.arange(12.0).view(1, 12, 1, 1)
    y = channel_shuffle(x, 3)
    # output channel j*g + i is input channel i*(C/g) + j
    expected = [i * 4 + j for j in range(4) for i in range(3)]
    assert y.flatten().tolist() == expected
    torch.testing.assert_close(ChannelShuffle(4)(ChannelShuffle(3)(x)), x)


# ------------------------------------------------------------ fixed kernels


def test_fixed_kernels_are_buffers_not_parameters():
    layer = FixedDepthwiseConv2d(6, ("sobel_x", "sobel_y", "laplacian4"))
    assert n_params(layer) == 0 and "weight" in layer.state_dict()
    before = layer.weight.clone()
    head = nn.Conv2d(6, 2, 1)
    opt = torch.optim.SGD([*layer.parameters(), *head.parameters()], lr=1.0)
    head(layer(torch.randn(2, 6, 8, 8))).sum().backward()
    opt.step()
    assert torch.equal(layer.weight, before) and not layer.weight.requires_grad


def test_gaussian_sums_to_one_edges_to_zero():
    assert fixed_kernel("gaussian", 5, 1.5).sum().item() == pytest.approx(1.0)
    for kind in ("sobel_x", "sobel_y", "laplacian4", "laplacian8"):
        assert fixed_kernel(kind, 3).sum().item() == 0.0


def test_sobel_on_a_ramp_returns_the_slope():
    ramp = torch.arange(10.0).repeat(10, 1) * 0.5  # slope 0.5 along x
    x = ramp.view(1, 1, 10, 10)
    y = FixedDepthwiseConv2d(1, "sobel_x")(x)[0, 0, 1:-1, 1:-1]
    # the Sobel-x stencil weights the central difference by 1 + 2 + 1 = 4, over 2 pixels: 8 x slope
    torch.testing.assert_close(y, torch.full_like(y, 8 * 0.5))


def test_laplacian_of_constant_is_zero_and_identity_returns_input():
    x = torch.full((1, 2, 9, 9), 3.0)
    assert FixedDepthwiseConv2d(2, "laplacian8")(x)[..., 1:-1, 1:-1].abs().max() == 0
    z = torch.randn(2, 5, 7, 7)
    torch.testing.assert_close(FixedDepthwiseConv2d(5, "identity", 5)(z), z)


def test_fixed_bank_tiles_over_channels_and_sigma_range():
    layer = FixedDepthwiseConv2d(5, ("sobel_x", "gaussian"), sigma=(0.5, 2.0))
    w = layer.weight[:, 0]
    torch.testing.assert_close(w[2], fixed_kernel("sobel_x"))
    torch.testing.assert_close(w[1], fixed_kernel("gaussian", 3, 0.875))
    assert layer(torch.randn(1, 5, 6, 6)).shape == (1, 5, 6, 6)


def test_fixed_kernels_move_with_to_and_strided_blur():
    layer = FixedDepthwiseConv2d(3, "gaussian", 3, stride=2).to(torch.float64)
    assert layer.weight.dtype == torch.float64
    x = torch.ones(1, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(layer(x)[..., 1:, 1:], torch.ones(1, 3, 3, 3, dtype=torch.float64))


# ---------------------------------------------------------------- generic


def test_drop_path_is_identity_in_eval_and_drops_whole_samples():
    torch.manual_seed(0)
    dp = DropPath(0.5)
    x = torch.ones(64, 3, 2, 2)
    y = dp(x)
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert (per_sample == per_sample[:, :1]).all()
    assert torch.equal(dp.eval()(x), x)


LAYERS = {
    "MixConv2d": lambda: MixConv2d(12, 12, (3, 5, 7), 2),
    "MixConv2d_grouped": lambda: MixConv2d(12, 8, (1, 1), depthwise=False),
    "ConvNormAct": lambda: ConvNormAct(12, 8, 3, act_layer=nn.PReLU),
    "SpatiallySeparable": lambda: SpatiallySeparableConv2d(12, 12, 3),
    "SqueezeExcite": lambda: SqueezeExcite(12, 4),
    "ChannelShuffle": lambda: nn.Sequential(nn.Conv2d(12, 12, 1), ChannelShuffle(3)),
    "FixedDepthwise": lambda: nn.Sequential(
        FixedDepthwiseConv2d(12, "laplacian8"), nn.Conv2d(12, 4, 1)
    ),
    "DepthwiseSeparable": lambda: DepthwiseSeparableConv2d(12, 16, 2, (3, 5), se_channels=3),
    "InvertedResidual": lambda: InvertedResidual(
        12, 12, 1, 6, (3, 5), expand_groups=2, project_groups=2, se_channels=3, drop_path=0.1
    ),
}


@pytest.mark.parametrize("name", LAYERS)
def test_every_parameter_gets_a_gradient_and_fx_traces(name):
    torch.manual_seed(0)
    layer = LAYERS[name]()
    x = torch.randn(2, 12, 9, 9)
    layer(x).square().sum().backward()
    assert [n for n, p in layer.named_parameters() if p.grad is None] == []
    layer.eval()
    torch.testing.assert_close(torch.fx.symbolic_trace(layer)(x), layer(x))


# -------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MixConv2d(8, 8, (3, 4)), "odd"),
        (lambda: MixConv2d(8, 8, 0), "kernel_size"),
        (lambda: MixConv2d(8, 8, -3), "kernel_size"),
        (lambda: MixConv2d(2, 2, (3, 5, 7)), "cannot split 2 channels into 3"),
        (lambda: MixConv2d(8, 16, 3), "out_channels == in_channels"),
        (lambda: MixConv2d(8, 8, 3, stride=3), "stride"),
        (lambda: MixConv2d(8, 8, (3, 5), dilation=(1, 2, 3)), "dilation"),
        (lambda: MixConv2d(8, 8, 3, split="random"), "split"),
        (lambda: MixConv2d(8, 8, 3, stride=2, padding="valid"), "padding"),
        (lambda: ConvNormAct(6, 8, 1, groups=4), "in_channels=6"),
        (lambda: ConvNormAct(0, 8), "in_channels"),
        (lambda: FixedDepthwiseConv2d(4, "sobel_z"), "sobel_z"),
        (lambda: FixedDepthwiseConv2d(4, "gaussian", 4), "kernel_size"),
        (lambda: FixedDepthwiseConv2d(4, "gaussian", sigma=0.0), "sigma"),
        (lambda: SqueezeExcite(8, 0), "reduced_channels"),
        (lambda: SqueezeExcite(8, 2, gate="tanh"), "gate"),
        (lambda: ChannelShuffle(0), "groups"),
        (lambda: SpatiallySeparableConv2d(4, 4, 2), "odd"),
        (lambda: InvertedResidual(8, 8, 1, 0.0), "expand_ratio"),
        (lambda: DropPath(1.0), "drop-path"),
    ],
)
def test_bad_config_raises_a_value_error_naming_it(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (MixConv2d(8, 8, (3, 5)), (1, 6, 9, 9)),
        (MixConv2d(8, 8, 3), (8, 9, 9)),
        (FixedDepthwiseConv2d(4, "sobel_x"), (1, 3, 9, 9)),
        (ChannelShuffle(3), (1, 8, 4, 4)),
    ],
)
def test_wrong_input_rank_or_channels_raise_value_error(layer, shape):
    with pytest.raises(ValueError, match=r"\(N, "):
        layer(torch.randn(*shape))
