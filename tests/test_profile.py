"""lightnets.profiling and `lightnets profile`: counts against closed forms, the CLI's outputs,
noise detection, and the table renderer (lightnets.tables) the commands share.

Latencies are measurements, so only their sanity (positive, warm-up and repeats ran) is asserted;
noisy and quiet timings are injected.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils import benchmark
from torch.utils.flop_counter import FlopCounterMode

import lightnets
from lightnets import profiling as P
from lightnets import registry
from lightnets.blocks import InvertedResidual
from lightnets.cli import main as cli_main
from lightnets.commands import profile as profile_cli
from lightnets.layers import ConvNormAct, FixedDepthwiseConv2d, MixConv2d, SqueezeExcite
from lightnets.models._common import LightNet
from lightnets.profiling import timing
from lightnets.tables import Column, render

FAST = ["--batch", "1,2", "--min-time", "0.01", "--warmup", "1", "--threads", "1", "--no-progress"]


def macs(module: nn.Module, *shape: int) -> int:
    return P.count_macs(module, torch.randn(*shape)).macs


# ---------------------------------------------------------------------------- MACs, closed form


def test_plain_conv_macs():
    # every output value: C_in * k * k multiply-adds
    conv = nn.Conv2d(3, 16, 3, stride=1, padding=1)
    assert macs(conv, 1, 3, 32, 32) == 16 * 32 * 32 * (3 * 3 * 3)


def test_strided_conv_macs_use_the_output_size():
    conv = nn.Conv2d(8, 12, 5, stride=2, padding=2, bias=False)
    assert macs(conv, 2, 8, 33, 33) == 2 * 12 * 17 * 17 * (8 * 5 * 5)


def test_depthwise_conv_macs():
    conv = nn.Conv2d(24, 24, 3, padding=1, groups=24, bias=False)
    assert macs(conv, 1, 24, 20, 20) == 24 * 20 * 20 * 3 * 3


def test_grouped_conv_macs():
    conv = nn.Conv2d(12, 18, 3, padding=1, groups=3, bias=False)
    assert macs(conv, 1, 12, 10, 10) == 18 * 10 * 10 * (12 // 3) * 3 * 3


def test_linear_macs():
    assert macs(nn.Linear(64, 10), 5, 64) == 5 * 64 * 10


@pytest.mark.parametrize("kernels", [(3,), (3, 5, 7), (3, 5, 7, 9)])
def test_mixconv_macs(kernels):
    conv = MixConv2d(30, 30, kernels)
    splits = conv.out_splits  # channels per kernel size
    assert macs(conv, 1, 30, 16, 16) == sum(c * 16 * 16 * k * k for c, k in zip(splits, kernels))


def test_all_ops_add_bn_and_activation_per_element():
    block = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
    counts = P.count_macs(block, torch.randn(1, 3, 16, 16))
    out = 8 * 16 * 16
    assert counts.macs == out * 27
    assert counts.all_ops == counts.macs + 2 * out  # BN scale+shift (1) and ReLU (1) per value


def test_all_ops_of_squeeze_excite():
    se = SqueezeExcite(16, 4)
    counts = P.count_macs(se, torch.randn(1, 16, 8, 8))
    squeeze_excite = 16 * 4 + 4 * 16  # the two 1x1 convs on a 1x1 map
    pooled, gate, act, scale = 16 * 8 * 8, 16, 4, 16 * 8 * 8
    assert counts.macs == squeeze_excite
    assert counts.all_ops == squeeze_excite + pooled + act + gate + scale


def test_residual_add_counts_one_op_per_element():
    block = InvertedResidual(8, 8, 1, 2.0).eval()
    counts = P.count_macs(block, torch.randn(1, 8, 6, 6))
    mid = 16
    px = 6 * 6
    conv = px * (8 * mid + mid * 9 + mid * 8)
    bn_act = px * (mid * 2 + mid * 2 + 8)  # expand BN+ReLU, dw BN+ReLU, project BN
    assert counts.macs == conv
    assert counts.all_ops == conv + bn_act + 8 * px  # + the skip connection's add


# Ops that move or allocate data and do no arithmetic (count 0 in "all ops").
DATA_MOVEMENT = {
    "view",
    "_unsafe_view",
    "t",
    "transpose",
    "clone",
    "cat",
    "split_with_sizes",
    "split",
    "empty",
    "constant_pad_nd",
    "detach",
    "expand",
    "permute",
    "reshape",
    "slice",
    "select",
    "unsqueeze",
    "squeeze",
    "alias",
    "_to_copy",
    "copy_",
    "randn",
}


def test_every_arithmetic_op_of_the_layer_library_is_counted(monkeypatch):
    """An activation or pooling op missing from ELEMENTWISE_OPS would silently count 0."""
    seen = set()
    original = FlopCounterMode._count_flops

    def spy(self, func_packet, out, args, kwargs):
        seen.add(func_packet)
        return original(self, func_packet, out, args, kwargs)

    monkeypatch.setattr(FlopCounterMode, "_count_flops", spy)
    model = nn.Sequential(
        ConvNormAct(3, 16, 3, 2, act_layer=nn.Hardswish),
        nn.PReLU(16),
        nn.ReLU6(inplace=True),
        nn.SiLU(),
        nn.Sigmoid(),
        nn.Hardsigmoid(),
        InvertedResidual(16, 16, 1, 3, (3, 5), se_channels=4, act_layer=nn.SiLU),
        FixedDepthwiseConv2d(16, stride=2),
        nn.MaxPool2d(3, 2, 1),
        nn.AvgPool2d(2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )
    P.count_macs(model, torch.randn(1, 3, 32, 32))
    uncounted = {
        op.__name__
        for op in seen
        if op not in P.ELEMENTWISE_OPS and op not in P.MAC_OPS and op.__name__ not in DATA_MOVEMENT
    }
    assert uncounted == set()


def test_count_macs_restores_training_mode():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    P.count_macs(model, torch.randn(1, 3, 8, 8))
    assert model.training


def test_mobilenet_v1_at_224_is_568_7m_macs():
    # MobileNets (arXiv:1704.04861) Table 8: 569M mult-adds for 1.0 MobileNet-224
    model = lightnets.create_model("mobilenet_v1_w100")
    counted = P.count_macs(model, torch.randn(1, 3, 224, 224)).macs
    assert round(counted / 1e6, 1) == 568.7


# ---------------------------------------------------------------------------- params and memory


def test_params_split_trainable_and_fixed():
    model = nn.Sequential(ConvNormAct(3, 8, 3), FixedDepthwiseConv2d(8, "gaussian", kernel_size=5))
    counts = P.count_params(model)
    assert counts.trainable == 3 * 8 * 3 * 3 + 2 * 8  # conv weight + BN weight and bias
    assert counts.fixed == 8 * 5 * 5  # the Gaussian bank; BN running stats are not kernels
    assert counts.frozen == 0
    model[0].conv.weight.requires_grad_(False)
    counts = P.count_params(model)
    assert (counts.trainable, counts.frozen, counts.learned) == (16, 216, 232)


def test_peak_memory_is_the_largest_set_of_live_activations():
    # Sequential frees each activation once the next one exists: the peak is max(A+B, B+C), not
    # the sum of all three.
    chain = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.Conv2d(8, 16, 3, padding=1, bias=False),
        nn.Conv2d(16, 4, 3, padding=1, bias=False),
    )
    a, b, c = (ch * 32 * 32 * 4 for ch in (8, 16, 4))  # float32 bytes
    assert P.measure_memory(chain, torch.randn(1, 3, 32, 32)) == max(a + b, b + c)


# ---------------------------------------------------------------------------- latency


def test_latency_runs_warmup_then_timed_repeats():
    calls = []
    x = torch.randn(3, 4)

    def fn(batch):
        calls.append(batch.shape[0])
        return batch * 2

    latency = P.measure_latency(fn, x, threads=1, warmup=4, min_run_time=0.01)
    assert latency.median_s > 0 and latency.iqr_s >= 0
    assert latency.runs >= 1 and latency.warmup == 4 and latency.batch == 3
    assert len(calls) >= latency.warmup + latency.runs  # + blocked_autorange's own probe
    assert latency.throughput == pytest.approx(3 / latency.median_s)


def test_latency_rejects_bad_settings():
    with pytest.raises(ValueError, match="warmup"):
        P.measure_latency(lambda x: x, torch.zeros(1), warmup=-1)
    with pytest.raises(ValueError, match="min_run_time"):
        P.measure_latency(lambda x: x, torch.zeros(1), min_run_time=0)


# ---------------------------------------------------------------------------- a tiny zoo model


def tiny_profile_net(num_classes: int = 1000, in_chans: int = 3) -> LightNet:
    """A two-stage LightNet with MixConv, SE, a skip and a fixed Gaussian conv."""
    stem = ConvNormAct(in_chans, 8, 3, 2)
    stages = nn.Sequential(
        nn.Sequential(
            InvertedResidual(8, 8, 1, 2.0, (3, 5), se_channels=2),
            FixedDepthwiseConv2d(8, "gaussian"),
        ),
        nn.Sequential(InvertedResidual(8, 16, 2, 2.0)),
    )
    return LightNet(
        stem,
        stages,
        ConvNormAct(16, 32),
        in_chans=in_chans,
        num_classes=num_classes,
        num_features=32,
        stage_channels=(8, 16),
        stage_strides=(1, 2),
        stem_stride=2,
        min_input=16,
    )


TINY_CARD = registry.ModelCard(
    paper="test",
    params_m=0.04,
    macs_m=1.0,
    top1=60.0,
    img_size=32,
    min_input=16,
    ref_params=40000,
    ref_macs_m=1.1,
)


@pytest.fixture
def tiny(monkeypatch):
    """Register tiny_profile_net for one test only (the zoo-wide tests never see it)."""
    registry._load_families()
    monkeypatch.setitem(registry._BUILDERS, "tiny_profile_net", tiny_profile_net)
    monkeypatch.setitem(registry._CARDS, "tiny_profile_net", TINY_CARD)
    return "tiny_profile_net"


def test_profile_model_against_its_parts(tiny):
    model = lightnets.create_model(tiny)
    prof = P.profile_model(model, batch=(1, 2), threads=1, warmup=1, min_run_time=0.01)
    params = P.count_params(model)
    counts = P.count_macs(model, torch.randn(1, 3, 32, 32))
    assert prof.img_size == 32  # the card's
    assert (prof.params, prof.fixed, prof.macs, prof.all_ops) == (
        params.learned,
        params.fixed,
        counts.macs,
        counts.all_ops,
    )
    assert prof.fixed == 8 * 9
    assert prof.d_params_pct == pytest.approx(100 * (params.learned / 1e6 - 0.04) / 0.04)
    assert prof.d_macs_pct == pytest.approx(100 * (counts.macs / 1e6 - 1.0) / 1.0)
    assert (prof.paper_top1, prof.ref_params_m, prof.ref_macs_m) == (60.0, 0.04, 1.1)
    assert prof.latency_ms > 0 and prof.throughput_ips > 0 and prof.peak_mem_bytes > 0
    assert (prof.latency_batch, prof.throughput_batch) == (1, 2)
    # at another image size the paper's MACs do not apply
    other = P.profile_model(model, img_size=48, batch=(1,), threads=1, warmup=0, min_run_time=0.01)
    assert other.d_macs_pct is None and other.paper_macs_m is None
    assert other.throughput_ips is None


def test_profile_model_rejects_a_too_small_img_size(tiny):
    with pytest.raises(ValueError, match="too small"):
        P.profile_model(lightnets.create_model(tiny), img_size=8)


def test_layer_profile_partitions_the_model(tiny):
    model = lightnets.create_model(tiny)
    rows = P.layer_profile(model, torch.randn(1, 3, 32, 32), threads=1, warmup=1, min_run_time=0.01)
    names = [r.name for r in rows]
    assert names == [
        "stem",
        "stages.0.0",
        "stages.0.1",
        "stages.1.0",
        "head",
        "pool",
        "classifier",
        "(between blocks)",
    ]
    total = P.count_macs(model, torch.randn(1, 3, 32, 32))
    assert sum(r.macs for r in rows) == total.macs
    assert sum(r.all_ops for r in rows) == total.all_ops
    assert sum(r.params for r in rows) == P.count_params(model).learned
    assert sum(r.time_pct for r in rows) == pytest.approx(100.0)
    assert all(r.time_ms >= 0 for r in rows[:-1])


def test_op_profile_finds_the_convolutions(tiny):
    model = lightnets.create_model(tiny).eval()
    x = torch.randn(1, 3, 32, 32)
    ops = P.op_profile(P.eager_runner(model, x, 1, None), x, threads=1, runs=2)
    assert any("conv" in o.op for o in ops)
    assert sum(o.time_pct for o in ops) == pytest.approx(100.0)


# ---------------------------------------------------------------------------- the CLI


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli_main(["profile", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_has_every_column_and_the_machine(tiny, capsys):
    code, out, _ = run_cli(capsys, tiny, *FAST, "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert {"cpu", "threads", "torch", "device"} <= set(report["machine"])
    assert report["machine"]["threads"] == 1
    (row,) = report["models"]
    assert {c.key for c in P.COLUMNS} <= set(row)
    assert row["model"] == tiny and row["latency_ms"] > 0


def test_cli_csv_has_every_column(tiny, capsys):
    code, out, _ = run_cli(capsys, tiny, *FAST, "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 1 and {c.key for c in P.COLUMNS} <= set(rows[0])
    assert float(rows[0]["macs_m"]) > 0


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_cli_table_shows_every_column_and_footnotes(tiny, capsys, fmt):
    code, out, _ = run_cli(capsys, tiny, *FAST, "--format", fmt)
    assert code == 0
    header = out.splitlines()[0]
    for column in P.profile_columns([]):
        if column.key != "throughput_ips":
            assert column.header in header
    assert "img/s b2" in header and "ms b1" in header
    assert "MACs M: multiply-accumulates" in out and "machine:" in out


def test_cli_plot_writes_a_png(tiny, capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "pareto.png"
    code, _, _ = run_cli(capsys, tiny, *FAST, "--plot", str(path))
    assert code == 0
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_cli_layers(tiny, capsys):
    code, out, _ = run_cli(capsys, tiny, *FAST, "--layers", "--top", "3", "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert len(report["blocks"]) == 8 and report["ops"]
    code, out, _ = run_cli(capsys, tiny, *FAST, "--layers", "--top", "3")
    assert code == 0 and "by operator" in out


def test_cli_unknown_model_is_one_line_exit_2(tiny, capsys):
    code, out, err = run_cli(capsys, "tiny_profile_nett")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "unknown model 'tiny_profile_nett'" in err
    assert "tiny_profile_net" in err  # the registry's close match


def test_cli_pattern_without_match_is_exit_2(capsys):
    code, _, err = run_cli(capsys, "no_such_family_*")
    assert code == 2 and err.count("\n") == 1 and "no model matches" in err


def test_cli_too_small_img_size_is_one_line_exit_2_before_measuring(tiny, capsys, monkeypatch):
    monkeypatch.setattr(P, "profile_model", _must_not_measure)
    code, out, err = run_cli(capsys, tiny, "--img-size", "8")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "--img-size 8 is too small" in err and "min_input 16" in err


def test_cli_old_resolution_flag_still_works_with_a_note(tiny, capsys):
    code, out, err = run_cli(capsys, tiny, *FAST, "--resolution", "48", "--format", "json")
    assert code == 0 and json.loads(out)["models"][0]["img_size"] == 48
    assert "--resolution is deprecated, use --img-size; removed in lightnets 0.2.0" in err


def test_cli_layers_needs_one_model(tiny, capsys):
    code, _, err = run_cli(capsys, tiny, tiny.replace("net", "*"), "mixnet_s", "--layers")
    assert code == 2 and "--layers profiles one model" in err


def test_cli_default_set_skips_unregistered_names(tiny, capsys, monkeypatch):
    monkeypatch.setattr(profile_cli, "HEADLINE", (tiny, "not_a_registered_model"))
    code, out, err = run_cli(capsys, *FAST, "--format", "csv")
    assert code == 0 and "skipping unregistered headline models: not_a_registered_model" in err
    assert len(list(csv.DictReader(io.StringIO(out)))) == 1


def test_cli_onnxruntime_runtime(tiny, capsys):
    pytest.importorskip("onnxruntime")
    code, out, _ = run_cli(capsys, tiny, *FAST, "--runtime", "onnxruntime", "--format", "json")
    assert code == 0
    (row,) = json.loads(out)["models"]
    assert row["runtime"] == "onnxruntime" and row["latency_ms"] > 0


def test_missing_runtime_package_names_the_pip_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real(name, *a),
    )
    with pytest.raises(ImportError, match=r"pip install lightnets\[onnx\]"):
        P.check_runtime("onnxruntime")


def test_cli_cuda_without_cuda_is_exit_2(tiny, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run_cli(capsys, tiny, "--device", "cuda")
    assert code == 2 and "CUDA is not available" in err and err.count("\n") == 1


# ---------------------------------------------------------------------------- fixed bugs


def _must_not_measure(*args, **kwargs):
    raise AssertionError("a model was measured although the arguments were bad")


def _fake_blocked_autorange(median_s: float, iqr_s: float, blocks: int = 10):
    """A stand-in for Timer.blocked_autorange: `blocks` blocks of one call each."""

    def blocked_autorange(self, min_run_time=0.2, **kwargs):
        return SimpleNamespace(
            median=median_s, iqr=iqr_s, number_per_run=1, raw_times=[median_s] * blocks
        )

    return blocked_autorange


def _other_cores(monkeypatch, cores: float) -> None:
    """Make every CpuLoad report `cores` used by other processes."""

    def exit_(self, *exc):
        self.cores = cores

    monkeypatch.setattr(timing.CpuLoad, "__exit__", exit_)


def test_noisy_spread_is_named_in_the_footer(tiny, capsys, monkeypatch):
    # bug: a latency inflated by other work was printed without a warning
    monkeypatch.setattr(benchmark.Timer, "blocked_autorange", _fake_blocked_autorange(2e-3, 1e-3))
    _other_cores(monkeypatch, 0.0)
    code, out, _ = run_cli(capsys, tiny, *FAST)
    assert code == 0
    (note,) = [line for line in out.splitlines() if line.startswith("noisy:")]
    assert "tiny_profile_net" in note and "IQR 50% of the median" in note and "b1" in note


def test_busy_cpu_is_named_in_the_footer_and_json(tiny, capsys, monkeypatch):
    # a steady neighbour inflates every block alike: a small spread, but a busy CPU
    monkeypatch.setattr(benchmark.Timer, "blocked_autorange", _fake_blocked_autorange(2e-3, 1e-5))
    _other_cores(monkeypatch, 64.0)
    code, out, _ = run_cli(capsys, tiny, *FAST)
    assert code == 0
    assert "noisy: tiny_profile_net" in out and "other processes used 64.0 of" in out
    code, out, _ = run_cli(capsys, tiny, *FAST, "--format", "json")
    assert "other processes used" in json.loads(out)["models"][0]["noise"]


def test_quiet_timing_has_no_noise_note(tiny, capsys, monkeypatch):
    monkeypatch.setattr(benchmark.Timer, "blocked_autorange", _fake_blocked_autorange(2e-3, 1e-5))
    _other_cores(monkeypatch, 0.0)
    code, out, _ = run_cli(capsys, tiny, *FAST)
    assert code == 0 and "noisy" not in out


def test_latency_noise_rules():
    quiet = P.Latency(1e-3, 1e-5, 1, 40, 2, threads=2, blocks=10, other_cores=0.1)
    assert quiet.noise(cpus=2) is None
    spread = P.Latency(1e-3, 5e-4, 1, 40, 2, threads=2, blocks=10)
    assert "IQR 50%" in spread.noise(cpus=2)
    assert P.Latency(1e-3, 5e-4, 1, 2, 2, threads=2, blocks=2).noise(cpus=2) is None  # no IQR
    busy = P.Latency(1e-3, 1e-5, 1, 40, 2, threads=2, blocks=10, other_cores=1.0)
    assert "other processes used 1.0 of 2 cores" in busy.noise(cpus=2)
    # one thread on 8 cores: a neighbour on 4 of the other 7 takes nothing the timing needed
    spare = P.Latency(1e-3, 1e-5, 1, 40, 2, threads=1, blocks=10, other_cores=4.0)
    assert spare.noise(cpus=8) is None


def test_cpu_load_reads_proc_stat():
    ticks = P.cpu_ticks()
    if ticks is None:
        pytest.skip("no /proc/stat here")
    busy, total = ticks
    assert 0 <= busy <= total
    with P.CpuLoad() as load:
        sum(range(10000))
    assert load.cores is not None and load.cores >= 0


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal(tiny, capsys):
    # bug: with stderr not a terminal the tqdm bar disabled itself and nothing showed for minutes
    fast = [a for a in FAST if a != "--no-progress"]
    code, _, err = run_cli(capsys, tiny, *fast, "--format", "csv")
    assert code == 0 and err == "[1/1] tiny_profile_net ...\n"
    code, _, err = run_cli(capsys, tiny, *fast, "--format", "csv", "--no-progress")
    assert code == 0 and err == ""


@pytest.mark.parametrize("where", ["missing_dir", "is_dir"])
def test_unwritable_plot_fails_before_measuring(where, tiny, capsys, monkeypatch, tmp_path):
    # bug: an unwritable --plot path failed only after the whole profile
    monkeypatch.setattr(P, "profile_model", _must_not_measure)
    path = {"missing_dir": tmp_path / "no" / "p.png", "is_dir": tmp_path}[where]
    code, out, err = run_cli(capsys, tiny, *FAST, "--plot", str(path))
    assert code == 2 and out == "" and err.count("\n") == 1 and "--plot" in err, err


def test_plot_without_matplotlib_fails_before_measuring(tiny, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(P, "profile_model", _must_not_measure)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    code, _, err = run_cli(capsys, tiny, *FAST, "--plot", str(tmp_path / "p.png"))
    assert code == 2 and "pip install lightnets[plot]" in err and err.count("\n") == 1


def test_reparameterized_counts_get_a_footnote(tiny, capsys):
    # bug: --reparameterize changed the params/MACs columns without saying so
    code, out, _ = run_cli(capsys, tiny, *FAST)
    assert code == 0 and "re-parameterized" not in out
    code, out, _ = run_cli(capsys, tiny, *FAST, "--reparameterize")
    assert code == 0
    (note,) = [line for line in out.splitlines() if line.startswith("re-parameterized:")]
    assert "BN folded" in note and "MACs" in note
    code, out, _ = run_cli(capsys, tiny, *FAST, "--reparameterize", "--format", "json")
    assert json.loads(out)["models"][0]["reparameterized"] is True


def test_unknown_pattern_names_close_matches(tiny, capsys):
    # bug: a pattern matching nothing gave no hint
    code, out, err = run_cli(capsys, "tiny_profil_*")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "no model matches 'tiny_profil_*'; did you mean" in err and "tiny_profile_net" in err


def test_too_small_img_size_for_one_of_the_default_set_fails_before_measuring(
    tiny, capsys, monkeypatch
):
    monkeypatch.setattr(profile_cli, "HEADLINE", (tiny, "mobilefacenet"))
    monkeypatch.setattr(P, "profile_model", _must_not_measure)
    code, _, err = run_cli(capsys, "--img-size", "100")
    assert code == 2 and err.count("\n") == 1 and "too small for mobilefacenet" in err


def test_layers_busy_cpu_is_named_in_the_footer(tiny, capsys, monkeypatch):
    _other_cores(monkeypatch, 64.0)
    code, out, _ = run_cli(capsys, tiny, *FAST, "--layers")
    assert code == 0 and "noisy: other processes used 64.0 of" in out


# ---------------------------------------------------------------------------- lightnets.tables

ROWS = [{"name": "a", "n": 1, "x": 0.5}, {"name": "bb", "n": None, "x": 12.25, "extra": "e"}]
# fmt: off
TABLE_COLUMNS = (
    Column("name", "name", code=True),
    Column("n",    "n",    "d",   "n: a count."),
    Column("x",    "x",    ".1f"),
)
# fmt: on


def test_render_table_aligns_text_left_and_numbers_right():
    assert render(ROWS, TABLE_COLUMNS, notes=["last line"]).splitlines() == [
        "name  n     x",
        "----  -  ----",
        "a     1   0.5",
        "bb    -  12.2",
        "",
        "n: a count.",
        "last line",
    ]
    assert render(ROWS, TABLE_COLUMNS, rule=False).splitlines()[1].startswith("a ")


def test_render_markdown_csv_json():
    md = render(ROWS, TABLE_COLUMNS, "markdown").splitlines()
    assert md[0] == "| name | n |    x |" and md[1] == "|:-----|--:|-----:|"
    assert md[2] == "| `a`  | 1 |  0.5 |" and md[-1] == "- n: a count."
    rows = list(csv.DictReader(io.StringIO(render(ROWS, TABLE_COLUMNS, "csv"))))
    assert rows[1] == {"name": "bb", "n": "", "x": "12.25", "extra": "e"}  # every key, exact
    data = json.loads(render(ROWS, TABLE_COLUMNS, "json", json_key="items", json_extra={"m": 1}))
    assert data == {"m": 1, "columns": {"n": "n: a count."}, "items": ROWS}
