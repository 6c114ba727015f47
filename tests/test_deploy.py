"""Deployment: merged MixConv2d, re-parameterization and verified export, each against the plain
PyTorch computation it replaces (split convs, un-folded BN, the trained model)."""

from __future__ import annotations

import json
import warnings

import onnx
import pytest
import torch
import torch.nn.functional as F
from conftest import build_for_test
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import lightnets
from lightnets.blocks import InvertedResidual
from lightnets.cli import main as cli
from lightnets.deploy import reparameterize
from lightnets.deploy.checks import relative_error
from lightnets.layers import ConvNormAct, MixConv2d
from lightnets.registry import model_builder

MODELS = lightnets.list_models()


@pytest.fixture(autouse=True)
def one_thread():
    # batch-1 convs on small maps: on a shared 2-core machine threads only contend
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def representative() -> list[str]:
    """One model per family file (the fewest parameters), plus the TF-padded MixNet."""
    best: dict[str, str] = {}
    for name in MODELS:
        family = model_builder(name).__module__
        params = lightnets.model_card(name).params_m or float("inf")
        if family not in best or params < (lightnets.model_card(best[family]).params_m or 1e9):
            best[family] = name
    extra = [n for n in ("mixnet_s", "tf_mixnet_s", "mobilenet_v2_mixk9") if n in MODELS]
    return sorted(set(best.values()) | set(extra))


REPRESENTATIVE = representative()


def randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics and affine, so that folding them is really exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(c, generator=g) + 1.0)
            if m.weight is not None:
                m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(c, generator=g) * 0.2)
    return model


# ------------------------------------------------------------------ MixConv2d impl="merged"

MIX_CONFIGS = {
    "dw_3579": dict(in_channels=30, out_channels=30, kernel_size=(3, 5, 7, 9)),
    "dw_s2_tf_same": dict(
        in_channels=30, out_channels=30, kernel_size=(3, 5, 7), stride=2, padding="tf_same"
    ),
    "dw_s2_same": dict(in_channels=30, out_channels=30, kernel_size=(3, 5), stride=2),
    "dw_dilated_bias": dict(
        in_channels=12, out_channels=12, kernel_size=(3, 5), dilation=(1, 2), bias=True
    ),
    "grouped_1x1_equal": dict(in_channels=8, out_channels=12, kernel_size=(1, 1), depthwise=False),
    "grouped_1x1_unequal": dict(
        in_channels=9, out_channels=12, kernel_size=(1, 1), depthwise=False
    ),
    "grouped_3x3_5x5": dict(in_channels=8, out_channels=12, kernel_size=(3, 5), depthwise=False),
}


@pytest.mark.parametrize("size", [16, 17])
@pytest.mark.parametrize("config", MIX_CONFIGS)
def test_merged_mixconv_matches_split_outputs_and_gradients(config, size):
    torch.manual_seed(0)
    split = MixConv2d(**MIX_CONFIGS[config]).train()
    merged = MixConv2d(**MIX_CONFIGS[config], impl="merged").train()
    merged.load_state_dict(split.state_dict())  # same keys: convs.i.weight
    x = torch.randn(2, split.in_channels, size, size, requires_grad=True)
    y_split, y_merged = split(x), merged(x)
    torch.testing.assert_close(y_merged, y_split, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y_split)
    y_split.backward(g)
    y_merged.backward(g)
    for (name, a), b in zip(split.named_parameters(), merged.parameters()):
        assert b.grad.shape == a.shape, name  # gradients land on the real (small) weights
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-4)


def test_merged_padding_stays_zero_after_an_optimizer_step():
    torch.manual_seed(0)
    conv = MixConv2d(12, 12, (3, 5, 7), impl="merged")
    assert sum(p.numel() for p in conv.parameters()) == 4 * (9 + 25 + 49)
    opt = torch.optim.SGD(conv.parameters(), lr=0.5)
    conv(torch.randn(2, 12, 9, 9)).square().sum().backward()
    opt.step()
    kernel = conv.merged_weight().detach()
    assert kernel.shape == (12, 1, 7, 7)
    border = torch.ones(7, 7, dtype=torch.bool)
    border[2:5, 2:5] = False  # the 3x3 group keeps only its centre
    assert kernel[:4, 0][:, border].abs().max() == 0
    torch.testing.assert_close(kernel[:4, :, 2:5, 2:5], conv.convs[0].weight)
    torch.testing.assert_close(kernel[4:8, :, 1:6, 1:6], conv.convs[1].weight)


def test_merged_is_one_conv_without_split_or_concat():
    conv = MixConv2d(12, 12, (3, 5, 7), stride=2, impl="merged")
    graph = torch.fx.symbolic_trace(conv).graph
    (x,) = [n for n in graph.nodes if n.op == "placeholder"]
    (out,) = [n for n in graph.nodes if n.op == "output"]
    # the activation goes through exactly one conv; cat/pad only build the kernel
    assert [u.target for u in x.users] == [F.conv2d] and out.args[0] in x.users
    assert torch.split not in [n.target for n in graph.nodes]


def test_merged_rejects_a_config_it_cannot_reproduce():
    # TF SAME at stride 2: a 1x1 kernel on an even size gets no pad, a merged 3x3 would get one
    with pytest.raises(ValueError, match="not exact"):
        MixConv2d(8, 8, (1, 3), stride=2, padding="tf_same", impl="merged")
    auto = MixConv2d(8, 8, (1, 3), stride=2, padding="tf_same", impl="auto")
    split = MixConv2d(8, 8, (1, 3), stride=2, padding="tf_same")
    split.load_state_dict(auto.state_dict())
    x = torch.randn(1, 8, 10, 10)
    torch.testing.assert_close(auto(x), split(x))
    with pytest.raises(ValueError, match="impl"):
        MixConv2d(8, 8, (3, 5), impl="fast")


# ------------------------------------------------------------------ reparameterize: blocks

BLOCKS = {
    "mixnet_block": dict(
        in_channels=24, out_channels=24, kernel_sizes=(3, 5, 7, 9), expand_groups=2,
        project_groups=2, se_channels=12, act_layer=nn.SiLU,
    ),
    "stride2_tf_same": dict(
        in_channels=24, out_channels=40, stride=2, kernel_sizes=(3, 5, 7), expand_groups=2,
        project_groups=2, se_channels=12, padding="tf_same", act_layer=nn.SiLU,
    ),
    "stride2_same": dict(
        in_channels=16, out_channels=24, stride=2, kernel_sizes=(3, 5), se_channels=4
    ),
    "dilated": dict(in_channels=16, out_channels=16, kernel_sizes=(3, 5), dilation=2),
}  # fmt: skip


@pytest.mark.parametrize("size", [17, 32])
@pytest.mark.parametrize("block", BLOCKS)
def test_reparameterized_block_equals_original(block, size):
    torch.manual_seed(0)
    model = randomize_norms(InvertedResidual(**BLOCKS[block])).eval()
    fused = reparameterize(model)
    x = torch.randn(2, model.expand.conv.in_channels, size, size)
    with torch.no_grad():
        assert relative_error(fused(x), model(x)) < 1e-5
    kinds = {type(m) for m in fused.modules()}
    assert not kinds & {nn.BatchNorm2d, MixConv2d}
    dw = fused.dw.conv
    mid = model.dw.conv.in_channels
    k = max(BLOCKS[block]["kernel_sizes"])
    assert dw.groups == mid and dw.kernel_size == (k, k)
    assert fused.expand.conv.groups == BLOCKS[block].get("expand_groups", 1)


def test_unequal_1x1_split_is_kept_split_but_folded_unless_asked():
    torch.manual_seed(0)
    # 15 input channels split in 2 groups: [8, 7]
    model = InvertedResidual(15, 16, 1, 6, (3, 5), expand_groups=2, project_groups=2)
    model = randomize_norms(model).eval()
    x = torch.randn(2, 15, 12, 12)
    kept = reparameterize(model)
    assert kept.reparam_report.kept_split == ["expand.conv"]
    assert isinstance(kept.expand.conv, MixConv2d)
    dense = reparameterize(model, merge_unequal=True)
    mid = model.dw.conv.in_channels
    assert dense.expand.conv.groups == 1 and dense.expand.conv.weight.shape == (mid, 15, 1, 1)
    with torch.no_grad():
        ref = model(x)
        assert relative_error(kept(x), ref) < 1e-5
        assert relative_error(dense(x), ref) < 1e-5
    assert not any(isinstance(m, nn.BatchNorm2d) for m in kept.modules())


def test_norm_after_activation_folds_into_a_following_1x1_conv_only():
    # VGNet order: conv -> act -> BN. The BN can only move forward, into a conv without padding
    # (a padded conv would see zeros where the BN would have produced its shift).
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(8),
        nn.Conv2d(8, 6, 1, groups=2), nn.ReLU(), nn.BatchNorm2d(6),
        nn.Conv2d(6, 6, 3, padding=1),
    )  # fmt: skip
    model = randomize_norms(model).eval()
    fused = reparameterize(model)
    assert fused.reparam_report.folded_norms == ["2"]
    assert fused.reparam_report.kept_norms == ["5"]
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        assert relative_error(fused(x), model(x)) < 1e-5


class _SharedConv(nn.Module):
    """One conv applied twice, each time followed by its own BN: neither may be folded."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn1, self.bn2 = nn.BatchNorm2d(4), nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn1(self.conv(x)) + self.bn2(self.conv(x))


class _Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4))

    def forward(self, x):
        return self.body(x) if x.sum() > -1e9 else x  # data-dependent: torch.fx cannot trace


def test_shared_conv_is_not_folded_and_untraceable_models_fall_back():
    shared = randomize_norms(_SharedConv()).eval()
    fused = reparameterize(shared)
    assert fused.reparam_report.kept_norms == ["bn1", "bn2"]
    model = randomize_norms(_Untraceable()).eval()
    with pytest.warns(UserWarning, match="cannot trace"):
        fused = reparameterize(model)
    assert fused.reparam_report.folded_norms == ["body.1"]
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        assert relative_error(fused(x), model(x)) < 1e-5


# ------------------------------------------------------------------ reparameterize: the zoo


def _check_model(name: str) -> None:
    model, x = build_for_test(name, batch=1)
    model = randomize_norms(model).eval()
    fused = reparameterize(model)
    with torch.no_grad():
        error = relative_error(fused(x), model(x))
    assert error < 1e-5, f"{name}: relative error {error:.1e}"
    assert not any(isinstance(m, (MixConv2d, nn.Dropout)) for m in fused.modules())


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_reparameterized_model_equals_original(name):
    _check_model(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in MODELS if n not in REPRESENTATIVE])
def test_reparameterized_model_equals_original_whole_zoo(name):
    _check_model(name)


def test_reparameterize_leaves_the_trained_model_alone_and_is_eval_only():
    model = lightnets.create_model("mixnet_s", num_classes=7).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = reparameterize(model)
    assert model.training and isinstance(model.stages[1][0].dw.conv, MixConv2d)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not fused.training and not any(p.requires_grad for p in fused.parameters())
    with pytest.raises(RuntimeError, match="inference"):
        fused.train()
    assert fused.eval() is fused
    report = fused.reparam_report
    assert report.kept_norms == [] and report.kept_split == []
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    # fewer modules to run: every ConvNormAct is down to its conv (+ a real activation)
    for block in (m for m in fused.modules() if isinstance(m, ConvNormAct)):
        assert [type(c) for c in block][0] is nn.Conv2d and len(block) <= 2
        assert not any(isinstance(c, nn.Identity) for c in block)


# ------------------------------------------------------------------ ONNX export


def test_reparameterized_mixnet_s_onnx_has_no_split_concat_or_norm(tmp_path):
    from lightnets.deploy import export_onnx
    from lightnets.deploy.onnx import op_counts

    model = randomize_norms(lightnets.create_model("mixnet_s", num_classes=7)).eval()
    path = tmp_path / "mixnet_s.onnx"
    error = export_onnx(reparameterize(model), path, 64, reference=model, metadata={"a": [1, 2]})
    assert error < 1e-4
    ops = op_counts(path)
    assert not {"Split", "Concat", "BatchNormalization"} & ops.keys()
    n_convs = sum(isinstance(m, nn.Conv2d) for m in reparameterize(model).modules())
    assert ops["Conv"] == n_convs  # one Conv per merged layer, nothing split
    proto = onnx.load(str(path))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    assert {p.key: p.value for p in proto.metadata_props} == {"a": "[1, 2]"}


@pytest.mark.slow
@pytest.mark.parametrize("name", REPRESENTATIVE)
@pytest.mark.parametrize("reparam", [True, False], ids=["reparam", "plain"])
def test_onnx_export_matches_pytorch(name, reparam, tmp_path):
    from lightnets.deploy import export_onnx
    from lightnets.deploy.onnx import op_counts

    model, x = build_for_test(name)
    model = randomize_norms(model).eval()
    exported = reparameterize(model) if reparam else model
    path = tmp_path / f"{name}.onnx"
    assert export_onnx(exported, path, x.shape[-1], reference=model) < 1e-4
    if reparam:
        kept = exported.reparam_report.kept_norms
        assert op_counts(path).get("BatchNormalization", 0) <= len(kept)


@pytest.mark.slow
def test_dynamo_exporter_at_opset_18(tmp_path):
    from lightnets.deploy import export_onnx

    model = randomize_norms(lightnets.create_model("tf_mixnet_s", num_classes=7)).eval()
    path = tmp_path / "m.onnx"
    assert export_onnx(reparameterize(model), path, 65, opset=18, reference=model) < 1e-4
    assert onnx.load(str(path)).opset_import[0].version == 18


# ------------------------------------------------------------------ `lightnets export`


def _checkpoint(tmp_path, name: str, classes: list[str]):
    from safetensors.torch import save_file

    model = randomize_norms(lightnets.create_model(name, num_classes=len(classes)))
    path = tmp_path / f"{name}.safetensors"
    meta = {"class_names": json.dumps(classes), "config": json.dumps({"model": name})}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), meta)
    return path, model.eval()


def test_export_cli_writes_verified_onnx_with_preprocessing(tmp_path, capsys):
    ckpt, model = _checkpoint(tmp_path, "mixnet_s", ["cat", "dog", "eel"])
    out = tmp_path / "m.onnx"
    assert (
        cli(["export", "mixnet_s", "--checkpoint", str(ckpt), "--img-size", "64", "-o", str(out)])
        == 0
    )
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    card = lightnets.model_card("mixnet_s")
    assert json.loads(meta["class_names"]) == ["cat", "dog", "eel"]
    assert json.loads(meta["mean"]) == list(card.mean) and json.loads(meta["std"]) == list(card.std)
    assert (meta["img_size"], meta["in_chans"]) == ("64", "3")
    assert meta["model_name"] == "mixnet_s" and meta["reparameterized"] == "true"
    import onnxruntime

    x = torch.randn(4, 3, 64, 64)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        assert relative_error(y, model(x)) < 1e-4  # the checkpoint's weights, batch 4
    assert "relative error" in capsys.readouterr().out
    from lightnets.cpu_class import cpu_class

    verification = json.loads((tmp_path / "m.onnx.json").read_text())["verification"]
    assert verification["cpu_class"] == cpu_class()
    assert verification["runtime_version"] == onnxruntime.__version__


def test_export_cli_torchscript(tmp_path):
    name = "squeezenet_1_1" if "squeezenet_1_1" in MODELS else REPRESENTATIVE[0]
    out = tmp_path / "m.pt"
    assert (
        cli(["export", name, "--runtime", "torchscript", "--img-size", "64", "-o", str(out)]) == 0
    )
    loaded = torch.jit.load(str(out))
    assert loaded(torch.randn(3, 3, 64, 64)).shape == (3, 1000)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nosuchnet"], "unknown model 'nosuchnet'"),
        (["mixnet_s", "--checkpoint", "missing.safetensors"], "missing.safetensors"),
        (["mixnet_s", "--opset", "3"], "opset"),
    ],
)
def test_export_cli_bad_input_is_one_line(argv, message, tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = cli(["export", *argv, "-o", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_export_cli_checkpoint_that_does_not_fit(tmp_path, capsys):
    ckpt, _ = _checkpoint(tmp_path, REPRESENTATIVE[0], ["a", "b"])
    other = next(
        n for n in REPRESENTATIVE if model_builder(n) is not model_builder(REPRESENTATIVE[0])
    )
    code = cli(["export", other, "--checkpoint", str(ckpt), "-o", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and f"holds {REPRESENTATIVE[0]}, not {other}" in err, err
    assert err.count("\n") == 1, err
    # a weights file without a config is checked tensor by tensor
    bare = tmp_path / "bare.pth"
    torch.save(lightnets.weights.read_state_dict(ckpt), bare)
    code = cli(["export", other, "--checkpoint", str(bare), "-o", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and "does not fit" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("where", ["file_as_dir", "missing_dir", "is_dir"])
def test_export_cli_unwritable_path_fails_before_exporting(where, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    out = {
        "file_as_dir": tmp_path / "afile" / "m.onnx",
        "missing_dir": tmp_path / "no" / "m.onnx",
        "is_dir": tmp_path,
    }[where]
    assert cli(["export", REPRESENTATIVE[0], "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lightnets export: error: -o ") and err.count("\n") == 1, err


# ------------------------------------------------------------------ beyond: layout, OpenVINO


def test_align_channels_is_exact_and_leaves_no_misaligned_grouped_conv():
    from lightnets.deploy.layout import align_channels
    from lightnets.layers import SqueezeExcite

    model = randomize_norms(lightnets.create_model("mixnet_s", num_classes=7)).eval()
    fused = reparameterize(model)
    aligned = align_channels(fused, block=16)
    for m in aligned.modules():
        if isinstance(m, nn.Conv2d) and 1 < m.groups < m.in_channels:
            assert (m.in_channels // m.groups) % 16 == 0 and (m.out_channels // m.groups) % 16 == 0
        if isinstance(m, SqueezeExcite):
            assert m.reduce.out_channels % 16 == 0 and m.expand.in_channels % 16 == 0
    grouped = [
        m for m in fused.modules() if isinstance(m, nn.Conv2d) and 1 < m.groups < m.in_channels
    ]
    assert grouped  # MixNet-S has split 1x1 convs to align in the first place
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert relative_error(aligned(x), model(x)) < 1e-5


def test_openvino_runs_the_reparameterized_export(tmp_path):
    pytest.importorskip("openvino")  # optional extra: pip install lightnets[openvino]
    from lightnets.deploy import export_onnx
    from lightnets.deploy.openvino import openvino_parity

    model = randomize_norms(lightnets.create_model("mixnet_s", num_classes=7)).eval()
    path = tmp_path / "m.onnx"
    export_onnx(reparameterize(model), path, 64, reference=model)
    assert openvino_parity(path, model, torch.randn(3, 3, 64, 64)) < 1e-4


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_profile_reparameterize_and_runtimes(runtime, capsys):
    if runtime == "openvino":
        pytest.importorskip("openvino")  # optional extra
    argv = ["profile", "mixnet_s", "--format", "json", "--batch", "1", "--min-time", "0.02",
            "--warmup", "0", "--no-progress", "--img-size", "64", "--threads", "1"]  # fmt: skip
    assert cli(argv) == 0
    plain = json.loads(capsys.readouterr().out)["models"][0]
    assert cli([*argv, "--reparameterize", "--runtime", runtime]) == 0
    fused = json.loads(capsys.readouterr().out)["models"][0]
    assert fused["runtime"] == runtime and fused["latency_ms"] > 0
    # the merged depthwise kernels are zero-padded to the largest size: more MACs, same model
    assert fused["macs"] > plain["macs"] and fused["model"] == plain["model"]


@pytest.mark.parametrize("runtime", ["eager", "onnxruntime", "openvino"])
def test_runtime_runners_compute_the_model(runtime, tmp_path):
    from lightnets.deploy.artifacts import check_runtime, make_runner

    try:
        check_runtime(runtime)
    except ImportError:
        pytest.skip(f"{runtime} not installed (optional extra)")
    model = randomize_norms(lightnets.create_model("mixnet_s", num_classes=7)).eval()
    x = torch.randn(1, 3, 64, 64)
    run = make_runner(runtime, reparameterize(model), x, 1, tmp_path)
    xb = torch.randn(3, 3, 64, 64)  # another batch size: the batch axis is dynamic
    out = run(xb)
    out = out[0] if isinstance(out, list) else out  # onnxruntime returns a list of outputs
    with torch.no_grad():
        assert relative_error(out, model(xb)) < 1e-4


def test_openvino_runner_refuses_a_graph_that_differs(monkeypatch, tmp_path):
    pytest.importorskip("openvino")
    from lightnets.deploy import artifacts

    monkeypatch.setattr(artifacts, "relative_error", lambda actual, expected: 1.0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3)).eval()
    with pytest.raises(ValueError, match="openvino output differs"):
        artifacts.make_runner("openvino", model, torch.randn(1, 3, 8, 8), 1, tmp_path)


@pytest.mark.parametrize("runtime, suffix, precision", [("onnxruntime", ".onnx", "fp16"),
                                                        ("onnxruntime", ".onnx", "fp32"),
                                                        ("openvino", ".xml", "fp16")])  # fmt: skip
def test_a_rejected_export_replaces_nothing(runtime, suffix, precision, tmp_path, capsys):
    """A good fp32 artifact, then an export that fails its check at the same path: the good file,
    its weights and its sidecar stay; the rejected one is kept beside them under another name."""
    pytest.importorskip(runtime)
    ckpt, _ = _checkpoint(tmp_path, "mobilenet_v2_w035", ["cat", "dog"])
    out = tmp_path / f"m{suffix}"
    argv = ["export", "--checkpoint", str(ckpt), "--runtime", runtime, "-o", str(out)]
    assert cli([*argv, "--img-size", "32"]) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.glob("m.*")}
    assert cli([*argv, "--img-size", "32", "--precision", precision, "--rtol", "1e-12"]) == 2
    err = capsys.readouterr().err
    assert "differs from PyTorch" in err and f"m.rejected{suffix}" in err, err
    after = {p.name: p.read_bytes() for p in tmp_path.glob("m.*") if ".rejected." not in p.name}
    assert after == before
    assert (tmp_path / f"m.rejected{suffix}").is_file()
    assert not list(tmp_path.glob("*.partial*"))
