"""Architecture files (lightnets.models.arch): the zoo's tables round-trip exactly, every bad file
is one ConfigError, and a trained mixnet_custom's checkpoint rebuilds without its file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from test_commands import make_images, one_line_error

import lightnets
from lightnets import cli
from lightnets.errors import ConfigError
from lightnets.models.arch import (
    Architecture,
    check_fits,
    read_arch,
    smallest_input,
    to_toml,
    write_arch,
)
from lightnets.profiling import count_macs, count_params, example_input

# the other way to write rows in TOML: one [[rows]] table each
TINY = """\
stem = 8
head = 32

[[rows]]
repeats = 1
out = 8
stride = 1
expand = 1
kernels = [3]

[[rows]]
repeats = 2
out = 16
stride = 2
expand = 3
kernels = [3, 5]
pw_groups = [2, 2]
se = 0.25
act = "swish"
"""


def tiny_file(tmp_path: Path, text: str = TINY, name: str = "tiny.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- the zoo's tables, written and read back, build the zoo's networks


@pytest.mark.parametrize("name", ["mixnet_s", "mixnet_m", "mixnet_l"])
@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_zoo_tables_round_trip_param_mac_and_key_exact(name, suffix, tmp_path):
    path = tmp_path / f"{name}{suffix}"
    write_arch(Architecture.from_model_name(name), path)
    assert read_arch(path) == Architecture.from_model_name(name)
    torch.manual_seed(0)
    zoo = lightnets.create_model(name, num_classes=7)
    custom = lightnets.create_model("mixnet_custom", arch=path, num_classes=7)
    assert type(custom) is type(zoo) and custom.drop_rate == zoo.drop_rate
    assert {k: v.shape for k, v in custom.state_dict().items()} == {
        k: v.shape for k, v in zoo.state_dict().items()
    }
    assert count_params(custom) == count_params(zoo)
    x = example_input(zoo, 64)
    assert count_macs(custom, x).macs == count_macs(zoo, x).macs
    custom.load_state_dict(zoo.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(custom.eval()(x), zoo.eval()(x), rtol=0, atol=0)


def test_mixnet_s_macs_at_224_equal_the_zoo_model():
    arch = Architecture.from_model_name("mixnet_s")
    custom = lightnets.create_model("mixnet_custom", arch=arch.to_dict())
    x = example_input(custom, 224)
    assert count_macs(custom, x).macs == count_macs(lightnets.create_model("mixnet_s"), x).macs


def test_dict_round_trip_is_plain_json():
    arch = Architecture.from_model_name("mixnet_l")
    values = json.loads(json.dumps(arch.to_dict()))
    assert Architecture.from_dict(values) == arch
    assert values["width"] == 1.3 and values["rows"][3]["kernels"] == [3, 5, 7, 9]


def test_toml_is_a_readable_table(tmp_path):
    text = to_toml(Architecture.from_model_name("mixnet_s"))
    rows = [line for line in text.splitlines() if line.startswith("  {")]
    assert len(rows) == 11 and len({row.index("stride") for row in rows}) == 1  # aligned
    assert "kernels = [3, 5, 7, 9, 11]" in text and "stem = 16" in text


def test_builder_arguments_override_the_table():
    model = lightnets.create_model("mixnet_custom", arch=Architecture.from_model_name("mixnet_m"),
                                   width=1.3)  # fmt: skip
    assert count_params(model) == count_params(lightnets.create_model("mixnet_l"))
    assert model.arch.width == 1.3  # what a checkpoint stores is what was built


def test_mixnet_custom_needs_an_architecture_and_is_listed_apart():
    with pytest.raises(ConfigError, match="needs an architecture") as err:
        lightnets.create_model("mixnet_custom")
    assert "\n" not in str(err.value)
    assert "mixnet_custom" not in lightnets.list_models()
    assert "mixnet_custom" in lightnets.list_models("mixnet*", include_custom=True)
    assert lightnets.model_card("mixnet_custom").needs_arch


# --- every mistake is one ConfigError that says where and what

BAD_FIELDS = {
    "unknown top-level field": ("stride = 2\n" + TINY, "unknown field 'stride'"),
    "misspelt field": (TINY.replace("head =", "haed ="), "did you mean 'head'"),
    "misspelt row field": (TINY.replace("kernels = [3]\n", "kernel = [3]\n"),
                           "row 1: unknown field 'kernel' (did you mean 'kernels'"),
    "missing field": (TINY.replace("stem = 8\n", ""), "missing field 'stem'"),
    "zero width": ("width = 0\n" + TINY, "width must be a positive number"),
    "negative depth": ("depth = -1.0\n" + TINY, "depth must be a positive number"),
    "zero channels": (TINY.replace("out = 16", "out = 0"), "row 2: out must be >= 1"),
    "zero stem": (TINY.replace("stem = 8", "stem = 0"), "stem must be >= 1"),
    "even kernel": (TINY.replace("[3, 5]", "[3, 4]"), "row 2: kernel 4 is even"),
    "stride 3": (TINY.replace("stride = 2", "stride = 3"), "row 2: stride must be 1 or 2"),
    "unknown act": (TINY.replace('"swish"', '"swsh"'), "did you mean 'swish'"),
    "bool as int": (TINY.replace("repeats = 2", "repeats = true"), "repeats must be int"),
    "three pw groups": (TINY.replace("[2, 2]", "[2, 2, 2]"), "pw_groups must be a list of 2"),
    "no rows": ("stem = 8\nhead = 32\nrows = []\n", "rows must be a non-empty list"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_FIELDS)
def test_bad_field_is_one_config_error_naming_the_file(case, tmp_path):
    text, message = BAD_FIELDS[case]
    path = tiny_file(tmp_path, text)
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        read_arch(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_unparsable_toml_and_json_name_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"tiny.toml: .*line 2"):
        read_arch(tiny_file(tmp_path, TINY.replace("head = 32", "head = = 32")))
    with pytest.raises(ConfigError, match=r"tiny.json: .*line 2"):
        read_arch(tiny_file(tmp_path, '{"stem": 8,\n "head": }', "tiny.json"))


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        read_arch(tmp_path / "gone.toml")
    with pytest.raises(ConfigError, match="use a .toml or .json file"):
        read_arch(tiny_file(tmp_path, TINY, "tiny.yaml"))


def test_check_fits_names_the_row_and_the_smallest_size(tmp_path):
    arch = read_arch(tiny_file(tmp_path))
    assert smallest_input(arch, small_input=True) == 5  # the 5x5 kernel on the stride-2 map
    check_fits(arch, 5, small_input=True)
    with pytest.raises(ConfigError, match=r"row 2: kernel 5 is larger than its 2x2 feature map"):
        check_fits(arch, 4, small_input=True)
    s = Architecture.from_model_name("mixnet_s")
    check_fits(s, 224)
    with pytest.raises(ConfigError, match="needs at least 129 px"):
        check_fits(s, 128)  # row 11's 9x9 kernels on a 4x4 map
    with pytest.raises(ConfigError, match="reduce the input 32x, leaving less than 1 px"):
        check_fits(s, 16)


# --- the command line: --arch, and one line with exit status 2 for each mistake


def test_arch_command_writes_and_checks(tmp_path, capsys):
    out = tmp_path / "s.json"
    assert cli.main(["arch", "mixnet_s", "-o", str(out)]) == 0
    assert read_arch(out) == Architecture.from_model_name("mixnet_s")
    assert "fits inputs from 129 px" in capsys.readouterr().err
    assert cli.main(["arch", str(out), "--img-size", "224"]) == 0
    assert "stem = 16" in capsys.readouterr().out


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    good = tiny_file(tmp_path)
    bad = tiny_file(tmp_path, TINY.replace("[3, 5]", "[3, 6]"), "bad.toml")
    s = tmp_path / "s.toml"
    write_arch(Architecture.from_model_name("mixnet_s"), s)
    assert "kernel 6 is even" in one_line_error(capsys, ["arch", str(bad)])
    assert "no such file" in one_line_error(capsys, ["profile", "--arch", str(tmp_path / "x.toml")])
    assert "needs at least 129 px" in one_line_error(
        capsys, ["profile", "--arch", str(s), "--img-size", "64"]
    )
    assert "--arch FILE" in one_line_error(capsys, ["profile", "mixnet_custom"])
    assert "kernel 6 is even" in one_line_error(
        capsys, ["train", "--arch", str(bad), "--data", "digits"]
    )
    err = one_line_error(capsys, ["train", "--arch", str(good), "--model", "mixnet_s"])
    assert "--arch builds mixnet_custom" in err
    err = one_line_error(
        capsys, ["export", "mixnet_s", "--arch", str(good), "-o", str(tmp_path / "m.onnx")]
    )
    assert "--arch builds mixnet_custom" in err
    assert "needs at least 65 px" in one_line_error(
        capsys, ["train", "--arch", str(s), "--data", "digits", "--run-dir", str(tmp_path / "r")]
    )  # MixNet-S's 11x11 kernels at the digits' 32 px
    assert not (tmp_path / "r").exists()


def test_profile_measures_a_table_beside_a_zoo_model(tmp_path, capsys):
    argv = ["profile", "--arch", str(tiny_file(tmp_path)), "--img-size", "32", "--batch", "1",
            "--min-time", "0.01", "--warmup", "0", "--format", "json", "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    rows = json.loads(capsys.readouterr().out)["models"]
    assert [r["model"] for r in rows] == ["mixnet_custom (tiny.toml)"]
    model = lightnets.create_model("mixnet_custom", arch=tmp_path / "tiny.toml")
    assert rows[0]["params"] == count_params(model).trainable


# --- a checkpoint carries its table


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A mixnet_custom run, 1 epoch on 8 tiny images, whose architecture file is then deleted."""
    root = tmp_path_factory.mktemp("arch_run")
    make_images(root / "data" / "train", per_class=4, size=32)
    make_images(root / "data" / "val", per_class=2, size=32)
    arch, run = tiny_file(root), root / "run"
    argv = [
        "train",
        "--arch",
        str(arch),
        "--data",
        str(root / "data"),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--run-dir",
        str(run),
        "--workers",
        "0",
        "--no-progress",
    ]
    assert cli.main(argv) == 0
    arch.unlink()
    return run  # fmt: skip


def test_a_trained_custom_net_evaluates_without_its_file(trained, tmp_path, capsys):
    assert read_arch(trained / "arch.toml") == read_arch(tiny_file(tmp_path))  # the run's copy
    capsys.readouterr()
    assert (
        cli.main(["eval", "--checkpoint", str(trained), "--workers", "0", "--format", "json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["model"] == "mixnet_custom"
    weights = trained / "best" / "model.safetensors"  # a weights file alone carries it too
    assert lightnets.checkpoints.load_checkpoint(weights).model.arch == read_arch(
        tmp_path / "tiny.toml"
    )
    other = tiny_file(tmp_path, TINY.replace("head = 32", "head = 64"), "other.toml")
    with pytest.raises(lightnets.errors.CheckpointError, match="carries its own architecture"):
        lightnets.checkpoints.load_checkpoint(trained, arch=str(other))  # fmt: skip


@pytest.mark.slow
def test_a_trained_custom_net_exports_to_onnx_without_its_file(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    assert cli.main(["export", "--checkpoint", str(trained), "-o", str(tmp_path / "m.onnx")]) == 0
    assert (tmp_path / "m.onnx").is_file()
