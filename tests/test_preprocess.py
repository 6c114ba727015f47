"""One way to feed an image (lightnets.preprocess): training's validation, `lightnets eval` of a
checkpoint and of an exported artifact, `lightnets predict`, int8 calibration and the export
check give bit-identical tensors for the same image file, whatever its kind (non-square RGB,
palette with transparency, CMYK JPEG, grey) and for RGB and one-channel models.

Each path is taken as its command takes it, through the library functions the command calls, and
a recording model stands in for the network: what it receives is what the network would.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lightnets.checkpoints import LoadedModel
from lightnets.deploy import artifacts, checks
from lightnets.deploy.calibration import calibration_batches
from lightnets.evaluation import eval_images, evaluate_on
from lightnets.inference import classify_images
from lightnets.preprocess import Preprocessing, mean_std, model_input, read_image
from lightnets.train import run as train_run
from lightnets.train.config import TrainConfig
from lightnets.train.data import make_loader
from lightnets.train.evaluate import evaluate

CLASSES = ["a", "b"]
IMG_SIZE, CROP_PCT = 24, 0.875  # 45x37 px -> shorter side 27 (bicubic), central 24x24


class Recorder(nn.Module):
    """Logits of zeros for any input, keeping every input it was given."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # predict asks for the model's device
        self.inputs: list[torch.Tensor] = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return torch.zeros(len(x), len(CLASSES)) + self.anchor


def probe_image(path, kind: str) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)  # non-square: resize and crop
    img = Image.fromarray(pixels)
    if kind == "palette":  # a palette PNG with a transparent entry: read through RGBA
        img = img.quantize(64)
        img.info["transparency"] = 3
        img.save(path, transparency=3)
    elif kind == "cmyk":
        img.convert("CMYK").save(path.with_suffix(".jpg"), quality=90)
        path.with_suffix(".jpg").rename(path)
    elif kind == "grey":
        img.convert("L").save(path)
    else:
        img.save(path)


@pytest.fixture
def data(tmp_path, request):
    """DATA/train/{a,b}/ (what training needs to start) and DATA/val/a/probe.png, the image every
    path reads."""
    from PIL import Image

    root = tmp_path / "data"
    for c, name in enumerate(CLASSES):
        (root / "train" / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (30, 30), (80 * c + i, 40, 200)).save(
                root / "train" / name / f"{i}.png"
            )
    (root / "val" / "a").mkdir(parents=True)
    probe = root / "val" / "a" / "probe.png"
    probe_image(probe, request.param)
    return root, probe


def training_val_input(root, tmp_path, in_chans: int, cache: str) -> torch.Tensor:
    """What `lightnets train` validates on: its checks, its datasets, its loader, its loop."""
    cfg = TrainConfig(model="mobilenet_v2_w035", data=str(root), img_size=IMG_SIZE,
                      crop_pct=CROP_PCT, in_chans=in_chans, cache_images=cache,
                      run_dir=str(tmp_path / "run"), workers=0, progress=False)  # fmt: skip
    plan = train_run.check(cfg)
    splits, cfg = train_run.open_data(plan, is_main=True)
    assert splits.val.paths[0].endswith("probe.png") and (splits.val.arrays is None) == (
        cache == "off"
    )
    loader = make_loader(splits.val, 8, train=False, seed=0)
    mean, std = mean_std(plan.pre)  # as build_run makes them
    recorder = Recorder()
    evaluate(recorder, loader, device="cpu", mean=mean, std=std, num_classes=len(CLASSES))
    (x,) = recorder.inputs
    assert plan.pre == Preprocessing(IMG_SIZE, CROP_PCT, *_stats(in_chans))
    return x


def _stats(in_chans: int):
    from lightnets.preprocess import preprocessing
    from lightnets.registry import model_card

    cfg = TrainConfig(img_size=IMG_SIZE, crop_pct=CROP_PCT, in_chans=in_chans)
    pre = preprocessing(cfg, model_card("mobilenet_v2_w035"))
    return pre.mean, pre.std


@pytest.mark.parametrize("data", ["rgb", "palette", "cmyk", "grey"], indirect=True)
@pytest.mark.parametrize("in_chans", [3, 1])
def test_every_path_feeds_the_same_tensor(data, tmp_path, in_chans):
    root, probe = data
    pre = Preprocessing(IMG_SIZE, CROP_PCT, *_stats(in_chans))
    mode = "L" if in_chans == 1 else "RGB"
    inputs = {
        "train val (decoded each epoch)": training_val_input(root, tmp_path, in_chans, "off"),
        "train val (cached)": training_val_input(root, tmp_path / "c", in_chans, "on"),
    }

    recorder = Recorder()  # `lightnets eval --checkpoint RUN`
    result = evaluate_on(recorder, eval_images(str(root), CLASSES, pre), batch_size=4)
    assert result["images"] == 1 and result["skipped"] == []
    inputs["eval"] = recorder.inputs[0]

    recorder = Recorder()  # `lightnets predict`
    (prediction,) = classify_images(recorder, [str(probe)], CLASSES, pre, mode)
    assert prediction.error is None
    inputs["predict"] = recorder.inputs[0]

    calibration = calibration_batches([str(probe)], pre, in_chans)  # int8 calibration
    inputs["calibration"] = calibration[0]

    # `lightnets eval --model ARTIFACT`: the preprocessing its sidecar carries, the artifact run
    # on numpy arrays (lightnets.deploy.checks.ArtifactModule)
    loaded = LoadedModel(Recorder(), "mobilenet_v2_w035", pre, CLASSES, in_chans)
    sidecar = artifacts.artifact_metadata(loaded, "onnxruntime", "int8")
    assert Preprocessing.from_dict(sidecar) == pre
    seen = []

    def run(x: np.ndarray) -> np.ndarray:
        seen.append(torch.from_numpy(x.copy()))
        return np.zeros((len(x), len(CLASSES)), np.float32)

    images = eval_images(str(root), CLASSES, Preprocessing.from_dict(sidecar))
    evaluate_on(checks.ArtifactModule(run), images)
    inputs["eval --model artifact"] = seen.pop()

    # the export check runs the artifact and the PyTorch model on the calibration images
    reference = Recorder()
    checks.verify_artifact(run, reference, "fp32", calibration, name="probe")
    inputs["export check (artifact)"], inputs["export check (PyTorch)"] = (
        seen.pop(),
        reference.inputs[0],
    )

    expected = model_input(read_image(probe, pre)[None], pre)
    assert expected.shape == (1, in_chans, IMG_SIZE, IMG_SIZE) and expected.dtype == torch.float32
    differ = [name for name, x in inputs.items() if not torch.equal(x, expected)]
    assert differ == []
