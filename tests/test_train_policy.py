"""Size-aware training defaults, the decoded-image cache and what the run header says about the
data (lightnets.train.policy)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

import lightnets
from lightnets import cli
from lightnets.train import policy
from lightnets.train.config import TrainConfig
from lightnets.train.data import ImageDataset
from lightnets.train.transforms import RandomPadCrop, eval_transform, to_uint8_tensor


def write_folder(root: Path, sizes=((32, 32),) * 4, classes=("a", "b"), modes=("RGB",)) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i, (w, h) in enumerate(sizes):
            pixels = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            img = Image.fromarray(pixels).convert(modes[i % len(modes)])
            img.save(root / c / f"{i}.png")


CARD = lightnets.model_card("mixnet_s")


def test_small_images_get_pad_and_crop_and_the_whole_image_at_eval():
    cfg = policy.choose(TrainConfig(img_size=32), CARD, None)
    assert (cfg.train_crop, cfg.crop_pct, cfg.scale) == ("pad", 1.0, (0.08, 1.0))
    lines = policy.describe(cfg, TrainConfig(img_size=32), None)
    assert "pad 4 + random 32x32 crop" in lines[-1] and "whole image" in lines[-1]
    assert "chosen for 32-px images" in lines[-1]


def test_imagenet_size_keeps_imagenet_defaults():
    cfg = policy.choose(TrainConfig(img_size=224), CARD, None)
    assert (cfg.train_crop, cfg.crop_pct, cfg.scale) == ("resize", CARD.crop_pct, (0.08, 1.0))


def test_explicit_choices_are_kept():
    given = TrainConfig(img_size=32, train_crop="resize", scale=(0.5, 1.0), crop_pct=0.9)
    cfg = policy.choose(given, CARD, None)
    assert (cfg.train_crop, cfg.crop_pct, cfg.scale) == ("resize", 0.9, (0.5, 1.0))
    assert "chosen for" not in policy.describe(cfg, given, None)[-1]


def test_an_explicit_scale_means_the_resized_crop_at_any_size():
    cfg = policy.choose(TrainConfig(img_size=32, scale=(0.7, 1.0)), CARD, None)
    assert (cfg.train_crop, cfg.scale, cfg.crop_pct) == ("resize", (0.7, 1.0), 1.0)


def test_a_folder_of_small_images_trains_at_their_size():
    cfg = policy.choose(TrainConfig(), CARD, native_side=36)
    assert cfg.img_size == 36
    assert "the images' median side" in policy.describe(cfg, TrainConfig(), 36)[0]
    assert policy.choose(TrainConfig(), CARD, native_side=500).img_size == CARD.img_size


def test_pad_crop_is_a_shift_of_the_zero_padded_image():
    from PIL import Image

    pixels = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    rng = random.Random(5)
    out = np.asarray(RandomPadCrop(32, 4)(Image.fromarray(pixels), rng))
    rng = random.Random(5)
    x, y = rng.randint(0, 8), rng.randint(0, 8)
    padded = np.pad(pixels, ((4, 4), (4, 4), (0, 0)))
    assert np.array_equal(out, padded[y : y + 32, x : x + 32])


def test_data_notes_name_sizes_modes_and_classes_the_run_cannot_measure(tmp_path):
    from lightnets.train.data import open_splits

    write_folder(tmp_path / "train", sizes=((24, 24), (40, 30), (32, 32)), modes=("RGB", "L"))
    (tmp_path / "train" / "c").mkdir()
    (tmp_path / "train" / "c" / "only.png").write_bytes((tmp_path / "train/a/0.png").read_bytes())
    write_folder(tmp_path / "val", sizes=((32, 32),), classes=("a", "b"))
    tf = eval_transform(32, 1.0)
    splits = open_splits(str(tmp_path), "folder", mode="RGB", train_transform=tf, eval_transform=tf)
    notes = policy.data_notes(splits.train_stats, 32, "RGB", "train")
    assert any("sizes vary (24-40 px)" in n for n in notes)
    assert any("5 image(s) smaller than 32 px are upscaled" in n for n in notes)  # 3 + 2
    assert any("converted to RGB: 2 L image(s)" in n for n in notes)
    split = policy.split_notes(splits.class_names, splits.train.labels, splits.val.labels)
    assert any("no images of 1 class(es) (c)" in n for n in split)
    assert any("one image only for c" in n for n in split)


def test_val_classes_outside_train_are_a_one_line_error(tmp_path, capsys):
    write_folder(tmp_path / "train", classes=("a", "b"))
    write_folder(tmp_path / "val", classes=("a", "z"))
    code = cli.main(
        ["train", "--data", str(tmp_path), "--run-dir", str(tmp_path / "run"), "--epochs", "1"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "['z']" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_preloaded_images_are_never_read_from_disk_again(tmp_path):
    write_folder(tmp_path, sizes=((32, 32),) * 3)
    paths = sorted(str(p) for p in tmp_path.rglob("*.png"))
    dataset = ImageDataset(
        [0] * len(paths), eval_transform(32, 1.0), "RGB", paths=paths, strict=True
    )
    before = [dataset[i][0] for i in range(len(paths))]
    dataset.preload()
    for p in paths:
        Path(p).unlink()
    after = [dataset[i][0] for i in range(len(paths))]
    assert all(torch.equal(a, b) for a, b in zip(before, after))


def test_cache_decision_respects_the_flag_and_the_memory():
    stats = policy.ImageStats([(32, 32)] * 10)
    assert policy.cache_decision(TrainConfig(cache_images="auto"), stats, 3)[0]
    assert not policy.cache_decision(TrainConfig(cache_images="off"), stats, 3)[0]
    huge = policy.ImageStats([(100_000, 100_000)] * 10)  # 300 GB decoded
    keep, line = policy.cache_decision(TrainConfig(cache_images="auto"), huge, 3)
    assert not keep and "too large for memory" in line


def test_slow_bn_statistics_on_a_small_dataset_are_flagged():
    tf = TrainConfig(bn_momentum=0.01)  # the mixnet recipe's TF constant: ~100 steps
    (line,) = policy.bn_momentum_note(tf, steps_per_epoch=63)
    assert "--bn-momentum 0.01" in line and "~100 steps" in line and "(63)" in line
    assert policy.bn_momentum_note(tf, steps_per_epoch=5000) == []  # ImageNet-size epochs
    assert policy.bn_momentum_note(TrainConfig(), steps_per_epoch=63) == []  # model default
    assert policy.bn_momentum_note(TrainConfig(bn_momentum=0.1), steps_per_epoch=63) == []


def test_channels_last_is_the_cpu_default_unless_set():
    cfg, (line,) = policy.memory_format(TrainConfig(), "cpu")
    assert cfg.channels_last is True and "--no-channels-last" in line
    cfg, lines = policy.memory_format(TrainConfig(), "cuda")
    assert cfg.channels_last is False and lines == []
    for given in (True, False):
        cfg, lines = policy.memory_format(TrainConfig(channels_last=given), "cpu")
        assert cfg.channels_last is given and lines == []


@pytest.mark.parametrize("cache, workers", [("on", 0), ("off", 2)])
def test_workers_follow_the_cache_and_the_header_says_so(tmp_path, capsys, cache, workers):
    write_folder(tmp_path / "train", sizes=((32, 32),) * 6)
    argv = ["train", "--data", str(tmp_path), "--epochs", "1", "--batch-size", "4"]
    argv += ["--run-dir", str(tmp_path / "run"), "--no-progress", "--cache-images", cache]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert f"{workers} DataLoader worker(s)" in out and "pad 4 + random 32x32 crop" in out
    assert "channels_last memory format" in out
    saved = TrainConfig.from_dict(
        __import__("json").loads((tmp_path / "run" / "config.json").read_text())
    )
    assert (saved.workers, saved.img_size, saved.train_crop, saved.crop_pct) == (
        workers,
        32,
        "pad",
        1.0,
    )
    assert saved.channels_last is True  # decided once, kept by resume and eval


def test_to_uint8_keeps_grey_images_one_channel():
    from PIL import Image

    grey = Image.fromarray(np.zeros((8, 8), dtype=np.uint8))
    assert to_uint8_tensor(grey).shape == (1, 8, 8)
