"""timm weights run in lightnets unchanged: converted state dicts reproduce timm's logits.

Each fixture in fixtures/timm/ (made with timm, which the tests do not need) holds a timm model's
state-dict layout (key names and shapes) and the logits timm computed, in eval mode, after filling
those keys with the deterministic values of `fill` below for the input of `make_input`. The fill
rule is fixed by the fixtures: one generator per key, seeded with the CRC-32 of the key name.
"""

from __future__ import annotations

import json
import zlib

import pytest
import torch
from conftest import FIXTURES

import lightnets

TIMM_FIXTURES = sorted((FIXTURES / "timm").glob("*.json"))
REL_TOL = 1e-4


def fill(keys: list) -> dict[str, torch.Tensor]:
    """A timm-layout state dict for [[key, shape], ...], each value drawn from its own generator.

    BN statistics and affines are kept in a numerically tame range (variance 0.5-1.5, scale
    0.5-1.0); convolution and linear weights are N(0, 1/fan_in) so activations neither vanish nor
    blow up through ~20 blocks; biases are small normals.
    """
    state = {}
    for key, shape in keys:
        shape = tuple(shape)
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        if key.endswith("num_batches_tracked"):
            value = torch.zeros(shape, dtype=torch.long)
        elif key.endswith("running_var"):
            value = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith("running_mean"):
            value = 0.1 * torch.randn(shape, generator=g)
        elif key.endswith("weight") and len(shape) == 1:  # norm scale
            value = 0.5 + 0.5 * torch.rand(shape, generator=g)
        elif len(shape) == 1:  # any bias
            value = 0.1 * torch.randn(shape, generator=g)
        else:  # conv or linear weight
            fan_in = torch.Size(shape[1:]).numel()
            value = torch.randn(shape, generator=g) / fan_in**0.5
        state[key] = value
    return state


def make_input(batch: int = 2, size: int = 224) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(20191907))


def lightnets_name(timm_name: str) -> str:
    """The registered model whose card names `timm_name` as its timm counterpart."""
    names = [n for n in lightnets.list_models() if lightnets.model_card(n).timm_name == timm_name]
    assert names, f"no lightnets model declares timm_name={timm_name!r}"
    return names[0]


def load_fixture(path):
    data = json.loads(path.read_text())
    return data, fill(data["keys"]), torch.tensor(data["logits"])


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out - ref).norm() / ref.norm()).item()


def test_fill_matches_the_recorded_parameter_count():
    # the fixture's "params" is timm's trainable count; our fill covers exactly those tensors
    for path in TIMM_FIXTURES:
        data, state, _ = load_fixture(path)
        trainable = sum(
            v.numel()
            for k, v in state.items()
            if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
        )
        assert trainable == data["params"], path.name


@pytest.mark.parametrize("path", TIMM_FIXTURES, ids=lambda p: p.stem)
def test_converted_timm_weights_reproduce_timm_logits(path):
    data, timm_state, ref = load_fixture(path)
    name = lightnets_name(data["model"])
    model = lightnets.create_model(name).eval()
    state = lightnets.convert_timm_state_dict(data["model"], timm_state)
    assert len(state) == len(timm_state)  # a rename, never a merge or drop
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        out = model(make_input())
    err = relative_error(out, ref)
    print(f"{data['model']} -> {name}: relative error {err:.2e}")
    assert err < REL_TOL


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_load_weights_detects_and_converts_a_timm_file(tmp_path, suffix):
    data, timm_state, ref = load_fixture(FIXTURES / "timm" / "mixnet_s.json")
    path = tmp_path / f"mixnet_s{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(timm_state, str(path))
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in timm_state.items()}}, path)
    model = lightnets.load_weights(lightnets.create_model("mixnet_s"), path).eval()
    with torch.no_grad():
        assert relative_error(model(make_input()), ref) < REL_TOL
    again = lightnets.create_model("mixnet_s", pretrained=str(path)).eval()
    torch.testing.assert_close(again.state_dict(), model.state_dict(), rtol=0, atol=0)


def test_timm_names_resolve_to_the_converter():
    # the timm name, the lightnets name and an alias all pick the same rules
    stem = fill([["conv_stem.weight", [32, 3, 3, 3]]])
    for name in ("semnasnet_100", "mnasnet_a1"):
        assert list(lightnets.convert_timm_state_dict(name, stem)) == ["stem.conv.weight"]
    split = fill([["blocks.1.0.conv_pw.1.weight", [48, 8, 1, 1]]])
    assert list(lightnets.convert_timm_state_dict("mixnet_s", split)) == [
        "stages.1.0.expand.conv.convs.1.weight"
    ]


def test_an_unknown_timm_key_is_an_error():
    with pytest.raises(ValueError, match="no conversion rule"):
        lightnets.convert_timm_state_dict("mixnet_s", {"blocks.1.0.conv_xx.weight": torch.zeros(1)})


@pytest.mark.parametrize(
    "overrides", [{"padding": "same"}, {"norm_layer": torch.nn.BatchNorm2d}], ids=["pad", "eps"]
)
def test_tf_weights_need_tf_padding_and_eps(overrides):
    # negative control: the same weights in tf_mixnet_s built with PyTorch padding (or BN eps
    # 1e-5) miss timm's logits by more than the tolerance, so the check above can fail
    data, timm_state, ref = load_fixture(FIXTURES / "timm" / "tf_mixnet_s.json")
    model = lightnets.create_model("tf_mixnet_s", **overrides).eval()
    model.load_state_dict(lightnets.convert_timm_state_dict("tf_mixnet_s", timm_state))
    with torch.no_grad():
        assert relative_error(model(make_input()), ref) > 3 * REL_TOL
