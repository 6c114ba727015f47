"""The eval, predict, export and inspect commands over one checkpoint loader, and the bad-input
battery: every mistake is one line on stderr with exit status 2, and nothing is lost or
overwritten. (Training's own battery, signals and resume, is in test_train*.py.)"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import lightnets
from lightnets import cli
from lightnets.checkpoints import load_checkpoint

MODEL = "mobilenet_v2_w035"
CLASSES = ("cat", "dog")


def make_images(root: Path, per_class: int = 3, size: int = 36) -> list[Path]:
    """root/<class>/i.png; the class is the mean brightness."""
    from PIL import Image

    rng = np.random.default_rng(0)
    files = []
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(40 + 150 * c, 20, (size, size, 3)), 0, 255)
            files.append(root / name / f"{i}.png")
            Image.fromarray(pixels.astype(np.uint8)).save(files[-1])
    return files


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A run directory as `lightnets train` leaves it: config, best/ and last/ checkpoints."""
    from lightnets.train.checkpoint import checkpoint_metadata, copy_checkpoint, save_checkpoint
    from lightnets.train.config import TrainConfig

    root = tmp_path_factory.mktemp("cmd")
    make_images(root / "data" / "train")
    make_images(root / "data" / "val")
    run_dir = root / "run"
    run_dir.mkdir()
    cfg = TrainConfig(model=MODEL, data=str(root / "data"), img_size=32, run_dir=str(run_dir))
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict()))
    torch.manual_seed(0)
    model = lightnets.create_model(MODEL, num_classes=2, small_input=True)
    meta = checkpoint_metadata(cfg.to_dict(), list(CLASSES), 1, 1)
    save_checkpoint(run_dir, "last", model, None, {"format": 1}, meta)
    copy_checkpoint(run_dir, "last", "best")
    return run_dir


def one_line_error(capsys, argv: list[str]) -> str:
    """Run the CLI, expect exit status 2 and exactly one line on stderr; return that line."""
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# --- one loader for every command


def test_loader_rebuilds_the_trained_model(run):
    loaded = load_checkpoint(run)
    assert loaded.name == MODEL and loaded.class_names == list(CLASSES)
    assert loaded.model.stem.conv.stride == (1, 1)  # small_input: the run used 32 px
    assert loaded.preprocessing.img_size == 32 and not loaded.model.training
    saved = lightnets.weights.read_state_dict(run / "best" / "model.safetensors")
    got = loaded.model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in saved.items())


def test_loader_asks_for_a_model_name_when_a_file_has_no_config(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(lightnets.create_model(MODEL, num_classes=3).state_dict(), path)
    with pytest.raises(lightnets.errors.ConfigError, match="name the model"):
        load_checkpoint(path)
    assert load_checkpoint(path, MODEL).model.num_classes == 3  # classes from the tensor shapes


def test_loader_refuses_another_models_checkpoint(run):
    with pytest.raises(lightnets.errors.CheckpointError, match="holds mobilenet_v2_w035"):
        load_checkpoint(run, "mixnet_s")


# --- eval, predict, export, inspect on a good checkpoint


def test_eval_on_other_data_keeps_the_runs_confusion_matrix(run, tmp_path, capsys):
    assert cli.main(["eval", "--checkpoint", str(run), "--workers", "0"]) == 0
    own = run / "confusion.png"
    before = own.read_bytes()
    other = tmp_path / "holiday"
    make_images(other, per_class=1)
    code = cli.main(["eval", "--checkpoint", str(run), "--data", str(other), "--workers", "0"])
    assert code == 0, capsys.readouterr().err
    assert own.read_bytes() == before
    assert (run / "confusion-holiday.png").is_file()


def test_eval_prints_no_top5_for_two_classes(run, capsys):
    assert cli.main(["eval", "--checkpoint", str(run), "--workers", "0", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "top5" not in result and result["images"] == 6


def test_predict_expands_folders_and_reports_unreadable_images(run, tmp_path, capsys):
    folder = tmp_path / "imgs"
    make_images(folder, per_class=1)
    (folder / "cat" / "broken.png").write_bytes(b"not an image")
    code = cli.main(["predict", str(folder), "--checkpoint", str(run), "--format", "json"])
    captured = capsys.readouterr()
    assert code == 2
    results = {Path(r["image"]).relative_to(folder).as_posix(): r for r in json.loads(captured.out)}
    assert set(results) == {"cat/0.png", "cat/broken.png", "dog/0.png"}
    assert [r["top"] is None for r in results.values()] == [False, True, False]
    assert captured.err.count("\n") == 1 and "broken.png" in captured.err


@pytest.mark.parametrize("how", ["--checkpoint RUN", "RUN in place of MODEL"])
def test_export_uses_the_runs_size_and_classes(how, run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "m.onnx"
    source = ["--checkpoint", str(run)] if how.startswith("--") else [str(run)]
    assert cli.main(["export", *source, "-o", str(out)]) == 0, capsys.readouterr()
    from lightnets.deploy.loaders import read_onnx_metadata as read_metadata

    meta = read_metadata(out)
    assert json.loads(meta["class_names"]) == list(CLASSES)
    assert (meta["img_size"], meta["in_chans"]) == ("32", "3")


def test_old_flag_spellings_still_work_with_a_note(run, tmp_path, capsys):
    out = tmp_path / "m.pt"
    argv = ["export", MODEL, "--checkpoint", str(run), "-o", str(out), "--format", "torchscript"]
    assert cli.main([*argv, "--resolution", "40"]) == 0
    captured = capsys.readouterr()
    assert "--resolution is deprecated, use --img-size; removed in lightnets 0.2.0" in captured.err
    assert "--format is deprecated, use --runtime torchscript" in captured.err
    assert "(N, 3, 40, 40)" in captured.out


def test_features_next_to_kernels_keeps_both_summaries(run, tmp_path, capsys):
    out = tmp_path / "inspect"
    base = ["inspect", "kernels", MODEL, "--checkpoint", str(run), "-o", str(out), "--no-plots"]
    assert cli.main(base) == 0
    kernels_summary = (out / "summary.txt").read_text()
    image = next((run.parent / "data" / "val" / "cat").iterdir())
    argv = ["inspect", "features", MODEL, "--checkpoint", str(run), "--image", str(image)]
    assert cli.main([*argv, "-o", str(out), "--no-plots"]) == 0
    assert (out / "summary.txt").read_text() == kernels_summary
    assert (out / "features_summary.txt").is_file()


# --- the battery: corrupt, foreign and unsafe checkpoints for every command


def _commands(checkpoint: Path, tmp_path: Path, image: Path) -> dict[str, list[str]]:
    c = str(checkpoint)
    return {
        "eval": ["eval", "--checkpoint", c, "--workers", "0"],
        "predict": ["predict", str(image), "--checkpoint", c],
        "export": ["export", "--checkpoint", c, "-o", str(tmp_path / "x.onnx")],
        "inspect kernels": ["inspect", "kernels", MODEL, "--checkpoint", c, "-o", str(tmp_path)],
        "inspect features": [
            *("inspect", "features", MODEL, "--checkpoint", c, "--image", str(image)),
            *("-o", str(tmp_path)),
        ],
    }


class Exploit:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (type(self.target).touch, (self.target,))


def _bad_checkpoints(run: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (checkpoint, text the error must contain)."""
    import shutil

    truncated = tmp_path / "truncated_run"
    shutil.copytree(run, truncated)
    for tag in ("best", "last"):
        weights = truncated / tag / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    noise = tmp_path / "noise.pth"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps(Exploit(tmp_path / "pwned")))
    empty = tmp_path / "empty_run"
    empty.mkdir()
    return {
        "truncated": (truncated, "corrupt or truncated safetensors"),
        "random bytes": (noise, "noise.pth"),
        "malicious pickle": (evil, "never loads"),
        "missing": (tmp_path / "nope.safetensors", "nope.safetensors"),
        "empty run dir": (empty, "no best/ or last/"),
    }


@pytest.mark.parametrize(
    "kind", ["truncated", "random bytes", "malicious pickle", "missing", "empty run dir"]
)
def test_bad_checkpoint_is_a_one_line_error_for_every_command(kind, run, tmp_path, capsys):
    checkpoint, expected = _bad_checkpoints(run, tmp_path)[kind]
    image = next((run.parent / "data" / "val" / "dog").iterdir())
    for command, argv in _commands(checkpoint, tmp_path / "out", image).items():
        (tmp_path / "out").mkdir(exist_ok=True)
        err = one_line_error(capsys, argv)
        assert expected in err, (command, err)
        assert "weights_only=False" not in err and "weights_only" not in err
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "out" / "x.onnx").exists()


def test_bad_values_fail_before_any_work(run, tmp_path, capsys, monkeypatch):
    import lightnets.checkpoints

    def no_loading(*args, **kwargs):
        raise AssertionError("the checkpoint was read before the arguments were checked")

    monkeypatch.setattr(lightnets.checkpoints, "load_checkpoint", no_loading)
    out = tmp_path / "m.onnx"
    export = ["export", MODEL, "--checkpoint", str(run)]
    assert "opset" in one_line_error(capsys, [*export, "-o", str(out), "--opset", "5"])
    missing_dir = tmp_path / "no" / "such" / "m.onnx"
    assert "does not exist" in one_line_error(capsys, [*export, "-o", str(missing_dir)])
    assert not out.exists()
    for argv in (
        [*export, "-o", str(out), "--img-size", "0"],
        ["predict", "x.png", "--checkpoint", str(run), "--topk", "0"],
        ["eval", "--checkpoint", str(run), "--batch-size", "-1"],
        ["eval", "--checkpoint", str(run), "--device", "gpu9"],
    ):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2
        assert "expected" in capsys.readouterr().err


def test_too_small_an_export_size_is_refused_before_reparameterizing(run, tmp_path, capsys):
    err = one_line_error(
        capsys,
        ["export", "--checkpoint", str(run), "-o", str(tmp_path / "m.pt"), "--img-size", "7"],
    )
    assert "--img-size 7" in err and "at least" in err
    assert not (tmp_path / "m.pt").exists()


def test_unknown_names_suggest_close_ones(capsys):
    assert "did you mean" in one_line_error(capsys, ["export", "mixnet_sm", "-o", "x.onnx"])
    assert cli.main(["trian"]) == 2
    assert "did you mean train" in capsys.readouterr().err


@pytest.mark.parametrize("num_classes", [-3, 2.5, True])
def test_impossible_class_counts_are_config_errors(num_classes):
    with pytest.raises(lightnets.errors.ConfigError, match="num_classes"):
        lightnets.create_model(MODEL, num_classes=num_classes)


def test_a_misspelt_builder_argument_suggests_the_right_one():
    with pytest.raises(lightnets.errors.ConfigError, match="did you mean width"):
        lightnets.create_model("mixnet_s", widht=0.5)


def test_a_bug_inside_a_builder_is_not_dressed_up_as_a_user_error(monkeypatch):
    from lightnets import registry

    def broken(**kwargs):
        raise TypeError("a real bug")

    lightnets.list_models()  # the families are registered
    monkeypatch.setitem(registry._BUILDERS, MODEL, broken)
    with pytest.raises(TypeError, match="a real bug"):
        lightnets.create_model(MODEL)


def test_the_cli_keeps_tracebacks_for_bugs(monkeypatch):
    import lightnets.commands.models as models_command

    def buggy(argv):
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(models_command, "main", buggy)
    with pytest.raises(ValueError, match="invariant"):
        cli.main(["models"])


def test_run_files_follow_the_umask(tmp_path):
    from lightnets.files import write_text

    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
