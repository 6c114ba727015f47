"""Edge runtimes (lightnets.deploy.executorch, .litert, .ncnn): export, run, compare with PyTorch.

Each runtime's tests skip, with the pip command in the reason, when its packages are absent.
Conversions take 5-150 s each on 2 shared cores (ExecuTorch int8 lowering is the slowest), so
every test that converts is `slow`; the default run keeps the checks that need no converter.

int8 rule: top-1 agreement >= 90% AND mean logit cosine >= 0.95 on the calibration images
(lightnets.deploy.checks.verify_artifact, the rule `lightnets export` applies), plus a file size
that only int8 weights give. On an untrained network this is a weak test of accuracy: its top-1 on
noise is one class for every image and its logits share a large input-independent part. It does
catch wrong scales or zero points, a missing calibration and float fallbacks. Centring the logits on
the calibration images (the part that depends on the input) showed what it cannot: ExecuTorch
follows PyTorch's own PT2E simulation (cosine 0.99), LiteRT's STATIC conversion does not (cosine
0.1), and the simulation itself is far from fp32 there (cosine 0.8; random nets amplify small
errors).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch
from conftest import build_for_test

import lightnets
from lightnets.deploy import reparameterize, targets
from lightnets.deploy.checks import FLOAT_RTOL, relative_error, verify_artifact
from lightnets.errors import ConfigError, MissingDependencyError

# runtime -> (import names it needs, pip extra)
PACKAGES = {
    "executorch": (("executorch",), "executorch"),
    "litert": (("litert_torch", "ai_edge_litert"), "litert"),
    "ncnn": (("pnnx", "ncnn"), "ncnn"),
}
SUFFIX = {"executorch": ".pte", "litert": ".tflite", "ncnn": ".ncnn.param"}
# fp16 bounds (relative error vs fp32 PyTorch): measured on random-weight models, whose small
# logits inflate the relative error: LiteRT (fp16 weights, fp32 arithmetic) up to 1.2e-2
FP16_RTOL = 3e-2


def runtime_module(runtime: str):
    names, extra = PACKAGES[runtime]
    for name in names:
        pytest.importorskip(name, reason=f"{name} not installed: pip install lightnets[{extra}]")
    return importlib.import_module(f"lightnets.deploy.{runtime}")


def small_model():
    torch.manual_seed(0)
    model = lightnets.create_model("mobilenet_v2_w035", num_classes=10, small_input=True)
    return model.eval()


def export(runtime, model, x, tmp_path, precision="fp32", calibration=None):
    module = runtime_module(runtime)
    metadata = {"model_name": "test", "precision": precision}
    path = module.export(
        model, tmp_path / f"m{SUFFIX[runtime]}", x, precision, calibration, metadata
    )
    assert path.is_file()
    return module, path, metadata


# ---------------------------------------------------------------------- no converter needed


@pytest.mark.parametrize("runtime", sorted(PACKAGES))
def test_missing_package_names_the_extra(runtime, monkeypatch, tmp_path):
    for name in PACKAGES[runtime][0]:
        monkeypatch.setitem(sys.modules, name, None)  # import now raises ImportError
    module = importlib.import_module(f"lightnets.deploy.{runtime}")
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(MissingDependencyError, match=rf"pip install lightnets\[{runtime}\]"):
        module.export(small_model(), tmp_path / f"m{SUFFIX[runtime]}", x, "fp32", None, {})


@pytest.mark.parametrize("runtime", sorted(PACKAGES))
def test_unsupported_precision_is_a_config_error(runtime, tmp_path):
    module = importlib.import_module(f"lightnets.deploy.{runtime}")
    with pytest.raises(ConfigError, match="bf16"):
        module.export(small_model(), tmp_path / "m", torch.randn(1, 3, 32, 32), "bf16", None, {})


def test_ncnn_blob_names_and_bin_path(tmp_path):
    from lightnets.deploy.loaders import bin_path, blob_names

    param = tmp_path / "m.ncnn.param"
    param.write_text(
        "7767517\n4 4\n"
        "Input            in0     0 1 in0\n"
        "Convolution      conv_0  1 1 in0 1 0=8 1=3\n"
        "ShuffleChannel   shuf_0  1 1 1 2 0=2\n"
        "InnerProduct     fc_0    1 1 2 out0 0=10\n"
    )
    assert blob_names(param) == (["in0"], ["out0"])
    assert bin_path(param) == tmp_path / "m.ncnn.bin"
    with pytest.raises(ConfigError):
        bin_path(tmp_path / "m.param")


def test_int8_without_calibration_is_a_config_error():
    from lightnets.deploy.executorch import pt2e_int8

    with pytest.raises(ConfigError, match="calibration"):
        pt2e_int8(small_model(), torch.randn(2, 3, 32, 32), None, None)


def test_int8_graph_is_in_eval_mode():
    """PT2E's GraphModules start with training=True; LiteRT's converter then warned that the
    model was "converted in training mode" although the graph came from the eval-mode model."""
    runtime_module("executorch")
    from lightnets.deploy.executorch import int8_quantizer, pt2e_int8

    model, x = small_model(), torch.randn(2, 3, 32, 32)
    quantized = pt2e_int8(model, x, int8_quantizer(), [torch.randn(4, 3, 32, 32)])
    assert not any(module.training for module in quantized.modules())
    with torch.no_grad():
        assert torch.nn.functional.cosine_similarity(quantized(x), model(x)).min() > 0.9


# ---------------------------------------------------------------------- conversions (slow)


@pytest.mark.slow
@pytest.mark.parametrize("runtime", sorted(PACKAGES))
def test_fp32_matches_pytorch(runtime, tmp_path, capsys):
    model, x = small_model(), torch.randn(2, 3, 32, 32)
    module, path, metadata = export(runtime, model, x, tmp_path)
    # stdout is `lightnets deploy`'s table or JSON: a converter's progress must not land there
    assert capsys.readouterr().out == ""
    run = targets.get_target(runtime).load(path, threads=1)
    with torch.no_grad():
        for batch in (1, 2, 5):  # fixed-batch files are split and padded by the runner
            xb = torch.randn(batch, 3, 32, 32)
            out = torch.from_numpy(run(xb.numpy()))
            assert out.shape == (batch, 10)
            assert relative_error(out, model(xb)) < FLOAT_RTOL["fp32"]
    assert "batch" in metadata
    if hasattr(module, "read_metadata"):
        assert module.read_metadata(path)["model_name"] == "test"


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["litert", "ncnn"])
def test_fp16_is_close(runtime, tmp_path):
    model, x = small_model(), torch.randn(2, 3, 32, 32)
    module, path, _ = export(runtime, model, x, tmp_path, "fp16")
    run = targets.get_target(runtime).load(path, threads=1)
    xb = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert relative_error(run(xb.numpy()), model(xb)) < FP16_RTOL


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["executorch", "litert"])
def test_int8_agrees_with_fp32(runtime, tmp_path):
    model, x = small_model(), torch.randn(2, 3, 32, 32)
    torch.manual_seed(1)
    calibration = [torch.randn(8, 3, 32, 32) for _ in range(4)]
    module, path, metadata = export(runtime, model, x, tmp_path, "int8", calibration)
    run = targets.get_target(runtime).load(path, threads=1)
    check = verify_artifact(run, model, "int8", calibration, metadata["batch"])
    assert check.agreement >= 0.9 and check.cosine >= 0.95, check.summary()
    # int8 weights, not float kernels between quantize/dequantize pairs (litert-torch writes
    # those unless told STATIC): under half the fp32 weight bytes
    params = sum(p.numel() for p in model.parameters())
    assert path.stat().st_size < 0.5 * 4 * params


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["executorch", "litert"])
def test_int8_of_fixed_kernels_followed_by_batchnorm(runtime, tmp_path):
    """VGNet's fixed Gaussian/edge kernels are buffers; PT2E's conv-BN folding used to fail on
    them ("attribute 'weight' already exists"), so no VGNet exported to int8 here."""
    from lightnets.layers.fixed import FixedDepthwiseConv2d

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        FixedDepthwiseConv2d(8, ("gaussian", "sobel_x", "laplacian")),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 10),
    ).eval()
    model[2].running_mean.uniform_(-0.5, 0.5)
    model[2].running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 16, 16)
    calibration = [torch.randn(8, 3, 16, 16) for _ in range(2)]
    _, path, metadata = export(runtime, model, x, tmp_path, "int8", calibration)
    run = targets.get_target(runtime).load(path, threads=1)
    check = verify_artifact(run, model, "int8", calibration, metadata["batch"])
    assert check.cosine >= 0.95, check.summary()
    assert isinstance(model[1].weight, torch.Tensor) and "weight" in model[1]._buffers  # untouched


# channel shuffle, SE (hard-sigmoid and sigmoid gates), mixed kernels, VGNet's fixed kernels;
# exported re-parameterized, as `lightnets export` does
ZOO = ["shufflenet_v2_w050", "mixnet_s", "mobilenet_v3_small_w100", "vgnet_g_1_0mp"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("runtime", sorted(PACKAGES))
def test_zoo_fp32(runtime, name, tmp_path):
    model, x = build_for_test(name)
    fused = reparameterize(model.eval())
    module, path, _ = export(runtime, fused, x, tmp_path)
    run = targets.get_target(runtime).load(path, threads=1)
    with torch.no_grad():
        for xb in (x, x[:1]):  # the exported batch, and another one
            assert relative_error(run(xb.numpy()), model(xb)) < FLOAT_RTOL["fp32"]


def test_ncnn_exports_to_a_relative_path(tmp_path, monkeypatch):
    """`-o deploy` is relative: pnnx runs in a scratch folder, where it once looked for
    deploy/.pnnx.../model.pt and failed, blaming the model."""
    module = runtime_module("ncnn")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    model, x = small_model(), torch.randn(1, 3, 32, 32)
    path = module.export(model, Path("out/m.ncnn.param"), x, "fp32", None, {})
    assert (tmp_path / "out" / "m.ncnn.param").is_file() and path.is_absolute()
    with torch.no_grad():
        run = targets.get_target("ncnn").load(path)
        assert relative_error(run(x.numpy()), model(x)) < FLOAT_RTOL["fp32"]
