"""VGNet blocks and models (arXiv:2207.10318) against closed forms, plain PyTorch and the measured
cv-models rows in tests/fixtures/models.json."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lightnets
from lightnets.blocks import DownsamplingBlock, HalfIdentityBlock, SharedDepthwiseConv2d
from lightnets.layers import FixedDepthwiseConv2d, fixed_kernel
from lightnets.models import vgnet as V


def n_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def rd(c: int) -> int:
    """SE width of cv-models: int(c / 4) rounded to the nearest multiple of 8 (never below 8)."""
    return max(8, (c // 4 + 4) // 8 * 8)


def se_params(c: int) -> int:
    return 2 * c * rd(c) + rd(c) + c


# ------------------------------------------------------------------------------------ blocks


@pytest.mark.parametrize("bank", ["learned", V.EDGE, V.EDGE_GAUSS])
def test_half_identity_passes_the_right_half_bit_for_bit(bank):
    torch.manual_seed(0)
    block = HalfIdentityBlock(16, bank).train()
    x = torch.randn(2, 16, 9, 7)
    y = block(x)
    assert y.shape == x.shape
    # the right half of the input is, unchanged, the left half of the output
    assert torch.equal(y[:, :8], x[:, 8:])


def test_half_identity_equals_the_paper_formula_in_plain_pytorch():
    torch.manual_seed(0)
    block = HalfIdentityBlock(12, se_ratio=0.25).eval()
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial running statistics
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 12, 6, 6)
    a, b = x[:, :6], x[:, 6:]
    dw = F.conv2d(b, block.dw.weight, padding=1, groups=6)
    pw = block.pw
    z = F.conv2d(torch.cat([a, dw], 1), pw.conv.weight)
    z = F.batch_norm(F.relu(z), pw.bn.running_mean, pw.bn.running_var, pw.bn.weight, pw.bn.bias)
    s = z.mean((2, 3), keepdim=True)
    s = F.conv2d(
        F.relu(F.conv2d(s, pw.se.reduce.weight, pw.se.reduce.bias)),
        pw.se.expand.weight,
        pw.se.expand.bias,
    )
    expected = torch.cat([b, z * torch.sigmoid(s)], 1)
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected)


@pytest.mark.parametrize("channels", [16, 40])
def test_half_identity_params_closed_form(channels):
    h = channels // 2
    assert n_trainable(HalfIdentityBlock(channels)) == 9 * h + channels * h + 2 * h
    # fixed kernels: no 3x3 weights, a BN (2h) after them instead
    assert n_trainable(HalfIdentityBlock(channels, V.EDGE)) == 2 * h + channels * h + 2 * h
    with_se = HalfIdentityBlock(channels, se_ratio=0.25)
    assert n_trainable(with_se) == 9 * h + channels * h + 2 * h + se_params(h)


# (in, out): reuse min(out // 2, in) input channels, or none when in > out
@pytest.mark.parametrize("cin, cout", [(28, 56), (224, 368), (16, 64), (64, 48), (32, 40)])
@pytest.mark.parametrize("method", ["blur", "dwconv", "maxpool"])
def test_downsampling_block_params_closed_form(cin, cout, method):
    reused = 0 if cin > cout else min(cout // 2, cin)
    new = cout - reused
    dw = 9 * cin if method == "dwconv" else 0  # blur is fixed, max-pool has no weights
    block = DownsamplingBlock(cin, cout, 2, method)
    assert block.reused == reused
    assert n_trainable(block) == dw + cin * new + 2 * new
    with_se = DownsamplingBlock(cin, cout, 2, method, se_ratio=0.25)
    assert n_trainable(with_se) == dw + cin * new + 2 * new + se_params(new)


@pytest.mark.parametrize("cin, cout", [(28, 56), (224, 368), (16, 64), (64, 48)])
def test_downsampling_block_reuses_the_blurred_input_channels(cin, cout):
    torch.manual_seed(0)
    block = DownsamplingBlock(cin, cout, 2, "blur")
    x = torch.randn(2, cin, 15, 15)
    y = block(x)
    assert y.shape == (2, cout, 8, 8)
    gauss = fixed_kernel("gaussian", 3, 1.1).expand(cin, 1, 3, 3)
    blurred = F.conv2d(x, gauss, stride=2, padding=1, groups=cin)
    r = block.reused
    torch.testing.assert_close(y[:, :r], blurred[:, cin - r :], rtol=0, atol=1e-6)


def test_blur_kernel_is_the_official_fixed_gaussian():
    # cv-models hard-codes these taps (4 decimals) for its fixed Gaussian downsampling
    official = torch.tensor(
        [[0.0811, 0.1226, 0.0811], [0.1226, 0.1853, 0.1226], [0.0811, 0.1226, 0.0811]]
    )
    weight = DownsamplingBlock(8, 16, 2, "blur").downsample.weight
    torch.testing.assert_close(weight[3, 0], official, rtol=0, atol=6e-5)


def test_stride_one_downsampling_uses_a_learned_depthwise_conv():
    block = DownsamplingBlock(8, 16, 1, "blur")  # as the official code (small inputs)
    assert isinstance(block.downsample, nn.Conv2d) and block.downsample.groups == 8


def test_shared_depthwise_equals_chunked_depthwise():
    torch.manual_seed(0)
    layer = SharedDepthwiseConv2d(32, groups=8)
    assert n_trainable(layer) == 4 * 9
    x = torch.randn(2, 32, 5, 5)
    parts = [F.conv2d(p, layer.weight, padding=1, groups=4) for p in x.chunk(8, 1)]
    torch.testing.assert_close(layer(x), torch.cat(parts, 1))


def test_fixed_kernels_are_buffers_and_survive_an_optimizer_step():
    torch.manual_seed(0)
    block = HalfIdentityBlock(16, V.EDGE_GAUSS)
    fixed = block.dw.conv
    assert isinstance(fixed, FixedDepthwiseConv2d)
    assert all(p is not fixed.weight for p in block.parameters())
    assert "dw.conv.weight" in block.state_dict()
    before = fixed.weight.clone()
    opt = torch.optim.SGD(block.parameters(), lr=1.0)
    block(torch.randn(2, 16, 6, 6)).square().sum().backward()
    opt.step()
    assert torch.equal(fixed.weight, before)
    # the bank is tiled over the 8 channels in order
    expected = torch.stack([fixed_kernel(k, 3, 1.0) for k in V.EDGE_GAUSS])
    torch.testing.assert_close(fixed.weight[:, 0], expected)


def test_roberts_kernels_sum_to_zero_and_detect_a_diagonal_step():
    x = torch.tril(torch.ones(6, 6))[None, None]  # step across the main diagonal
    for kind in ("roberts_x", "roberts_y"):
        k = fixed_kernel(kind)
        assert k.sum() == 0
    response = F.conv2d(x, fixed_kernel("roberts_x")[None, None], padding=1)
    assert response.abs().sum() > 0
    flat = F.conv2d(torch.ones(1, 1, 6, 6), fixed_kernel("roberts_y")[None, None])
    assert torch.equal(flat, torch.zeros_like(flat))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: HalfIdentityBlock(15), "even"),
        (lambda: HalfIdentityBlock(0), "channels"),
        (lambda: DownsamplingBlock(8, 16, 2, "avgpool"), "method"),
        (lambda: DownsamplingBlock(8, 16, 3), "stride"),
        (lambda: SharedDepthwiseConv2d(30, 8), "divisible"),
    ],
)
def test_bad_arguments_raise_value_error(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_blocks_reject_a_wrong_channel_count():
    with pytest.raises(ValueError, match="16"):
        HalfIdentityBlock(16)(torch.randn(1, 12, 4, 4))
    with pytest.raises(ValueError, match="8"):
        DownsamplingBlock(8, 16)(torch.randn(1, 4, 4, 4))


def test_blocks_trace_with_fx():
    torch.manual_seed(0)
    for block in (
        HalfIdentityBlock(16, V.EDGE),
        DownsamplingBlock(8, 24, 2, "blur"),
        SharedDepthwiseConv2d(16, 8),
    ):
        block.eval()
        x = torch.randn(1, block_in(block), 8, 8)
        traced = torch.fx.symbolic_trace(block)
        torch.testing.assert_close(traced(x), block(x))


def block_in(block: nn.Module) -> int:
    return getattr(block, "in_channels", None) or block.channels


# ------------------------------------------------------------------------------------ models


def measured_trainable(reference_rows, row_name: str) -> int:
    row = next(r for r in reference_rows if r["name"] == row_name)
    return int(re.search(r"trainable params (\d+)", row["note"]).group(1))


CD_ROWS = {
    "vgnet_c_1_5mp": "vgnetc_1_5mp",
    "vgnet_g_1_0mp": "vgnetg_1_0mp",
    "vgnet_g_1_0mp_se": "vgnetg_1_0mp_se",
    "vgnet_g_1_5mp": "vgnetg_1_5mp",
    "vgnet_g_1_5mp_se": "vgnetg_1_5mp_se",
    "vgnet_g_2_0mp": "vgnetg_2_0mp",
    "vgnet_g_2_0mp_se": "vgnetg_2_0mp_se",
    "vgnet_g_2_5mp": "vgnetg_2_5mp",
    "vgnet_g_2_5mp_se": "vgnetg_2_5mp_se",
    "vgnet_g_5_0mp": "vgnetg_5_0mp",
    "vgnet_g_5_0mp_se": "vgnetg_5_0mp_se",
    "vgnet_f_1_5mp": "vgnete_1_5mp",
    "vgnet_f_1_5mp_gauss": "vgnetf_1_5mp",
}


@pytest.mark.parametrize("name", sorted(CD_ROWS))
def test_paper_version_matches_cv_models_cd54816(name, reference_rows):
    measured = measured_trainable(reference_rows, f"cvm@cd54816.{CD_ROWS[name]} [measured]")
    assert n_trainable(lightnets.create_model(name)) == measured
    assert lightnets.model_card(name).ref_params == measured


# cv-models HEAD 50a81e5 has no vgnetc_1_5mp and no VGNetF
HEAD_NAMES = [v.name for v in V.VARIANTS if v.bank == "learned" and v.name != "vgnet_c_1_5mp"]


@pytest.mark.parametrize("name", HEAD_NAMES)
def test_head_version_matches_cv_models_head(name, reference_rows):
    """act='silu', head_dw_groups=1, drop_rate=0.2 rebuild cv-models HEAD 50a81e5."""
    cvm = name.replace("vgnet_c_", "vgnetc_").replace("vgnet_g_", "vgnetg_")
    measured = measured_trainable(reference_rows, f"cvm.{cvm} [measured]")
    model = lightnets.create_model(name, act="silu", head_dw_groups=1, drop_rate=0.2)
    assert n_trainable(model) == measured


def test_paper_abstract_parameter_counts():
    """ "VGNetG-1.0MP ... 0.99M parameters and ... 1.14M parameters" (truncated to 0.01M)."""

    def millions(model):
        return n_trainable(model) // 10_000 / 100

    assert millions(lightnets.create_model("vgnet_g_1_0mp")) == 0.99
    assert millions(lightnets.create_model("vgnet_g_1_0mp_se")) == 1.14
    # the HEAD version (wider last depthwise conv) is not the paper's network
    head = lightnets.create_model("vgnet_g_1_0mp", act="silu", head_dw_groups=1)
    assert millions(head) == 1.0


@pytest.mark.parametrize("name", ["vgnet_f_1_5mp", "vgnet_f_1_5mp_gauss"])
def test_vgnet_f_has_no_trainable_3x3_kernels(name):
    model = lightnets.create_model(name)
    trainable_3x3 = [n for n, p in model.named_parameters() if p.ndim == 4 and p.shape[-1] == 3]
    assert trainable_3x3 == ["stem.conv.weight"]  # only the stem conv is a learned 3x3
    fixed = [m for m in model.modules() if isinstance(m, FixedDepthwiseConv2d)]
    half_identity = sum(isinstance(m, HalfIdentityBlock) for m in model.modules())
    assert len(fixed) == 4 + half_identity + 1  # downsampling blurs, every block, the head
    before = {id(m): m.weight.clone() for m in fixed}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    assert all(torch.equal(m.weight, before[id(m)]) for m in fixed)


def test_edge_and_edge_gauss_banks_differ_only_in_kernels():
    edge = lightnets.create_model("vgnet_f_1_5mp")
    gauss = lightnets.create_model("vgnet_f_1_5mp_gauss")
    assert edge.state_dict().keys() == gauss.state_dict().keys()
    k = "stages.1.1.dw.conv.weight"
    assert not torch.equal(edge.state_dict()[k], gauss.state_dict()[k])


def test_aliases_are_the_names_without_the_family_underscore():
    for variant in V.VARIANTS:  # vgnet_g_1_0mp -> vgnetg_1_0mp, vgnet_f_1_5mp -> vgnetf_1_5mp
        short = variant.name.replace("vgnet_", "vgnet", 1)
        assert lightnets.create_model(short).model_name == variant.name
    # also the cv-models names, except where cv-models' name is ours for another variant:
    # cd54816 calls the edge + Gaussian model vgnetf_1_5mp
    assert lightnets.create_model("vgnetg_1_0mp").model_name == "vgnet_g_1_0mp"
    assert lightnets.create_model("vgnete_1_5mp").model_name == "vgnet_f_1_5mp"
    assert "vgnetf_1_5mp" in lightnets.model_card("vgnet_f_1_5mp_gauss").ref_source


def test_small_input_runs_at_32_pixels_with_total_stride_8():
    model = lightnets.create_model("vgnet_g_1_0mp", num_classes=10, small_input=True).eval()
    assert model.min_input == 8
    assert [i["reduction"] for i in model.feature_info] == [1, 2, 4, 8]
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 368, 4, 4)
