"""Old names work, with one note each, until lightnets._deprecation.REMOVED_IN; from then on none.

lightnets._deprecation.RENAMED lists every renamed keyword, function and attribute, and
lightnets.commands._flags.OLD_FLAGS every old CLI spelling. The cases below try each one, a test
checks that they are all tried, and `test_nothing_deprecated_is_left_at_its_removal_release` fails
once lightnets.__version__ reaches REMOVED_IN while any of them is still accepted: that release
removes the shims, their rows here, and OLD_FLAGS.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from torch import nn

import lightnets
from lightnets._deprecation import REMOVED_IN, RENAMED, renamed_kwargs
from lightnets.commands import _flags

PACKAGE = Path(lightnets.__file__).parent
SHIMS = re.compile(r"\b(renamed_kwargs|renamed_function|renamed_attribute)\(")


def _load_every_shim() -> list[tuple[str, str, str, str]]:
    """RENAMED once every module that uses a shim is imported (they register at import)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name != "_deprecation.py" and SHIMS.search(path.read_text()):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            importlib.import_module(".".join(p for p in parts if p != "__init__"))
    return sorted(set(RENAMED))


def _release(version: str) -> tuple[int, ...]:
    """(0, 2, 0) for "0.2.0", "0.2.0rc1" and "0.2.0.dev3": a pre-release counts as its release."""
    return tuple(int(n) for n in re.match(r"\d+(?:\.\d+)*", version).group().split("."))


def overdue(version: str) -> list[str]:
    """The old spellings and names that `version` still accepts but must not."""
    if _release(version) < _release(REMOVED_IN):
        return []
    return [f"{kind} {owner}.{old}" for kind, owner, old, _ in _load_every_shim()] + [
        f"flag {flag}" for flag in _flags.OLD_FLAGS
    ]


def test_nothing_deprecated_is_left_at_its_removal_release():
    assert overdue(lightnets.__version__) == [], (
        f"lightnets {lightnets.__version__} must no longer accept these (deprecated, removed in "
        f"{REMOVED_IN}); remove them, their cases in {Path(__file__).name} and OLD_FLAGS"
    )


def test_the_removal_check_bites_from_the_removal_release_on():
    everything = overdue("999.0")
    assert overdue("0.1.9") == [] and overdue(REMOVED_IN) == overdue("0.2.0rc1") == everything
    assert _release("0.10.0") > _release(REMOVED_IN)


# ----------------------------------------------------------------------- Python names
# Each case uses one old name and returns True when it did what the new name does.


def _conv() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())


def _depthwise_sizes(module: nn.Module) -> list[tuple[int, ...]]:
    from lightnets.layers import MixConv2d

    return [m.kernel_size for m in module.modules() if isinstance(m, MixConv2d) and m.depthwise]


def _card_keyword(tmp_path):
    return lightnets.ModelCard(paper="x", input_size=64).img_size == 64


def _card_attribute(tmp_path):
    return lightnets.ModelCard(paper="x", img_size=64).input_size == 64


def _profile_model(tmp_path):
    from lightnets.profiling import profile_model

    fast = dict(batch=(1,), threads=1, warmup=0, min_run_time=0.01)
    return profile_model(_conv(), resolution=20, **fast).img_size == 20


def _profile_layers(tmp_path):
    from lightnets.profiling import profile_layers

    report = profile_layers(_conv(), resolution=20, threads=1, warmup=0, min_run_time=0.01)
    return report.img_size == 20


def _example_input(tmp_path):
    from lightnets.profiling import example_input

    return example_input(_conv(), resolution=12).shape == (1, 3, 12, 12)


def _check_resolution(tmp_path):
    from lightnets.profiling import check_resolution

    check_resolution(_conv(), 16)
    return True


def _export_onnx(tmp_path):
    pytest.importorskip("onnxruntime")
    from lightnets.deploy import export_onnx

    return export_onnx(_conv(), tmp_path / "m.onnx", input_size=20) < 1e-4


def _check_input_size_of_an_export(tmp_path):
    from lightnets.deploy.artifacts import check_input_size

    loaded = SimpleNamespace(
        name="mixnet_s",
        model=SimpleNamespace(min_input=32),
        preprocessing=SimpleNamespace(img_size=40),
    )
    return check_input_size(loaded) == 40


def _check_input_size_of_a_comparison(tmp_path):
    from lightnets.compare.checks import check_input_size

    check_input_size(["squeezenet_1_1"], 64, 3)
    return True


def _scale_attribute(tmp_path):
    from lightnets.compare import SCALES

    return SCALES["tiny"].kernels == SCALES["tiny"].kernel_sizes == (3, 5, 7)


def _fixed_depthwise(tmp_path):
    from lightnets.layers import FixedDepthwiseConv2d

    return FixedDepthwiseConv2d(4, kernels="laplacian4").kinds == ("laplacian4",)


def _half_identity(tmp_path):
    from lightnets.blocks.vg_blocks import HalfIdentityBlock

    return HalfIdentityBlock(8, kernels=("sobel_x",)).dw.conv.kinds == ("sobel_x",)


def _vgnet(tmp_path):
    from lightnets.models.vgnet import EDGE, SIZES, VGNet

    return VGNet(SIZES["1_0mp"], kernels=EDGE, num_classes=2).head.dw.conv.kinds == EDGE


def _inverted_residual(tmp_path):
    from lightnets.blocks.inverted_residual import InvertedResidual

    return _depthwise_sizes(InvertedResidual(8, 8, kernels=(3, 5))) == [(3, 5)]


def _depthwise_separable(tmp_path):
    from lightnets.blocks.depthwise_separable import DepthwiseSeparableConv2d

    return _depthwise_sizes(DepthwiseSeparableConv2d(8, 8, kernels=(5,))) == [(5,)]


# (kind, owner, old name) of RENAMED -> its case
OLD_NAMES = {
    ("keyword", "ModelCard", "input_size"): _card_keyword,
    ("attribute", "ModelCard", "input_size"): _card_attribute,
    ("keyword", "profile_model", "resolution"): _profile_model,
    ("keyword", "profile_layers", "resolution"): _profile_layers,
    ("keyword", "example_input", "resolution"): _example_input,
    ("function", "lightnets.profiling.table", "check_resolution"): _check_resolution,
    ("keyword", "export_onnx", "input_size"): _export_onnx,
    ("function", "lightnets.deploy.artifacts", "check_input_size"): _check_input_size_of_an_export,
    ("function", "lightnets.compare.checks", "check_input_size"): _check_input_size_of_a_comparison,
    ("attribute", "Scale", "kernels"): _scale_attribute,
    ("keyword", "FixedDepthwiseConv2d", "kernels"): _fixed_depthwise,
    ("keyword", "HalfIdentityBlock", "kernels"): _half_identity,
    ("keyword", "VGNet", "kernels"): _vgnet,
    ("keyword", "InvertedResidual", "kernels"): _inverted_residual,
    ("keyword", "DepthwiseSeparableConv2d", "kernels"): _depthwise_separable,
}


def test_every_renamed_name_has_a_case():
    assert sorted(OLD_NAMES) == [(kind, owner, old) for kind, owner, old, _ in _load_every_shim()]


@pytest.mark.parametrize("key", sorted(OLD_NAMES), ids=lambda k: f"{k[0]}-{k[1]}.{k[2]}")
def test_old_name_still_works_with_a_deprecation_warning(key, tmp_path):
    (new,) = {n for kind, owner, old, n in _load_every_shim() if (kind, owner, old) == key}
    with pytest.warns(DeprecationWarning) as caught:
        assert OLD_NAMES[key](tmp_path)
    notes = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    old = key[2]
    assert any(
        old in note and f"is deprecated, use {new}" in note and f"lightnets {REMOVED_IN}" in note
        for note in notes
    ), notes


def test_renamed_kwargs_refuses_both_names_and_points_at_the_caller():
    @renamed_kwargs(old="new")
    def f(new=0):
        return new

    try:
        with pytest.warns(DeprecationWarning, match=r"f\(old=\) is deprecated, use new=") as w:
            assert f(old=3) == 3
        assert w[0].filename == __file__  # the caller's line, not the shim's
        with pytest.raises(TypeError, match="both old= and new="):
            f(old=1, new=2)
    finally:
        RENAMED.remove(("keyword", f.__qualname__, "old", "new"))


# ---------------------------------------------------------------------------- CLI flags


def _parse(command: str, argv: list[str]):
    module = importlib.import_module(f"lightnets.commands.{command}")
    parser = module.build_parser()
    return parser, _flags.parse_args(parser, argv)


def _exported_runtime(argv):
    from lightnets.commands import export

    parser, args = _parse("export", argv)
    export._model_and_runtime(parser, args)
    return args.runtime


# old spelling -> (command, argv, what the new flag's dest must hold)
OLD_FLAG_CASES = {
    "--resolution": ("profile", ["mixnet_s", "--resolution", "48"], lambda a: a.img_size == 48),
    "--input-size": ("profile", ["mixnet_s", "--input-size", "48"], lambda a: a.img_size == 48),
    "--json": ("profile", ["mixnet_s", "--json"], lambda a: a.format == "json"),
    "--out": ("evaluate", ["--out", "figs"], lambda a: a.output == "figs"),
    "--out-dir": ("inspect", ["kernels", "mixnet_s", "--out-dir", "d"], lambda a: a.output == "d"),
}


def test_every_old_flag_has_a_case():
    assert sorted([*OLD_FLAG_CASES, "--format onnx|torchscript"]) == sorted(_flags.OLD_FLAGS)


@pytest.mark.parametrize("flag", sorted(OLD_FLAG_CASES))
def test_old_flag_prints_the_note_and_sets_the_new_flag(flag, capsys):
    command, argv, holds = OLD_FLAG_CASES[flag]
    parser, args = _parse(command, argv)
    assert holds(args)
    err = capsys.readouterr().err
    note = f"{flag} is deprecated, use {_flags.OLD_FLAGS[flag]}; removed in lightnets {REMOVED_IN}"
    assert err.count("\n") == 1 and note in err
    assert not re.search(rf"{flag}(?![\w-])", parser.format_help())  # hidden


@pytest.mark.parametrize(
    ("old", "runtime"), [("onnx", "onnxruntime"), ("torchscript", "torchscript")]
)
def test_exports_old_format_flag_prints_the_note_and_sets_the_runtime(old, runtime, capsys):
    assert _exported_runtime(["mixnet_s", "-o", "m.file", "--format", old]) == runtime
    err = capsys.readouterr().err
    assert (
        f"--format is deprecated, use --runtime {runtime}; removed in lightnets {REMOVED_IN}" in err
    )
    assert _exported_runtime(["mixnet_s", "-o", "m.file"]) == "onnxruntime"
    assert capsys.readouterr().err == ""  # no note without the old flag
