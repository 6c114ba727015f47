"""`lightnets inspect`: kernel collection, classification, spectra, similarity, reports and CLI.

References are independent of the code under test: numpy's Pearson correlation for the zero-mean
cosine, a 256-point numpy FFT for the low-frequency share, the (n x n) Gram-matrix form of linear
CKA (Kornblith et al. 2019, eq. 3) for the feature-space form, binomial bounds for chance levels.
"""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pytest
import torch
from torch import nn

import lightnets
from lightnets.cli import main as cli_main
from lightnets.inspect import (
    chance_shares,
    classify_kernels,
    collect_depthwise_kernels,
    kernel_report,
    layer_similarity,
    low_frequency_energy,
    null_threshold,
)
from lightnets.layers import FixedDepthwiseConv2d, MixConv2d, fixed_kernel, gaussian_kernel

SOBEL_X = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])


def depthwise(channels: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, k, stride, k // 2, groups=channels, bias=False)


def planted_model() -> tuple[nn.Module, list[str], torch.Tensor]:
    """One depthwise layer whose 5 kernels are a Gaussian (sigma 1.2, not a template sigma),
    Sobel-x rotated by 90 degrees, a 4-neighbour Laplacian, an identity and seeded noise."""
    gen = torch.Generator().manual_seed(3)
    kernels = torch.stack(
        [
            gaussian_kernel(3, 1.2),
            torch.rot90(SOBEL_X),
            fixed_kernel("laplacian4"),
            fixed_kernel("identity"),
            torch.randn(3, 3, generator=gen),
        ]
    )
    model = nn.Sequential(depthwise(5), nn.ReLU())
    with torch.no_grad():
        model[0].weight.copy_(kernels[:, None])
    return model, ["gaussian", "edge", "edge", "identity", "other"], kernels


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1])


# ------------------------------------------------------------------------------ collection


def test_collect_finds_conv_mixconv_groups_and_fixed_buffers_in_order():
    model = nn.Sequential(
        nn.Conv2d(3, 12, 3, padding=1),  # regular conv: not depthwise
        depthwise(12),
        MixConv2d(12, 12, (3, 5, 7), stride=2),
        nn.Conv2d(12, 12, 1, groups=12),  # 1x1 depthwise: a per-channel scale, no kernel
        FixedDepthwiseConv2d(12, ("sobel_x", "laplacian"), stride=2),
        MixConv2d(12, 24, (1, 1), depthwise=False),  # grouped pointwise: not depthwise
    )
    records = collect_depthwise_kernels(model)
    assert list(records) == ["1", "2.convs.0", "2.convs.1", "2.convs.2", "4"]
    assert [r.kernel_size for r in records.values()] == [3, 3, 5, 7, 3]
    assert [r.stride for r in records.values()] == [1, 2, 2, 2, 2]
    assert [r.fixed for r in records.values()] == [False, False, False, False, True]
    assert [r.group for r in records.values()] == [None, 0, 1, 2, None]
    assert records["2.convs.1"].parent == "2"
    # resolution level for plain modules: +1 at every strided layer (a MixConv2d counts once)
    assert [r.stage for r in records.values()] == [0, 1, 1, 1, 2]
    for i, conv in enumerate(model[2].convs):
        assert torch.equal(records[f"2.convs.{i}"].weight, conv.weight[:, 0])
    assert torch.equal(records["4"].weight, model[4].weight[:, 0])
    assert sum(r.channels for r in records.values()) == 12 + 12 + 12


def test_collect_uses_stage_index_of_zoo_models():
    model = lightnets.create_model("mobilenet_v2_w035", num_classes=3)
    records = collect_depthwise_kernels(model)
    modules = dict(model.named_modules())
    expected = [
        n
        for n, m in modules.items()
        if isinstance(m, nn.Conv2d)
        and m.groups == m.in_channels == m.out_channels
        and m.kernel_size[0] > 1
    ]
    assert list(records) == expected
    for name, rec in records.items():
        assert rec.stage == int(name.split(".")[1])
    assert sorted({r.stage for r in records.values()}) == list(range(len(model.stages)))


def test_model_without_depthwise_layers_is_a_one_line_value_error():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=2))
    with pytest.raises(ValueError, match="has no depthwise convolution") as err:
        collect_depthwise_kernels(model)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------ classification


def test_planted_kernels_are_classified_with_expected_scores():
    model, expected, kernels = planted_model()
    result = classify_kernels(collect_depthwise_kernels(model)["0"].weight)
    assert list(result.classes) == expected
    # Gaussian sigma 1.2: best of the blur templates, by numpy's Pearson correlation
    reference = max(pearson(kernels[0], gaussian_kernel(3, s)) for s in (0.7, 1.0, 1.5, 2.0, 3.0))
    assert 0.99 < reference < 1.0
    assert result.score[0].item() == pytest.approx(reference, abs=1e-5)
    # rot90(Sobel-x) is -Sobel-y: an edge with score 1 whatever the sign
    assert result.best_template["edge"][1] == "sobel_y"
    assert result.score[1:4].tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    assert result.best_template["edge"][2] == "laplacian4"
    assert result.score[4].item() < result.threshold


def test_exact_templates_score_one_and_sign_flips_only_keep_edges():
    kernels = torch.stack(
        [
            gaussian_kernel(5, 1.0),
            fixed_kernel("sobel_x", 5),
            -fixed_kernel("sobel_x", 5),
            fixed_kernel("identity", 5),
            -gaussian_kernel(5, 1.0),
        ]
    )
    result = classify_kernels(kernels)
    assert list(result.classes) == ["gaussian", "edge", "edge", "identity", "other"]
    assert result.score[:4].tolist() == pytest.approx([1.0] * 4, abs=1e-5)


def test_identity_and_laplacian8_are_told_apart_by_their_dc_gain():
    # zero-mean cosine cannot: delta - mean(delta) is exactly -laplacian8 / 9 on 3x3
    identity, lap8 = fixed_kernel("identity"), fixed_kernel("laplacian8")
    assert pearson(identity, lap8) == pytest.approx(-1.0)
    result = classify_kernels(torch.stack([identity, lap8, 2 * identity + 0.01]))
    assert list(result.classes) == ["identity", "edge", "identity"]
    assert result.dc_gain.tolist() == pytest.approx([1.0, 0.0, 1.0], abs=1e-4)


def test_fixed_gaussian_layer_is_all_blur():
    layer = FixedDepthwiseConv2d(16, "gaussian", kernel_size=3, stride=2, sigma=(0.8, 2.5))
    result = classify_kernels(collect_depthwise_kernels(nn.Sequential(layer))["0"].weight)
    assert set(result.classes) == {"gaussian"}


def test_threshold_is_the_95th_percentile_of_noise_scores():
    # "chance" = the class shares of iid Gaussian kernels (He init): the families get 5% together
    for k in (3, 5):
        shares = chance_shares(k)
        assert sum(shares[c] for c in ("gaussian", "edge", "identity")) == pytest.approx(
            0.05, abs=0.002
        )
        noise = torch.randn(4000, k, k, generator=torch.Generator().manual_seed(11))
        best = classify_kernels(noise).score
        assert (best >= null_threshold(k)).float().mean().item() == pytest.approx(0.05, abs=0.012)
    assert null_threshold(9) == 0.5  # the floor: a template must explain 1/4 of the variance


@pytest.mark.parametrize("init", ["pytorch_default", "he_normal"])
def test_random_init_shows_no_class_above_chance(init):
    # "above chance" = share > chance share + 3 binomial standard deviations for that many kernels
    torch.manual_seed(0)
    model = nn.Sequential(depthwise(512, 3), depthwise(512, 3, 2), depthwise(256, 5))
    if init == "he_normal":
        for conv in model:
            nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    records = collect_depthwise_kernels(model)
    for k in (3, 5):
        weights = torch.cat([r.weight for r in records.values() if r.kernel_size == k])
        shares = classify_kernels(weights).shares()
        chance = chance_shares(k)
        n = weights.shape[0]
        for cls in ("gaussian", "edge", "identity"):
            bound = chance[cls] + 3 * math.sqrt(max(chance[cls], 1 / n) * (1 - chance[cls]) / n)
            assert shares[cls] <= bound, (k, cls, shares[cls], chance[cls])


# ------------------------------------------------------------------------------ frequency


def numpy_low_share(kernel: torch.Tensor, pad: int = 256) -> float:
    power = np.abs(np.fft.fft2(kernel.numpy().astype(np.float64), s=(pad, pad))) ** 2
    f = np.abs(np.fft.fftfreq(pad))
    inside = (f[:, None] < 0.25) & (f[None, :] < 0.25)
    return float(power[inside].sum() / power.sum())


def test_low_frequency_energy_gaussian_beats_laplacian_and_matches_numpy():
    kernels = torch.stack(
        [
            gaussian_kernel(3, 1.0),
            fixed_kernel("laplacian4"),
            fixed_kernel("sobel_x"),
            fixed_kernel("identity"),
        ]
    )
    low = low_frequency_energy(kernels)
    assert low[0] > 0.8 > 0.1 > low[1]
    for i in range(4):
        assert low[i].item() == pytest.approx(numpy_low_share(kernels[i]), abs=0.01)
    # a white kernel spreads its energy evenly: the band |fx|, |fy| < 1/4 holds a quarter of it
    assert low[3].item() == pytest.approx(0.25, abs=1e-6)
    noise = torch.randn(3000, 5, 5, generator=torch.Generator().manual_seed(2))
    assert low_frequency_energy(noise).mean().item() == pytest.approx(0.25, abs=0.01)


# ------------------------------------------------------------------------------ similarity


def gram_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA through centred (n x n) Gram matrices (Kornblith et al. 2019)."""
    n = x.shape[0]
    h = np.eye(n) - 1.0 / n
    k, l_ = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float((k * l_).sum() / np.sqrt((k * k).sum() * (l_ * l_).sum()))


def test_layer_similarity_self_permutation_and_gram_reference():
    gen = torch.Generator().manual_seed(5)
    a = torch.randn(1, 16, 9, 9, generator=gen).relu()
    assert layer_similarity(a, a) == pytest.approx({"cosine": 1.0, "cka": 1.0})
    permuted = a[:, torch.randperm(16, generator=gen)]
    sim = layer_similarity(a, permuted)
    assert sim["cka"] == pytest.approx(1.0)
    assert sim["cosine"] < 0.9  # matched-channel cosine is not permutation invariant
    scaled_rotated = 3.0 * torch.einsum(
        "nchw,cd->ndhw", a, torch.linalg.qr(torch.randn(16, 16, generator=gen))[0]
    )
    assert layer_similarity(a, scaled_rotated)["cka"] == pytest.approx(1.0)
    b = torch.randn(1, 24, 9, 9, generator=gen)
    sim = layer_similarity(a, b)
    assert math.isnan(sim["cosine"])  # channel counts differ
    xa = a[0].permute(1, 2, 0).reshape(-1, 16).double().numpy()
    xb = b[0].permute(1, 2, 0).reshape(-1, 24).double().numpy()
    assert sim["cka"] == pytest.approx(gram_cka(xa, xb), abs=1e-9)


def test_layer_similarity_pools_the_larger_map():
    a = torch.randn(1, 8, 16, 16, generator=torch.Generator().manual_seed(1))
    down = nn.functional.avg_pool2d(a, 2)
    assert layer_similarity(a, down)["cka"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------ reports


def test_kernel_report_writes_tables_and_pictures_for_every_layer(tmp_path):
    model = nn.Sequential(
        depthwise(8),
        MixConv2d(8, 8, (3, 5), stride=2),
        FixedDepthwiseConv2d(8, "gaussian", stride=2),
    )
    report = kernel_report({"toy": model}, tmp_path, max_kernels=4)
    names = list(collect_depthwise_kernels(model))
    for file in (
        "layers.csv",
        "layers.json",
        "kernels.csv",
        "atlas.png",
        "class_shares.png",
        "frequency.png",
        "summary.txt",
    ):
        assert (tmp_path / file).stat().st_size > 0, file
    with open(tmp_path / "layers.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["layer"] for r in rows] == names
    assert [r["layer"] for r in json.loads((tmp_path / "layers.json").read_text())] == names
    with open(tmp_path / "kernels.csv") as f:
        assert len(list(csv.DictReader(f))) == 8 * 3
    fixed = next(r for r in rows if r["layer"] == "2")
    assert float(fixed["gaussian"]) == 1.0 and fixed["fixed"] == "True"
    assert any("strided layers keep" in line for line in report.lines)


def test_compare_reports_what_changed(tmp_path):
    torch.manual_seed(0)
    random_init = nn.Sequential(depthwise(64), depthwise(64, stride=2))
    trained = nn.Sequential(depthwise(64), depthwise(64, stride=2))
    with torch.no_grad():
        trained[1].weight.copy_(gaussian_kernel(3, 1.0).expand(64, 1, 3, 3))
    report = kernel_report({"random": random_init, "blurred": trained}, tmp_path, max_kernels=4)
    assert report.rows["blurred"][1]["gaussian"] == 1.0
    assert (tmp_path / "random_atlas.png").stat().st_size > 0
    assert (tmp_path / "blurred_layers.csv").stat().st_size > 0
    low = low_frequency_energy(gaussian_kernel(3, 1.0)).item()
    assert report.rows["blurred"][1]["low_freq"] == pytest.approx(low, abs=1e-4)
    line = next(x for x in report.lines if x.startswith("energy below f/4"))
    assert f"-> {100 * low:.0f}%, non-strided" in line
    assert "gaussian 0% -> 50%" in next(x for x in report.lines if x.startswith("all:"))


# ------------------------------------------------------------------------------ CLI


def test_cli_kernels_with_checkpoint_and_compare(tmp_path, capsys):
    model = lightnets.create_model("mobilenet_v2_w035", num_classes=10)
    with torch.no_grad():  # plant a blur in every strided depthwise layer
        for rec in collect_depthwise_kernels(model).values():
            if rec.stride > 1:
                dict(model.named_modules())[rec.name].weight.copy_(
                    gaussian_kernel(3, 1.0).expand(rec.channels, 1, 3, 3)
                )
    ckpt = tmp_path / "blurred.pth"
    torch.save(model.state_dict(), ckpt)
    out = tmp_path / "one"
    assert (
        cli_main(
            [
                "inspect",
                "kernels",
                "mobilenet_v2_w035",
                "--checkpoint",
                str(ckpt),
                "-o",
                str(out),
                "--no-plots",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    low = 100 * low_frequency_energy(gaussian_kernel(3, 1.0)).item()
    # the random-init twin: 4 strided layers of iid kernels, about the white-noise 25%
    assert re.search(
        rf"strided layers keep {low:.0f}% of energy below f/4 \(random init: 2[3-7]%\)", text
    )
    rows = json.loads((out / "layers.json").read_text())
    assert len(rows) == len(collect_depthwise_kernels(model))
    assert all(r["gaussian"] == 1.0 for r in rows if r["stride"] > 1)
    both = tmp_path / "both"
    assert (
        cli_main(
            [
                "inspect",
                "kernels",
                "mobilenet_v2_w035",
                "--compare",
                "random",
                str(ckpt),
                "-o",
                str(both),
                "--no-plots",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "mobilenet_v2_w035 (random init) -> mobilenet_v2_w035 (blurred.pth)" in text
    assert (both / "mobilenet_v2_w035_random_init_layers.csv").stat().st_size > 0
    named = ["--compare", "random", str(ckpt), "--labels", "init", "blur", "--no-plots"]
    assert cli_main(["inspect", "kernels", "mobilenet_v2_w035", "-o", str(both), *named]) == 0
    assert "init -> blur" in capsys.readouterr().out
    assert (both / "blur_layers.json").stat().st_size > 0


def test_cli_features_writes_grids_and_similarity(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    out = tmp_path / "feat"
    assert (
        cli_main(
            [
                "inspect",
                "features",
                "mobilenet_v2_w035",
                "--image",
                str(tmp_path / "x.png"),
                "--input-size",
                "64",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert "neighbouring layers have median linear CKA" in capsys.readouterr().out
    sim = json.loads((out / "similarity.json").read_text())
    ((label, data),) = sim.items()
    n = len(data["layers"])
    assert data["layers"][0] == "stem" and n == 1 + sum(
        len(s) for s in lightnets.create_model("mobilenet_v2_w035").stages
    )
    assert all(data["cka"][i][i] == pytest.approx(1.0) for i in range(n))
    assert (out / "similarity.png").stat().st_size > 0
    assert len(list(out.glob("features_*.png"))) == 1 + 7  # stem + 7 stages


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "not_an_image.png"
    bad.write_text("hello")
    code = cli_main(
        ["inspect", "features", "mobilenet_v2_w035", "--image", str(bad), "-o", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "cannot read image" in err and "\n" not in err
    code = cli_main(["inspect", "kernels", "squeezenet_1_1", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "squeezenet_1_1 has no depthwise convolution" in err and "\n" not in err


def test_cli_reads_a_train_style_safetensors_checkpoint(tmp_path, capsys):
    # `lightnets train` writes model.safetensors (keys sorted alphabetically) with its config in
    # the metadata; the model must be rebuilt with that config: grey input, 4 classes, small stem
    from safetensors.torch import save_file

    model = lightnets.create_model("mobilenet_v2_w035", num_classes=4, in_chans=1, small_input=True)
    config = {
        "model": "mobilenet_v2_w035",
        "num_classes": None,
        "in_chans": 1,
        "img_size": 32,
        "small_input": None,
    }
    run = tmp_path / "run" / "best"
    run.mkdir(parents=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(run / "model.safetensors"), {"config": json.dumps(config)})
    (run / "state.pt").write_bytes(b"")
    out = tmp_path / "o"
    assert (
        cli_main(
            [
                "inspect",
                "kernels",
                "mobilenet_v2_w035",
                "--checkpoint",
                str(run),
                "-o",
                str(out),
                "--no-plots",
            ]
        )
        == 0
    )
    from PIL import Image

    Image.fromarray(np.full((8, 8), 200, dtype=np.uint8)).save(tmp_path / "digit.png")
    assert (
        cli_main(
            [
                "inspect",
                "features",
                "mobilenet_v2_w035",
                "--checkpoint",
                str(run),
                "--image",
                str(tmp_path / "digit.png"),
                "-o",
                str(out),
                "--no-plots",
            ]
        )
        == 0
    )
    sim = json.loads((out / "similarity.json").read_text())
    assert len(next(iter(sim.values()))["layers"]) == 18
    capsys.readouterr()


def test_feature_report_on_a_plain_module_uses_its_depthwise_layers(tmp_path):
    from lightnets.inspect import feature_report

    model = nn.Sequential(
        nn.Conv2d(3, 8, 1), depthwise(8), nn.ReLU(), MixConv2d(8, 8, (3, 5), stride=2), depthwise(8)
    )
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    report = feature_report({"toy": model}, x, tmp_path, max_channels=4)
    layers = json.loads((tmp_path / "similarity.json").read_text())["toy"]["layers"]
    assert layers == ["1", "3", "4"]  # the MixConv2d as one layer, not per kernel-size group
    assert len(list(tmp_path.glob("features_stage_*.png"))) == 2  # resolution levels 0 and 1
    assert any("neighbouring layers" in line for line in report.lines)
