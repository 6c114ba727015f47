"""The CPU's instruction-set class, and that the reduced precisions it offers are used."""

import importlib.util

import numpy as np
import pytest
import torch

import lightnets
from lightnets import cpu_class as cc
from lightnets.deploy import targets

needs_openvino = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="pip install lightnets[openvino]"
)

SAPPHIRE_RAPIDS = {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
                   "amx_tile", "amx_int8", "amx_bf16"}  # fmt: skip


@pytest.mark.parametrize(
    "flags, machine, label",
    [
        (SAPPHIRE_RAPIDS, "x86_64", "x86-64 AMX"),
        (SAPPHIRE_RAPIDS - {"amx_tile"}, "x86_64", "x86-64 AVX-512 VNNI BF16"),
        ({"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni"}, "x86_64",
         "x86-64 AVX-512 VNNI"),
        ({"avx2", "fma", "avx512f", "avx512bw", "avx512vl"}, "x86_64", "x86-64 AVX-512"),
        ({"avx2", "fma", "avx_vnni"}, "x86_64", "x86-64 AVX2 VNNI"),
        ({"avx2", "fma"}, "x86_64", "x86-64 AVX2"),
        ({"fp", "asimd", "asimddp", "i8mm", "bf16"}, "aarch64", "aarch64 NEON+dotprod+i8mm+bf16"),
        ({"fp", "asimd"}, "aarch64", "aarch64 NEON"),
    ],
)  # fmt: skip
def test_cpu_class_names_the_highest_class_the_flags_reach(flags, machine, label, monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert cc.cpu_class(flags, machine) == label


def test_cpu_class_names_a_onednn_cap(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    assert cc.cpu_class({"avx2", "fma"}, "x86_64") == "x86-64 AVX2 (oneDNN capped at AVX2)"
    assert not cc.onednn_computes_bf16()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    assert cc.onednn_computes_bf16()


@needs_openvino
def test_a_cpu_reporting_bf16_gets_bf16(monkeypatch):
    from lightnets.deploy.loaders import inference_precision

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    capabilities = ["BF16", "WINOGRAD", "FP32", "FP16", "INT8", "BIN", "EXPORT_IMPORT"]
    assert inference_precision("bf16", capabilities) == ("bf16", None)
    assert inference_precision("fp16", capabilities) == ("f16", None)
    assert inference_precision("bf16", ["FP32", "INT8"])[0] == "f32"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # OpenVINO fails to compile bf16 there
    hint, note = inference_precision("bf16", capabilities)
    assert hint == "f32" and "ONEDNN_MAX_CPU_ISA=AVX2" in note


@needs_openvino
def test_bf16_artifact_computes_in_bf16_where_the_cpu_has_it(tmp_path):
    """Fails when a CPU with bf16 arithmetic runs a bf16 artifact in f32 (as "BFP16" once did)."""
    import openvino as ov

    from lightnets.deploy import openvino as ovd
    from lightnets.deploy import sidecar

    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    expected = "bf16" if "BF16" in capabilities and cc.onednn_computes_bf16() else "f32"
    model = lightnets.create_model("mobilenet_v2_w035", num_classes=4).eval()
    path = tmp_path / "m.xml"
    ovd.export(model, path, torch.randn(2, 3, 32, 32), "bf16", None, {"precision": "bf16"})
    sidecar.write_sidecar(path, {"runtime": "openvino", "precision": "bf16"})
    run = targets.get_target("openvino").load(path)
    out = run(np.zeros((1, 3, 32, 32), np.float32))
    assert out.shape == (1, 4)
    assert run.inference_precision() == expected, cc.cpu_class()


@needs_openvino
def test_the_bf16_export_check_runs_the_artifact_in_bf16(tmp_path, capsys):
    """The export check once ran a bf16 IR in f32 (its sidecar, which says bf16, is written only
    after the check): relative error 9e-7 instead of bf16's ~1e-2."""
    import json

    import openvino as ov

    from lightnets import cli

    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    out = tmp_path / "m.xml"
    argv = ["export", "mobilenet_v2_w035", "--runtime", "openvino", "--precision", "bf16"]
    assert cli.main([*argv, "--img-size", "32", "-o", str(out)]) == 0, capsys.readouterr().err
    check = json.loads((tmp_path / "m.xml.json").read_text())["verification"]
    if "BF16" in capabilities and cc.onednn_computes_bf16():
        assert check["relative_error"] > 1e-5, check
    else:
        assert check["relative_error"] < 1e-4, check
    assert check["cpu_class"] == cc.cpu_class()


# oneDNN's names for the x86 classes below this CPU's, and the cpuinfo flags each needs
ONEDNN_LEVELS = {
    "AVX2": {"avx2", "fma"},
    "AVX512_CORE": {"avx512f", "avx512bw", "avx512vl"},
    "AVX512_CORE_VNNI": {"avx512f", "avx512_vnni"},
    "AVX512_CORE_BF16": {"avx512f", "avx512_vnni", "avx512_bf16"},
    "AVX512_CORE_AMX": {"amx_tile", "amx_int8", "amx_bf16"},
}
OPENVINO_TESTS = [
    "tests/test_cpu_class.py::test_bf16_artifact_computes_in_bf16_where_the_cpu_has_it",
    "tests/test_cpu_class.py::test_the_bf16_export_check_runs_the_artifact_in_bf16",
    "tests/test_quantize.py::test_openvino_int8_export_runs_and_agrees",
    "tests/test_deploy.py::test_openvino_runs_the_reparameterized_export",
]


@pytest.mark.slow
@needs_openvino
@pytest.mark.parametrize("level", sorted(ONEDNN_LEVELS))
def test_openvino_tests_pass_at_each_cpu_class_this_cpu_has(level):
    """OpenVINO's CPU plugin honours ONEDNN_MAX_CPU_ISA: an AMX machine also checks its AVX2 and
    AVX-512 paths, the way an artifact verified here will run on a smaller server."""
    import os
    import subprocess
    import sys

    if not ONEDNN_LEVELS[level] <= cc.cpu_flags():
        pytest.skip(f"this CPU ({cc.cpu_class()}) has no {level}")
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": level}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *OPENVINO_TESTS]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
