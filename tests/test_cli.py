"""The `lightnets` entry point: version, help, dispatch and one-line errors."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import lightnets
from lightnets import cli
from lightnets.commands import layers as layers_table


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"lightnets {lightnets.__version__}"


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli.COMMANDS)


def test_unknown_command_is_an_error(capsys):
    assert cli.main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


def test_layers_table_lists_every_layer_with_its_paper(capsys):
    assert cli.main(["layers"]) == 0
    out = capsys.readouterr().out
    for name, module, paper, _ in layers_table.LAYERS:
        assert f"lightnets.{module}.{name}" in out
        assert paper in out


@pytest.mark.parametrize("name, module", [row[:2] for row in layers_table.LAYERS])
def test_every_listed_layer_exists(name, module):
    package = importlib.import_module(f"lightnets.{module}")
    assert isinstance(getattr(package, name), type)


def test_models_pattern_lists_only_matches_with_paper_figures(capsys):
    assert cli.main(["models", "mixnet*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines[1 : lines.index("")]]  # rows end at a blank line
    assert names == ["mixnet_l", "mixnet_m", "mixnet_s"]
    mixnet_s = next(line for line in lines if line.startswith("mixnet_s "))
    assert "4.10" in mixnet_s and "256" in mixnet_s and "75.8" in mixnet_s  # paper Table 2


def test_models_unknown_pattern_is_one_line_error(capsys):
    assert cli.main(["models", "no_such_net*"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lightnets models: error:") and "\n" not in err


def test_import_lightnets_stays_light():
    code = (
        "import sys, lightnets; lightnets.list_models();"
        "heavy = [m for m in ('matplotlib', 'onnx', 'onnxruntime', 'PIL', 'sklearn') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_flag_exits_with_usage_error(capsys):
    with pytest.raises(SystemExit) as err:
        cli.main(["layers", "--bogus"])
    assert err.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_ctrl_c_outside_training_is_one_line_and_status_130(monkeypatch, capsys):
    import lightnets.commands.models as models_command

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(models_command, "main", interrupted)
    assert cli.main(["models"]) == 130
    assert capsys.readouterr().err == "lightnets models: interrupted\n"
