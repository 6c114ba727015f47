"""Every registered model, tested the moment it is registered (STYLE.md §9)."""

from __future__ import annotations

import pytest
import torch
from conftest import build_for_test, expected_out
from torch.utils.flop_counter import FlopCounterMode

import lightnets

MODELS = lightnets.list_models()


def trainable_params(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def conv_linear_macs(model, size: int) -> float:
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, model.in_chans, size, size))
    return counter.get_total_flops() / 2 / 1e6


def test_the_zoo_is_not_empty():
    assert len(MODELS) > 0


@pytest.mark.parametrize("name", MODELS)
def test_forward_shape_and_finite(name):
    model, x = build_for_test(name)
    y = model(x)
    assert y.shape == (2, expected_out(model))
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_and_the_input_get_a_gradient(name):
    model, x = build_for_test(name)
    x.requires_grad_(True)
    model.train()
    model(x).square().sum().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", MODELS)
def test_eval_is_per_sample_and_state_dict_round_trips(name):
    model, x = build_for_test(name)
    model.eval()
    with torch.no_grad():
        both = model(x)
        # relative to the output's norm: a batch of 2 may take other kernels than a batch of 1,
        # and MobileFaceNet's raw embedding reaches |y| ~ 600 at random init
        alone = model(x[:1])
        assert (alone - both[:1]).norm() / both[:1].norm() < 1e-5
        fresh = lightnets.create_model(name, num_classes=7).eval()
        fresh.load_state_dict(model.state_dict(), strict=True)
        torch.testing.assert_close(fresh(x), both, rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS)
def test_fx_trace_matches_eager(name):
    model, x = build_for_test(name)
    model.eval()
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))


@pytest.mark.parametrize("name", MODELS)
def test_features_only_matches_feature_info(name):
    model, x = build_for_test(name)
    backbone = lightnets.create_model(name, features_only=True).eval()
    r_max = max(info["reduction"] for info in backbone.feature_info)
    with torch.no_grad():
        maps = backbone(x)
        grown = backbone(torch.randn(*x.shape[:2], x.shape[-2] + r_max, x.shape[-1] + r_max))
    assert len(maps) == len(backbone.feature_info) > 0
    for fmap, big, info in zip(maps, grown, backbone.feature_info):
        assert fmap.shape[1] == info["channels"]
        side = -(-x.shape[-1] // info["reduction"])
        # padded nets give ceil(x / r); an unpadded stem or pool (SqueezeNet, Xception, as their
        # references) trims a border, but r more input pixels still give one more output pixel
        assert fmap.shape[-1] == side or (
            fmap.shape[-1] < side and big.shape[-1] - fmap.shape[-1] == r_max // info["reduction"]
        )


@pytest.mark.parametrize("name", MODELS)
def test_stage_channels_and_num_features(name):
    model, x = build_for_test(name)
    model.eval()
    with torch.no_grad():
        h = model.stem(x)
        for stage, channels in zip(model.stages, model.stage_channels):
            h = stage(h)
            assert h.shape[1] == channels
        assert model.forward_head(h, pre_logits=True).shape[1] == model.num_features


@pytest.mark.parametrize("name", MODELS)
def test_bad_input_names_the_minimum(name):
    model, x = build_for_test(name)
    with pytest.raises(ValueError, match="channels"):
        model(torch.randn(1, model.in_chans + 1, *x.shape[-2:]))
    small = model.card.min_input - 1
    with pytest.raises(ValueError, match=str(model.card.min_input)):
        model(torch.randn(1, model.in_chans, small, small))


@pytest.mark.parametrize("name", MODELS)
def test_params_match_the_card(name):
    model = lightnets.create_model(name)
    card = model.card
    n = trainable_params(model)
    if card.ref_params is not None:
        assert n == card.ref_params, f"{n} != reference {card.ref_params} ({card.ref_source})"
    else:
        assert card.params_m is not None, "card needs params_m or ref_params"
        assert n / 1e6 == pytest.approx(card.params_m, rel=0.01)


@pytest.mark.parametrize("name", [n for n in MODELS if lightnets.model_card(n).ref_macs_m])
def test_macs_match_the_reference(name):
    model = lightnets.create_model(name)
    macs = conv_linear_macs(model, model.card.img_size)
    assert macs == pytest.approx(model.card.ref_macs_m, rel=0.01)


def test_unknown_name_suggests_close_ones():
    with pytest.raises(KeyError, match="did you mean"):
        lightnets.create_model(MODELS[0] + "x")


@pytest.mark.parametrize("name", MODELS)
def test_grayscale_input(name):
    model, x = build_for_test(name, in_chans=1)
    assert model(x).shape == (2, expected_out(model))


# MobileFaceNet's GDC head fixes its input at 112x112, so it has no small-input mode
SMALL_INPUT = [n for n in MODELS if lightnets.model_card(n).embedding_dim is None]


@pytest.mark.parametrize("name", SMALL_INPUT)
def test_small_input_stem_halves_the_minimum(name):
    default = lightnets.create_model(name, num_classes=7)
    small = lightnets.create_model(name, num_classes=7, small_input=True).eval()
    assert small.min_input < default.min_input
    x = torch.randn(1, small.in_chans, small.min_input, small.min_input)
    assert small(x).shape == (1, 7)


@pytest.mark.parametrize("name", ["mixnet_s", "mobilenet_v2_w035", "shufflenet_v2_w100"])
def test_classifier_init_does_not_depend_on_the_class_count(name):
    # a 2-class head (face liveness) must not start with logits sqrt(1000/2) times larger than
    # an ImageNet head: the weight scale follows the feature width, not the class count
    torch.manual_seed(0)
    spread = {}
    for n in (2, 1000):
        head = lightnets.create_model(name, num_classes=n).get_classifier()
        spread[n] = head.weight.std().item()
        assert torch.count_nonzero(head.bias) == 0
    assert spread[2] == pytest.approx(spread[1000], rel=0.1)
