"""lightnets train / eval / predict: config, data, transforms, optimisation, resume, failures.

Training tests use the built-in digits at 16x16 or a few generated images, and a tiny network
(test_train_tiny.py, shared with the multi-process tests in test_train_procs.py). torch runs on
one thread here: test processes share few cores, and OpenMP threads spinning against each other
made a 2-thread step ~40x slower than a 1-thread one on a loaded machine.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import shutil
import signal
import stat
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_train_tiny import InfAfter, Tiny
from torch import nn

import lightnets.cli
from lightnets.train import checkpoint as ckpt
from lightnets.train import data as data_mod
from lightnets.train import optim, transforms
from lightnets.train.config import (
    TrainConfig,
    build_parser,
    load_recipe,
    resolve_config,
    resume_config,
)
from lightnets.train.nonfinite import NonFiniteLossError, locate_nonfinite
from lightnets.train.run import train


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_cfg(tmp_path: Path, name: str = "run", **overrides) -> TrainConfig:
    values = dict(
        data="digits",
        img_size=16,
        crop_pct=1.0,
        scale=(0.7, 1.0),
        hflip=0.0,
        epochs=1,
        batch_size=32,
        lr=0.1,
        weight_decay=1e-4,
        workers=0,
        threads=1,
        progress=False,
        deterministic=True,
        run_dir=str(tmp_path / name),
    )
    values.update(overrides)
    return TrainConfig(**values)


def weights(run_dir: Path, tag: str = "last", file: str = "model.safetensors"):
    from safetensors.torch import load_file

    return load_file(str(Path(run_dir) / tag / file))


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())


def make_folder(root: Path, classes=("cat", "dog"), per_class=6, size=24) -> list[Path]:
    """root/train/<class>/ with RGB, grayscale and RGBA PNGs/JPEGs; class = mean brightness."""
    from PIL import Image

    rng = np.random.default_rng(0)
    files = []
    for c, name in enumerate(classes):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            base = 40 + 150 * c
            pixels = np.clip(rng.normal(base, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            img = Image.fromarray(pixels)
            mode, ext = [("RGB", "jpg"), ("L", "png"), ("RGBA", "png")][i % 3]
            path = folder / f"{i}.{ext}"
            img.convert(mode).save(path)
            files.append(path)
    return files


# --- config


def test_every_field_is_a_flag_and_flags_override_recipe_and_preset():
    parser = build_parser()
    flags = {a.dest for a in parser._actions}
    fields = set(TrainConfig.__dataclass_fields__)
    assert fields <= flags
    args = vars(
        parser.parse_args(
            ["--recipe", "mixnet", "--lr-base", "0.032", "--no-progress", "--scale", "0.5", "1"]
        )
    )
    cfg = resolve_config(args, data_mod.PRESETS["digits"])
    assert cfg.opt == "rmsproptf" and cfg.lr_base == 0.032  # flag beats recipe
    assert cfg.img_size == 32 and cfg.hflip == 0.0  # preset survives where recipe is silent
    assert cfg.progress is False and cfg.scale == (0.5, 1.0)
    assert cfg.model == TrainConfig().model  # untouched default


def test_mixnet_recipe_is_the_papers():
    r = load_recipe("mixnet")
    cfg = TrainConfig(**r, batch_size=256)
    assert (cfg.opt, cfg.rmsprop_decay, cfg.momentum, cfg.opt_eps) == ("rmsproptf", 0.9, 0.9, 1e-3)
    assert math.isclose(cfg.learning_rate, 0.016)
    assert (cfg.warmup_epochs, cfg.sched, cfg.decay_epochs, cfg.decay_rate) == (
        5,
        "step",
        2.4,
        0.97,
    )
    assert (cfg.weight_decay, cfg.label_smoothing, cfg.bn_momentum, cfg.bn_eps) == (
        1e-5,
        0.1,
        0.01,
        1e-3,
    )
    assert (cfg.ema_decay, cfg.augment) == (0.9999, "autoaugment")
    ft = TrainConfig(**load_recipe("finetune"))
    assert ft.opt == "adamw" and ft.sched == "cosine" and 0 < ft.warmup_epochs <= 2


def one_line_error(capsys, argv) -> str:
    code = lightnets.cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    return err


def test_config_errors_are_one_line_and_before_any_work(tmp_path, capsys, monkeypatch):
    run = tmp_path / "never"
    bad = tmp_path / "bad.toml"
    bad.write_text('lrr = 0.1\nopt = "sgd"\n')
    assert "'lrr'" in one_line_error(capsys, ["train", "--recipe", str(bad), "--run-dir", str(run)])
    typed = tmp_path / "typed.toml"
    typed.write_text('epochs = "ten"\n')
    assert "epochs" in one_line_error(capsys, ["train", "--recipe", str(typed)])
    assert "nosuch" in one_line_error(capsys, ["train", "--recipe", "nosuch"])
    assert "--epochs" in one_line_error(capsys, ["train", "--epochs", "0"])
    assert "mobilenet_v2_w035" in one_line_error(capsys, ["train", "--model", "mobilenet_v2_w35"])
    assert "no such directory" in one_line_error(capsys, ["train", "--data", str(tmp_path / "x")])
    monkeypatch.setenv("WORLD_SIZE", "2")
    err = one_line_error(capsys, ["train", "--batch-size", "33", "--run-dir", str(run)])
    assert "--batch-size 33" in err and "2 processes" in err
    assert not run.exists()


def test_resume_refuses_to_change_the_run(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(TrainConfig(run_dir=str(run)).to_dict()))
    with pytest.raises(ValueError, match="--lr"):
        resume_config(run, {"resume": str(run), "lr": 0.5})
    cfg = resume_config(run, {"resume": str(run), "epochs": 20, "workers": 0})
    assert cfg.epochs == 20 and cfg.workers == 0 and cfg.resume == str(run)


# --- data and transforms


def test_digits_split_is_stratified_deterministic_and_disjoint():
    _, labels = data_mod.load_digits()
    tr, va = data_mod.stratified_split(labels, 0.2)
    tr2, va2 = data_mod.stratified_split(labels, 0.2)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    assert not set(tr) & set(va) and len(tr) + len(va) == len(labels) == 1797
    counts = np.bincount(labels[va], minlength=10) / np.bincount(labels, minlength=10)
    assert np.allclose(counts, 0.2, atol=0.01)


def test_epoch_batch_sampler_partitions_ranks_and_skips_consumed_batches():
    def epoch(rank, world, skip=0, ep=3):
        s = data_mod.EpochBatchSampler(
            103, 8, shuffle=True, drop_last=True, seed=5, rank=rank, world_size=world
        )
        s.set_epoch(ep, skip)
        return list(s)

    single = epoch(0, 1)
    assert len(single) == 103 // 8 and all(len(b) == 8 for b in single)
    assert len({i for b in single for _, i in b}) == 96
    assert all(e == 3 for b in single for e, _ in b)
    assert epoch(0, 1, skip=4) == single[4:]
    assert epoch(0, 1, ep=4) != single  # re-seeded per epoch
    r0, r1 = epoch(0, 2), epoch(1, 2)
    # rank r takes every other sample of the same permutation: together, the global batches
    for b in range(len(r0)):
        merged = sorted(i for _, i in r0[b] + r1[b])
        order = list(torch.utils.data.DistributedSampler(range(103), 1, 0, seed=5).__iter__())
        assert len(merged) == 16 and set(merged) <= set(order)
    assert not {i for b in r0 for _, i in b} & {i for b in r1 for _, i in b}


def test_random_resized_crop_is_a_function_of_the_seed():
    from PIL import Image

    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8))
    t = transforms.train_transform(24, (0.2, 1.0), 0.5, 0.3, "randaugment")
    a = transforms.to_uint8_tensor(t(img, random.Random(7)))
    b = transforms.to_uint8_tensor(t(img, random.Random(7)))
    c = transforms.to_uint8_tensor(t(img, random.Random(8)))
    assert a.shape == (3, 24, 24) and torch.equal(a, b) and not torch.equal(a, c)


def test_eval_transform_is_resize_then_center_crop():
    from PIL import Image

    img = Image.fromarray(
        np.arange(64 * 80 * 3, dtype=np.uint32).reshape(64, 80, 3).astype(np.uint8)
    )
    out = transforms.eval_transform(28, crop_pct=0.875)(img)
    resized = img.resize((40, 32), Image.Resampling.BICUBIC)  # short side floor(28 / .875) = 32
    expected = resized.crop((6, 2, 34, 30))
    assert out.size == (28, 28) and np.array_equal(np.asarray(out), np.asarray(expected))


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_every_policy_op_keeps_size_and_geometric_ops_at_level_0_are_identity(mode):
    from PIL import Image

    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (20, 30, 3), np.uint8))
    img = img.convert(mode)
    for name, op in transforms.OPS.items():
        out = op(img, 7, random.Random(0))
        assert out.size == img.size and out.mode == mode, name
    for name in ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"):
        assert np.array_equal(
            np.asarray(transforms.OPS[name](img, 0, random.Random(0))), np.asarray(img)
        ), name
    solarized = np.asarray(transforms.OPS["Solarize"](img, 5, random.Random(0))).astype(int)
    src = np.asarray(img).astype(int)
    assert np.array_equal(solarized, np.where(src >= 128, 255 - src, src))
    aa = transforms.AutoAugment()
    assert all(name in transforms.OPS for sub in aa.policy for name, _, _ in sub)
    assert aa(img, random.Random(3)).size == img.size


def test_mixup_and_cutmix_targets_match_the_pixels():
    x = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 1, 8, 8).contiguous()
    target = torch.eye(4)
    mixed, t = transforms.mix_batch(x, target, mixup=0.4, cutmix=0.0, seed=1)
    lam = float(t[0, 0])
    assert torch.allclose(mixed[0], lam * x[0] + (1 - lam) * x[3])
    assert torch.allclose(t.sum(1), torch.ones(4))
    cut, t = transforms.mix_batch(x, target, mixup=0.0, cutmix=1.0, seed=2)
    own = (cut[0] == 0).float().mean()  # sample 0 is zeros, its partner (3) is threes
    assert math.isclose(float(t[0, 0]), float(own), abs_tol=1e-6)
    assert math.isclose(float(t[0, 3]), 1 - float(own), abs_tol=1e-6)


def test_cifar_pickles_load_and_foreign_pickles_are_refused(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = {
            b"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, 4)],
        }
        with open(root / name, "wb") as f:
            pickle.dump(batches[name], f, protocol=2)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f, protocol=2)
    assert data_mod.detect_format(str(tmp_path)) == "cifar10"
    (xtr, ytr), (xte, yte), names = data_mod.load_cifar(root, "cifar10")
    assert xtr.shape == (20, 32, 32, 3) and xte.shape == (4, 32, 32, 3) and names[3] == "c3"
    # channel-planar rows -> HWC: pixel (0, 0) of image 0 is bytes 0, 1024, 2048
    raw = batches["data_batch_1"][b"data"][0]
    assert list(xtr[0, 0, 0]) == [raw[0], raw[1024], raw[2048]]
    assert list(yte) == list(batches["test_batch"][b"labels"])
    with open(root / "test_batch", "wb") as f:
        pickle.dump({b"data": os.system}, f)
    with pytest.raises(ValueError, match="refusing to unpickle"):
        data_mod.load_cifar(root, "cifar10")


# --- optimisation pieces


def test_no_weight_decay_on_norms_biases_and_depthwise():
    model = Tiny()
    decay, no_decay = optim.param_groups(model, 1e-5)
    ids = {id(p) for p in no_decay["params"]}
    dw = model.features[3].weight
    assert id(dw) in ids and id(model.classifier.bias) in ids
    assert all(id(m.weight) in ids for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert {id(p) for p in decay["params"]} == {
        id(model.stem[0].weight),
        id(model.features[0].weight),
        id(model.features[6].weight),
        id(model.classifier.weight),
    }
    assert decay["weight_decay"] == 1e-5 and no_decay["weight_decay"] == 0.0
    everything, _ = optim.param_groups(model, 1e-5, decay_all=True)
    assert len(everything["params"]) == len(list(model.parameters()))


def test_rmsproptf_matches_tensorflow_update_rule():
    p = nn.Parameter(torch.tensor([1.0]))
    opt = optim.RMSpropTF([p], lr=0.1, alpha=0.9, eps=1e-3, momentum=0.9)
    ms, mom, value = 1.0, 0.0, 1.0
    for g in (2.0, -0.5, 3.0):
        p.grad = torch.tensor([g])
        opt.step()
        ms = 0.9 * ms + 0.1 * g * g  # TF: mean square starts at 1, eps inside the root
        mom = 0.9 * mom + 0.1 * g / math.sqrt(ms + 1e-3)
        value -= mom
        assert math.isclose(float(p.detach()), value, rel_tol=1e-6)


def test_lr_schedule_warmup_staircase_and_cosine():
    cfg = TrainConfig(**load_recipe("mixnet"), batch_size=256)
    f = optim.lr_factor(cfg, steps_per_epoch=10)
    assert math.isclose(f(0), 1 / 50) and math.isclose(f(49), 1.0)
    assert math.isclose(f(50), 0.97**2)  # epoch 5.0 // 2.4 = 2 decays
    assert math.isclose(f(72), 0.97**3)  # epoch 7.2
    cos = optim.lr_factor(TrainConfig(epochs=2, warmup_epochs=0.5, lr=0.1, min_lr=0.01), 10)
    assert math.isclose(cos(5), 1.0) and math.isclose(cos(20), 0.1)
    assert math.isclose(cos(12.5), 0.1 + 0.9 * 0.5)  # halfway through the cosine


def test_ema_uses_tf_warmup_decay():
    model = nn.Linear(1, 1, bias=False)
    ema = optim.build_ema(model, 0.9999)
    values = []
    for step in range(3):
        model.weight.data.fill_(float(step + 1))
        ema.update_parameters(model)
        values.append(float(ema.module.weight.detach()))
    d1 = min(0.9999, 2 / 11)  # first update copies; then decay (1 + n) / (10 + n)
    d2 = min(0.9999, 3 / 12)
    assert math.isclose(values[0], 1.0)
    assert math.isclose(values[1], d1 * 1.0 + (1 - d1) * 2.0, rel_tol=1e-6)
    assert math.isclose(values[2], d2 * values[1] + (1 - d2) * 3.0, rel_tol=1e-6)


# --- training runs


def test_tiny_model_learns_digits_and_writes_the_run_dir(tmp_path):
    # measured: 94.2% val top-1 after 4 epochs (seed 0, CPU); 85% leaves room for other CPUs
    torch.manual_seed(0)
    cfg = tiny_cfg(tmp_path, epochs=4)
    result = train(cfg, model=Tiny())
    assert result.history[-1]["val_acc"] > 85.0
    run = Path(result.run_dir)
    for name in (
        "config.json",
        "config.toml",
        "metrics.csv",
        "metrics.json",
        "curves.png",
        "last/model.safetensors",
        "last/state.pt",
        "best/model.safetensors",
    ):
        assert (run / name).is_file(), name
    assert len((run / "metrics.csv").read_text().strip().splitlines()) == 5
    assert TrainConfig(**load_recipe(str(run / "config.toml"))) == TrainConfig.from_dict(
        json.loads((run / "config.json").read_text())
    )
    state = torch.load(run / "last" / "state.pt", weights_only=True)
    assert state["epoch"] == 4 and state["class_names"] == [str(i) for i in range(10)]
    from safetensors import safe_open

    with safe_open(str(run / "best" / "model.safetensors"), "pt") as f:
        assert json.loads(f.metadata()["class_names"])[9] == "9"


def test_a_stopped_run_shuts_its_data_workers_down_while_signals_are_still_caught(
    tmp_path, monkeypatch
):
    # Left to the garbage collector, the persistent DataLoader workers were shut down after the
    # signal handlers were restored, and a second Ctrl-C then hit the iterator's __del__: a
    # traceback on the way out (CI, the 2xsigint test of test_train_procs.py)
    import multiprocessing

    from lightnets.train.loop import SignalFlag

    children_at_exit = []
    restore = SignalFlag.__exit__

    def spy(self, *exc):
        children_at_exit.append(len(multiprocessing.active_children()))
        return restore(self, *exc)

    monkeypatch.setattr(SignalFlag, "__exit__", spy)

    def interrupt(model, step):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    cfg = tiny_cfg(tmp_path, workers=1, cache_images="off")
    result = train(cfg, model=Tiny(), on_step=interrupt)
    assert result.interrupted == signal.SIGINT
    assert children_at_exit == [0]


def test_resume_equals_uninterrupted_at_epoch_end_and_mid_epoch(tmp_path):
    opts = dict(epochs=2, ema_decay=0.99, mixup=0.2, label_smoothing=0.1)
    torch.manual_seed(0)
    straight = train(tiny_cfg(tmp_path, "straight", **opts), model=Tiny()).run_dir

    torch.manual_seed(0)
    half = tiny_cfg(tmp_path, "halves", **opts, stop_at_epoch=1)  # the schedule spans 2
    assert len(train(half, model=Tiny()).history) == 1
    train(resume_config(half.run_dir, {"resume": half.run_dir}), model=Tiny())

    def interrupt(model, step):  # as if Ctrl-C arrived during step 30 (epoch 1 has 44)
        if step == 30:
            os.kill(os.getpid(), signal.SIGINT)

    torch.manual_seed(0)
    cut = tiny_cfg(tmp_path, "sigint", **opts)
    result = train(cut, model=Tiny(), on_step=interrupt)
    assert result.interrupted == signal.SIGINT
    state = ckpt.load_state(Path(cut.run_dir) / "last")
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (0, 30, 30)
    train(resume_config(cut.run_dir, {"resume": cut.run_dir}), model=Tiny())

    ref = weights(straight)
    assert max_diff(ref, weights(half.run_dir)) <= 1e-6
    assert max_diff(ref, weights(cut.run_dir)) <= 1e-6
    assert (
        max_diff(
            weights(straight, file="ema.safetensors"), weights(cut.run_dir, file="ema.safetensors")
        )
        <= 1e-6
    )
    hist = json.loads((Path(cut.run_dir) / "metrics.json").read_text())
    ref_hist = json.loads((Path(straight) / "metrics.json").read_text())
    assert [h["val_acc"] for h in hist] == [h["val_acc"] for h in ref_hist]
    assert [h["train_loss"] for h in hist] == pytest.approx([h["train_loss"] for h in ref_hist])


def test_injected_inf_stops_naming_the_module_and_keeps_the_checkpoint(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_cfg(tmp_path, checkpoint_every=5)
    with pytest.raises(NonFiniteLossError) as info:
        train(cfg, model=Tiny(probe=InfAfter(12)))
    message = str(info.value)
    assert "module 'probe' (InfAfter)" in message and "step 12" in message
    assert "last good checkpoint kept" in message
    last = Path(cfg.run_dir) / "last"
    assert ckpt.load_state(last)["global_step"] == 10
    assert all(torch.isfinite(t).all() for t in weights(cfg.run_dir).values())


def test_nonfinite_gradient_is_traced_to_the_module_that_made_it():
    class Kink(nn.Module):  # finite forward (sqrt(0) = 0), infinite backward (1 / (2 sqrt(0)))
        def forward(self, x):
            return x + torch.sqrt(x - x.detach())

    torch.manual_seed(0)
    model = Tiny(probe=nn.Sequential(nn.ReLU(), Kink()))
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    where = locate_nonfinite(model, x, y, nn.CrossEntropyLoss())
    assert where == "first non-finite gradient in module 'probe.1' (Kink)"
    model = Tiny(probe=InfAfter(1))
    where = locate_nonfinite(model, x, y, nn.CrossEntropyLoss())
    assert where == "first non-finite output in module 'probe' (InfAfter)"


def test_corrupt_images_are_skipped_and_reported_or_fail_with_strict(tmp_path, capsys):
    make_folder(tmp_path / "data", per_class=9)
    broken = tmp_path / "data" / "train" / "cat" / "broken.jpg"
    broken.write_bytes(b"this is not a JPEG")
    truncated = tmp_path / "data" / "train" / "dog" / "truncated.jpg"
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    Image.fromarray(noise).save(truncated, quality=95)
    truncated.write_bytes(truncated.read_bytes()[:2000])  # opens fine, pixels cut: fails in load
    with Image.open(truncated) as img:  # so this one is found by the loader, not the scan
        img.verify()
    torch.manual_seed(0)
    cfg = tiny_cfg(
        tmp_path,
        data=str(tmp_path / "data"),
        batch_size=4,
        val_split=0.25,
        epochs=1,
        img_size=16,
        num_classes=None,
    )
    result = train(cfg, model=Tiny(num_classes=2))
    err = capsys.readouterr().err
    assert str(broken) in err and str(truncated) in err
    assert result.history[-1]["skipped_images"] == 2
    code = lightnets.cli.main(
        [
            "train",
            "--data",
            str(tmp_path / "data"),
            "--strict",
            "--run-dir",
            str(tmp_path / "strict"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and str(broken) in err and len(err.splitlines()) == 1


def test_data_with_fewer_than_two_classes_is_a_one_line_error(tmp_path, capsys):
    make_folder(tmp_path / "one", classes=("cat",))  # would report "val acc 100%"
    run = tmp_path / "run"
    err = one_line_error(capsys, ["train", "--data", str(tmp_path / "one"), "--run-dir", str(run)])
    assert str(tmp_path / "one") in err and "1 class(es) (cat)" in err and "two" in err
    make_folder(tmp_path / "two", classes=("cat",))
    dog = tmp_path / "two" / "train" / "dog"
    dog.mkdir()
    (dog / "broken.jpg").write_bytes(b"this is not a JPEG")  # a second class, no image in it
    code = lightnets.cli.main(["train", "--data", str(tmp_path / "two"), "--run-dir", str(run)])
    skipped, err = capsys.readouterr().err.strip().splitlines()  # the skip report, then why
    assert code == 2 and "broken.jpg" in skipped
    assert "readable training images in 1 class(es) (cat)" in err
    assert not run.exists()


def test_an_in_memory_item_that_fails_keeps_its_own_error(tmp_path):
    # array datasets (digits, CIFAR) have no paths: a failure there is no unreadable file
    arrays = np.zeros((2, 4, 4, 5), np.uint8)  # five channels: PIL cannot make an image of it
    ds = data_mod.ImageDataset([0, 1], lambda img, rng: img, "RGB", arrays=arrays, strict=True)
    with pytest.raises(TypeError, match="Cannot handle this data type"):
        ds[(0, 1)]
    make_folder(tmp_path / "data", per_class=1)  # a preloaded folder: arrays and paths
    paths = sorted(str(p) for p in (tmp_path / "data" / "train").rglob("*.*"))
    Path(paths[1]).write_bytes(b"this is not a JPEG")
    ds = data_mod.ImageDataset([0, 1], lambda img, rng: img, "RGB", paths=paths)
    ds.preload(threads=1)
    assert ds[(0, 0)][2] is None and ds[(0, 1)][2].startswith(f"{paths[1]}: ")


def test_last_batch_of_one_does_not_reach_batchnorm_grayscale_bf16_channels_last(tmp_path):
    make_folder(tmp_path / "data", per_class=6)  # 10 train images, batch 3: 3 batches + 1 left
    seen = []
    cfg = tiny_cfg(
        tmp_path,
        data=str(tmp_path / "data"),
        batch_size=3,
        val_split=0.01,
        epochs=1,
        in_chans=1,
        amp="bf16",
        channels_last=True,
    )
    result = train(cfg, model=Tiny(num_classes=2, in_chans=1), on_step=lambda m, s: seen.append(s))
    assert seen == [1, 2, 3] and math.isfinite(result.history[0]["train_loss"])


def test_freeze_backbone_trains_only_the_classifier_with_its_dropout_on(tmp_path):
    torch.manual_seed(0)
    model = Tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = set()

    def record(m, step):
        modes.add((m.dropout.training, m.stem[1].training, m.classifier.training))

    train(tiny_cfg(tmp_path, freeze_backbone=True), model=model, on_step=record)
    after = weights(tmp_path / "run")
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == ["classifier.bias", "classifier.weight"]  # BN statistics too stay put
    assert modes == {(True, False, True)}  # the head's dropout regularises; frozen BN is eval


def test_pretrained_weights_load_with_a_new_head(tmp_path):
    from safetensors.torch import save_file

    import lightnets
    from lightnets.checkpoints import build_model

    torch.manual_seed(1)
    source = lightnets.create_model("mobilenet_v1_w025", num_classes=1000)
    save_file(source.state_dict(), str(tmp_path / "imagenet.safetensors"))
    cfg = TrainConfig(model="mobilenet_v1_w025", pretrained=str(tmp_path / "imagenet.safetensors"))
    with pytest.warns(UserWarning, match="classifier"):
        model = build_model(cfg, num_classes=3, img_size=224)
    mine, theirs = model.state_dict(), source.state_dict()
    assert model.classifier.out_features == 3
    assert all(torch.equal(mine[k], theirs[k]) for k in mine if not k.startswith("classifier."))
    same = build_model(cfg, num_classes=1000, img_size=224).state_dict()
    assert all(torch.equal(same[k], theirs[k]) for k in theirs)


def test_interrupted_checkpoint_swap_recovers_the_previous_checkpoint(tmp_path):
    model = Tiny()
    state = {"format": ckpt.STATE_FORMAT, "step": 1}
    ckpt.save_checkpoint(tmp_path, "last", model, None, state, {"k": "v"})
    # a kill between the two renames of the next save leaves .last.old and a partial .last.tmp
    os.replace(tmp_path / "last", tmp_path / ".last.old")
    (tmp_path / ".last.tmp").mkdir()
    (tmp_path / ".last.tmp" / "model.safetensors").write_bytes(b"partial")
    found = ckpt.find_checkpoint(tmp_path, "last")
    assert found == tmp_path / ".last.old" and ckpt.load_state(found)["step"] == 1
    ckpt.save_checkpoint(tmp_path, "last", model, None, {**state, "step": 2}, {})
    assert ckpt.load_state(ckpt.find_checkpoint(tmp_path))["step"] == 2
    assert not (tmp_path / ".last.old").exists() and not (tmp_path / ".last.tmp").exists()


def test_rng_state_round_trips_through_weights_only_load(tmp_path):
    torch.save(ckpt.rng_state(), tmp_path / "rng.pt")
    expected = (torch.rand(3), random.random(), np.random.rand())
    ckpt.set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(got[0], expected[0]) and got[1:] == expected[1:]


# --- the CLI end to end with a zoo model: train, eval, predict


def test_cli_train_eval_predict_on_an_image_folder(tmp_path, capsys):
    files = make_folder(tmp_path / "data", per_class=6, size=40)
    make_folder(tmp_path / "val", per_class=3, size=40)
    os.replace(tmp_path / "val" / "train", tmp_path / "data" / "val")
    run = tmp_path / "run"
    code = lightnets.cli.main(
        [
            "train",
            "--data",
            str(tmp_path / "data"),
            "--img-size",
            "32",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--workers",
            "0",
            "--threads",
            "1",
            "--no-progress",
            "--run-dir",
            str(run),
            "--lr",
            "0.01",
        ]
    )
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "epoch 2/2" in out and "img/s" in out
    assert "top5" not in out  # 2 classes: top-5 is always 100%, not shown
    assert not any(k.startswith("module.") for k in weights(run))
    resume = ["train", "--resume", str(run), "--epochs", "3", "--no-progress"]
    assert lightnets.cli.main(resume) == 0
    assert "epoch 3/3" in capsys.readouterr().out
    assert len(json.loads((run / "metrics.json").read_text())) == 3
    assert "--lr" in one_line_error(capsys, [*resume, "--lr", "0.5"])
    assert lightnets.cli.main(["eval", "--checkpoint", str(run), "--json", "--workers", "0"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["images"] == 6 and sum(map(sum, res["confusion"])) == 6
    assert 0 <= res["top1"] <= 100 and set(res["per_class"]) == {"cat", "dog"}
    assert "top5" not in res  # 2 classes: always 100%
    assert Path(res["confusion_png"]).is_file()
    state = torch.load(run / "best" / "state.pt", weights_only=True)
    assert res["top1"] == pytest.approx(max(h["val_acc"] for h in state["history"]))
    assert (
        lightnets.cli.main(
            ["predict", str(files[0]), str(files[-1]), "--checkpoint", str(run), "--topk", "2"]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(files[0]) and {lines[1].split()[0], lines[2].split()[0]} == {
        "cat",
        "dog",
    }
    scores = [float(line.split()[1]) for line in lines[1:3]]
    assert scores[0] >= scores[1] and sum(scores) == pytest.approx(1.0, abs=1e-4)
    other = tmp_path / "other"
    make_folder(other, classes=("cat", "dog", "fox"), per_class=1)
    err = one_line_error(capsys, ["eval", "--checkpoint", str(run), "--data", str(other / "train")])
    assert "fox" in err


# --- failures the redesign fixed (each test failed before it)


def test_every_reduced_tensor_is_on_the_training_device(monkeypatch):
    # NCCL all-reduces CUDA tensors only; on the meta device a CPU tensor is easy to spot
    from lightnets.train.distributed import DistInfo
    from lightnets.train.evaluate import evaluate
    from lightnets.train.loop import Progress, SignalFlag, train_one_epoch

    class Reduced(Exception):
        pass

    devices = []

    def all_reduce(tensor, op=None, **kw):
        devices.append(tensor.device)
        raise Reduced  # a meta tensor has no values to go on with

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda group=None: 2)
    monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
    meta = torch.device("meta")
    model = Tiny().to(meta)
    batch = (torch.zeros(4, 3, 16, 16, dtype=torch.uint8), torch.tensor([0, 1, 2, 3]), [])

    class Loader(list):
        batch_sampler = SimpleNamespace(set_epoch=lambda *a: None, batches_per_epoch=lambda: 1)

    for batches in ([batch], []):  # the stop/skip flags of a step; the sums of an epoch
        progress = Progress()
        progress.new_epoch_sums()
        run = SimpleNamespace(
            cfg=TrainConfig(progress=False),
            progress=progress,
            model=model,
            train_loader=Loader(batches),
            dist=DistInfo(0, 2, 0, meta),
            device=meta,
            optimizer=SimpleNamespace(param_groups=[{"lr": 0.1}]),
            on_step=None,
        )
        with pytest.raises(Reduced):
            train_one_epoch(run, SignalFlag())
    stats = torch.zeros(1, 3, 1, 1, device=meta)
    with pytest.raises(Reduced):  # loss and accuracy sums of an evaluation
        evaluate(model, [batch], device=meta, mean=stats, std=stats + 1, num_classes=10)
    assert devices == [meta, meta, meta]


@pytest.mark.parametrize("key", ["epochs", "model", "lr_base"])
def test_null_for_a_required_setting_is_a_one_line_error(tmp_path, capsys, key):
    recipe = tmp_path / "nulls.json"
    recipe.write_text(json.dumps({key: None, "lr": None}))  # lr may be null: it is optional
    err = one_line_error(capsys, ["train", "--recipe", str(recipe)])
    assert f"{key} must be" in err and "null" in err


def test_vgnet_shared_depthwise_weight_gets_no_weight_decay():
    import lightnets
    from lightnets.blocks import SharedDepthwiseConv2d

    model = lightnets.create_model("vgnet_g_1_0mp", num_classes=10)
    shared = [m.weight for m in model.modules() if isinstance(m, SharedDepthwiseConv2d)]
    assert shared
    decay, no_decay = optim.param_groups(model, 1e-5)
    exempt = {id(p) for p in no_decay["params"]}
    assert all(id(p) in exempt for p in shared)
    assert not any(id(p) in exempt for p in decay["params"])
    everything, _ = optim.param_groups(model, 1e-5, decay_all=True)
    assert all(any(p is q for q in everything["params"]) for p in shared)


def test_a_crash_anywhere_in_two_saves_leaves_a_complete_checkpoint(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    class Crash(Exception):
        pass

    model = Tiny(width=4)
    real_replace, real_rmtree = os.replace, shutil.rmtree
    budget = [math.inf]  # file-system steps (renames, deletions) until the simulated crash

    def tick(path=None):
        budget[0] -= 1
        if budget[0] < 0:
            if path is not None and Path(path).is_dir():  # die half-way through a deletion
                files = sorted(f for f in Path(path).rglob("*") if f.is_file())
                if files:
                    files[0].unlink()
            raise Crash

    def replace(src, dst):
        tick()
        real_replace(src, dst)

    def rmtree(path, ignore_errors=False, **kw):
        tick(path)
        real_rmtree(path, ignore_errors=ignore_errors, **kw)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(shutil, "rmtree", rmtree)

    def save(run_dir, step, crash_after=math.inf):
        budget[0] = crash_after
        try:
            state = {"format": ckpt.STATE_FORMAT, "step": step}
            ckpt.save_checkpoint(run_dir, "last", model, None, state, {})
        except Crash:
            pass
        budget[0] = math.inf

    for first in range(6):
        for second in range(6):  # a crash, a resume from what was found, another crash
            run_dir = tmp_path / f"{first}-{second}"
            run_dir.mkdir()
            save(run_dir, 1)
            for step, crash_after in ((2, first), (3, second)):
                save(run_dir, step, crash_after)
                found = ckpt.find_checkpoint(run_dir)
                assert found is not None, (first, second, sorted(os.listdir(run_dir)))
                assert ckpt.load_state(found)["step"] in (1, 2, step)
                assert load_file(str(found / "model.safetensors")).keys()


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_run_dir_files_and_directories_follow_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        torch.manual_seed(0)
        train(tiny_cfg(tmp_path, ema_decay=0.9, checkpoint_every=20), model=Tiny())
    finally:
        os.umask(previous)
    run = tmp_path / "run"
    paths = [run, *run.rglob("*")]
    assert any(p.name == "state.pt" for p in paths) and any(p.name == "best" for p in paths)
    for path in paths:
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert oct(stat.S_IMODE(path.stat().st_mode)) == oct(expected), path


def test_corrupt_checkpoint_falls_back_or_fails_in_one_line(tmp_path, capsys):
    torch.manual_seed(0)
    cfg = tiny_cfg(tmp_path, epochs=2, stop_at_epoch=1)
    train(cfg, model=Tiny())
    run = Path(cfg.run_dir)
    (run / "last" / "state.pt").write_bytes(os.urandom(3000))  # random bytes: bad pickle
    capsys.readouterr()
    result = train(resume_config(run, {"resume": str(run)}), model=Tiny())
    err = capsys.readouterr().err
    assert len(result.history) == 2, err
    assert (
        f"{run / 'last' / 'state.pt'}: " in err
        and "corrupt" in err
        and f"resuming from {run / 'best'}" in err
    )
    assert "weights_only" not in err
    # nothing intact: one line naming the file, before any work
    for tag in ("last", "best"):
        path = run / tag / "model.safetensors"
        path.write_bytes(path.read_bytes()[:100])  # truncated
    before = sorted(p.name for p in run.iterdir())
    err = one_line_error(capsys, ["train", "--resume", str(run), "--epochs", "3"])
    assert f"{run / 'last' / 'model.safetensors'}: corrupt or truncated" in err
    assert "no intact earlier checkpoint" in err
    (run / "best" / "state.pt").write_bytes(os.urandom(3000))
    err = one_line_error(capsys, ["train", "--resume", str(run), "--epochs", "3"])
    assert "weights_only" not in err and "Traceback" not in err
    assert sorted(p.name for p in run.iterdir()) == before


def test_too_small_img_size_or_unwritable_run_dir_fail_before_anything(tmp_path, capsys):
    run = tmp_path / "runs" / "tiny"
    err = one_line_error(capsys, ["train", "--img-size", "7", "--run-dir", str(run)])
    assert "--img-size 7" in err and "16 px" in err
    assert not (tmp_path / "runs").exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    err = one_line_error(capsys, ["train", "--run-dir", str(blocker / "run")])
    assert str(blocker) in err and "not a directory" in err
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_resume_works_from_another_directory(tmp_path, monkeypatch, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    make_folder(first / "data", per_class=6, size=32)
    second.mkdir()
    monkeypatch.chdir(first)
    args = ["--img-size", "32", "--batch-size", "4", "--workers", "0", "--threads", "1"]
    args += ["--epochs", "2", "--stop-at-epoch", "1", "--no-progress"]
    code = lightnets.cli.main(["train", "--data", "data", "--run-dir", "run", *args])
    assert code == 0, capsys.readouterr().err
    assert f"continue with: lightnets train --resume {first / 'run'}" in capsys.readouterr().out
    monkeypatch.chdir(second)
    assert lightnets.cli.main(["train", "--resume", "../first/run", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "epoch 2/2" in out and "top5" not in out  # 2 classes: top-5 is always 100%
    history = json.loads((first / "run" / "metrics.json").read_text())
    assert len(history) == 2 and "val_top5" not in history[-1]
    saved = json.loads((first / "run" / "config.json").read_text())
    assert saved["data"] == str(first / "data") and saved["run_dir"] == str(first / "run")
    assert not os.listdir(second)
