"""`lightnets train`: build a run from a TrainConfig (data, model, optimizer, resume) and fit it.

    lightnets train                                   # mobilenet_v2_w035 on the built-in digits
    lightnets train --model mixnet_s --data DIR --recipe mixnet --epochs 100 --batch-size 128
    lightnets train --resume runs/mixnet_s-DIR-20250101-120000
    torchrun --nproc_per_node=2 -m lightnets train --data DIR ...

Every check that can fail (recipe keys, model name, batch size vs ranks, data layout, class
count vs checkpoint) runs before the first step.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from lightnets.checkpoints import build_model, preprocessing
from lightnets.errors import ConfigError, MissingDependencyError
from lightnets.train import checkpoint as ckpt
from lightnets.train import data as data_mod
from lightnets.train import distributed, optim
from lightnets.train.config import TrainConfig, build_parser, dump_toml, resolve_config
from lightnets.train.config import resume_config as _resume_config
from lightnets.train.loop import Progress, Run, TrainResult, fit, restore
from lightnets.train.nonfinite import NonFiniteLossError
from lightnets.train.transforms import eval_transform, train_transform


def config_from_argv(argv: list[str] | None) -> TrainConfig:
    parser = build_parser(description=__doc__.split("\n\n")[0])
    flags = vars(parser.parse_args(argv))
    if flags.get("resume"):
        return _resume_config(flags["resume"], flags)
    fmt = data_mod.detect_format(flags.get("data", "digits"), flags.get("dataset", "auto"))
    return resolve_config(flags, data_mod.PRESETS[fmt])


def _default_run_dir(cfg: TrainConfig) -> Path:
    stem = Path(cfg.data).name or "data"
    return Path("runs") / f"{cfg.model}-{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def build_run(
    cfg: TrainConfig,
    model: nn.Module | None = None,
    on_step: Callable[[nn.Module, int], None] | None = None,
) -> Run:
    """Everything `fit` needs; `model` replaces the registry model (tests, custom networks)."""
    world_size = distributed.world_size_from_env()
    if cfg.batch_size % world_size:
        raise ConfigError(
            f"--batch-size {cfg.batch_size} is not divisible by the {world_size} processes"
        )
    dist = distributed.setup(cfg.device)
    if cfg.sync_bn and dist.device.type != "cuda":
        raise ConfigError("--sync-bn needs CUDA (torch's SyncBatchNorm has no CPU kernel)")
    if cfg.tensorboard:
        try:
            import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
        except ImportError:
            raise MissingDependencyError(
                "--tensorboard needs the tensorboard package: pip install tensorboard"
            ) from None
    card = getattr(model, "card", None)
    if model is None:
        import lightnets

        card = lightnets.model_card(cfg.model)  # KeyError with close names, before any work
    pre = preprocessing(cfg, card)
    run_dir = Path(cfg.run_dir) if cfg.run_dir else _default_run_dir(cfg)
    resume_from = None
    if cfg.resume:
        resume_from = ckpt.find_checkpoint(run_dir, "last")
        if resume_from is None:
            raise FileNotFoundError(f"--resume {run_dir}: no checkpoint in last/")
    elif ckpt.find_checkpoint(run_dir, "last") is not None:
        raise ConfigError(
            f"--run-dir {run_dir} already holds a run; pass --resume {run_dir} to "
            f"continue it, or choose another --run-dir"
        )

    if dist.device.type == "cpu":
        torch.set_num_threads(distributed.cpu_threads(cfg.threads, cfg.workers))
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(cfg.deterministic, warn_only=True)
    fmt = data_mod.detect_format(cfg.data, cfg.dataset)
    tf_train = train_transform(
        pre.img_size,
        cfg.scale,
        cfg.hflip,
        cfg.color_jitter,
        cfg.augment,
        cfg.randaugment_n,
        cfg.randaugment_m,
    )
    splits = data_mod.open_splits(
        cfg.data,
        fmt,
        mode="L" if cfg.in_chans == 1 else "RGB",
        train_transform=tf_train,
        eval_transform=eval_transform(pre.img_size, pre.crop_pct),
        val_split=cfg.val_split,
        seed=cfg.seed,
        strict=cfg.strict,
    )
    if splits.skipped and dist.is_main:
        print(
            f"skipped {len(splits.skipped)} unreadable image(s): "
            + "; ".join(splits.skipped[:5])
            + (" ..." if len(splits.skipped) > 5 else ""),
            file=sys.stderr,
        )
    num_classes = cfg.num_classes or len(splits.class_names)
    if num_classes < len(splits.class_names):
        raise ConfigError(
            f"--num-classes {num_classes} but the data has {len(splits.class_names)} classes"
        )
    per_rank = cfg.batch_size // dist.world_size
    if len(splits.train) // dist.world_size < per_rank:
        raise ConfigError(
            f"--batch-size {cfg.batch_size}: only {len(splits.train)} training "
            f"images, not one full batch per process"
        )

    if model is None:
        model = build_model(cfg, num_classes, pre.img_size)
    optim.set_bn(model, cfg.bn_momentum, cfg.bn_eps)
    if cfg.freeze_backbone:
        if not isinstance(getattr(model, "classifier", None), nn.Module):
            raise ConfigError("--freeze-backbone needs a model with a `classifier` child")
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("classifier."))
    if cfg.sync_bn and dist.enabled:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(dist.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = optim.build_ema(model, cfg.ema_decay)
    optimizer = optim.build_optimizer(cfg, model)
    train_loader = data_mod.make_loader(
        splits.train,
        per_rank,
        train=True,
        seed=cfg.seed,
        rank=dist.rank,
        world_size=dist.world_size,
        workers=cfg.workers,
    )
    val_loader = data_mod.make_loader(
        splits.val,
        per_rank,
        train=False,
        seed=cfg.seed,
        rank=dist.rank,
        world_size=dist.world_size,
        workers=cfg.workers,
    )
    scheduler = optim.build_scheduler(
        cfg, optimizer, train_loader.batch_sampler.batches_per_epoch()
    )
    amp_dtype = {
        "none": None,
        "bf16": torch.bfloat16,
        "fp16": torch.float16,
        "auto": torch.float16 if dist.device.type == "cuda" else torch.bfloat16,
    }[cfg.amp]
    if amp_dtype == torch.float16 and dist.device.type != "cuda":
        raise ConfigError("--amp fp16 needs CUDA; use --amp bf16 on the CPU")
    scaler = torch.amp.GradScaler(dist.device.type, enabled=amp_dtype == torch.float16)
    wrapped = model
    if dist.enabled:
        wrapped = nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None
        )
    if cfg.compile:
        wrapped = torch.compile(wrapped)
    mean = torch.tensor(pre.mean, device=dist.device).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, device=dist.device).view(1, -1, 1, 1)
    run = Run(
        cfg,
        wrapped,
        optimizer,
        scheduler,
        scaler,
        ema,
        train_loader,
        val_loader,
        dist,
        run_dir,
        splits.class_names,
        mean,
        std,
        amp_dtype,
        Progress(),
        on_step,
        nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing),
        splits.skipped,
    )
    if resume_from is not None:
        restore(run, resume_from)
    elif dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        saved = dataclasses.replace(cfg, run_dir=str(run_dir))
        ckpt.write_text(run_dir / "config.json", json.dumps(saved.to_dict(), indent=1))
        ckpt.write_text(run_dir / "config.toml", dump_toml(saved.to_dict()))
        ckpt.write_text(run_dir / "classes.json", json.dumps(splits.class_names))
    return run


def train(
    cfg: TrainConfig,
    model: nn.Module | None = None,
    on_step: Callable[[nn.Module, int], None] | None = None,
) -> TrainResult:
    """Build and fit a run (the Python entry point of `lightnets train`)."""
    try:
        run = build_run(cfg, model, on_step)
        if run.dist.is_main:
            n_params = sum(p.numel() for p in ckpt.unwrap(run.model).parameters())
            print(
                f"{cfg.model if model is None else type(model).__name__}: "
                f"{n_params / 1e6:.2f} M params, {len(run.class_names)} classes, "
                f"{len(run.train_loader.dataset)} train / {len(run.val_loader.dataset)} val "
                f"images, batch {cfg.batch_size} on {run.dist.world_size} x {run.device}, "
                f"run dir {run.run_dir}",
                flush=True,
            )
        return fit(run)
    finally:
        distributed.cleanup()


def main(argv: list[str] | None = None) -> int:
    cfg = config_from_argv(argv)
    start = time.perf_counter()
    try:
        result = train(cfg)
    except NonFiniteLossError as err:
        print(f"lightnets train: error: {err}", file=sys.stderr)
        return 1
    if result.interrupted is not None:
        return 128 + result.interrupted
    if result.history:
        last = result.history[-1]
        acc = last.get("ema_val_acc", last.get("val_acc"))
        acc_text = f"final val acc {acc:.2f}%, " if acc is not None else ""
        print(
            f"done: {acc_text}best {result.best_metric:.2f}% in "
            f"{time.perf_counter() - start:.0f} s; run dir {result.run_dir}"
        )
    return 0
