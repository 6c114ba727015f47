"""Build a training run from a TrainConfig and fit it: the library behind `lightnets train`.

    from lightnets.train.run import train
    result = train(TrainConfig(model="mixnet_s", data="DIR", epochs=100))

`build_run` works in three phases. First it checks everything that can fail without reading the
data: flags against each other and the process count, model name, data layout, run directory and
the checkpoint to resume; then it builds the model and checks the input size against it. Only
then comes the slow part (reading the data, loaders, optimizer), and the run directory is written
last, so a run that cannot start leaves nothing behind. Paths in the saved config are absolute:
`--resume` works from any directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lightnets import rundir
from lightnets.checkpoints import build_model
from lightnets.cpu import cpu_threads
from lightnets.data.folders import probe_side
from lightnets.errors import ConfigError, MissingDependencyError
from lightnets.files import write_text
from lightnets.preprocess import Preprocessing, image_mode, mean_std, preprocessing
from lightnets.train import checkpoint as ckpt
from lightnets.train import data as data_mod
from lightnets.train import distributed, optim, policy, report
from lightnets.train.config import TrainConfig, absolute_paths, dump_toml
from lightnets.train.loop import Progress, Run, TrainResult, fit
from lightnets.train.transforms import eval_transform, train_transform


@dataclass
class Plan:
    """What the checks before any slow work found: the first phase of `build_run`."""

    cfg: TrainConfig  # with absolute paths and the run dir filled in
    device: torch.device
    card: object  # the model's ModelCard; None for a model passed in without one
    pre: Preprocessing
    fmt: str  # data format (data.detect_format)
    class_names: list[str]
    run_dir: Path
    resume: tuple | None  # (dir, state, weights, notes) from checkpoint.resume_checkpoint
    header: list[str] = dataclasses.field(default_factory=list)  # choices made for the user

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes or len(self.class_names)


def check(cfg: TrainConfig, model: nn.Module | None = None) -> Plan:
    """Every check that needs neither the images nor the model; raises before any work."""
    cfg = absolute_paths(cfg)
    device = distributed.pick_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    _check_flags(cfg, distributed.world_size_from_env(), device)
    card = getattr(model, "card", None)
    if model is None:
        import lightnets

        card = lightnets.model_card(cfg.model)  # UnknownNameError with close names
    fmt = data_mod.detect_format(cfg.data, cfg.dataset)
    names = data_mod.class_names(cfg.data, fmt)
    if len(names) < 2:  # one class: every prediction is right, "val acc 100%" means nothing
        raise ConfigError(
            f"--data {cfg.data}: {len(names)} class(es) ({', '.join(names)}); "
            "training a classifier needs at least two"
        )
    if cfg.num_classes is not None and cfg.num_classes < len(names):
        raise ConfigError(f"--num-classes {cfg.num_classes} but the data has {len(names)} classes")
    run_dir = Path(cfg.run_dir) if cfg.run_dir else _default_run_dir(cfg)
    cfg = dataclasses.replace(cfg, run_dir=str(run_dir))
    resume = _check_run_dir(cfg, run_dir, names)
    native = probe_side(cfg.data, fmt) if cfg.img_size is None and not cfg.resume else None
    chosen = policy.choose(cfg, card, native)
    header = policy.describe(chosen, cfg, native)
    plan = Plan(chosen, device, card, preprocessing(chosen, card), fmt, names, run_dir, resume)
    plan.header = header
    return plan


def _check_flags(cfg: TrainConfig, world_size: int, device: torch.device) -> None:
    if cfg.batch_size % world_size:
        raise ConfigError(
            f"--batch-size {cfg.batch_size} is not divisible by the {world_size} processes"
        )
    if cfg.sync_bn and device.type != "cuda":
        raise ConfigError("--sync-bn needs CUDA (torch's SyncBatchNorm has no CPU kernel)")
    if _amp_dtype(cfg.amp, device) == torch.float16 and device.type != "cuda":
        raise ConfigError("--amp fp16 needs CUDA; use --amp bf16 on the CPU")
    if cfg.tensorboard:
        try:
            import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
        except ImportError:
            raise MissingDependencyError(
                "--tensorboard needs the tensorboard package: pip install tensorboard"
            ) from None


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "auto":
        return torch.float16 if device.type == "cuda" else torch.bfloat16
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def _default_run_dir(cfg: TrainConfig) -> Path:
    stem = Path(cfg.data).name or "data"
    return Path(os.path.abspath("runs")) / f"{cfg.model}-{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def _check_run_dir(cfg: TrainConfig, run_dir: Path, class_names: list[str]) -> tuple | None:
    """The checkpoint to resume (read and checked now), or None for a new run."""
    if cfg.resume:
        found = ckpt.resume_checkpoint(run_dir)
        saved = found[1]["class_names"]
        if saved != class_names:
            raise ConfigError(
                f"--resume: the checkpoint has {len(saved)} classes {saved[:5]}..., "
                f"the data {len(class_names)}"
            )
    elif rundir.find_checkpoint(run_dir, rundir.LAST) is not None:
        raise ConfigError(
            f"--run-dir {run_dir} already holds a run; pass --resume {run_dir} to "
            f"continue it, or choose another --run-dir"
        )
    else:
        found = None
    _check_writable_dir(run_dir)
    return found


def _check_writable_dir(path: Path) -> None:
    """Fail now, not after the first epoch, if `path` cannot be created or written; creates
    nothing (an unnamed temporary file in the nearest existing directory)."""
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"--run-dir {path}: {existing} is not a directory")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise PermissionError(
            f"--run-dir {path}: cannot write in {existing} ({err.strerror})"
        ) from None


def prepare_model(plan: Plan, model: nn.Module | None = None) -> nn.Module:
    """The registry model (or `model`), checked against the input size, with BN settings and
    --freeze-backbone applied; still on the CPU."""
    cfg, img_size = plan.cfg, plan.pre.img_size
    if model is None:
        model = build_model(cfg, plan.num_classes, img_size)
    # the model's own minimum reflects its stem (stride 1 with small_input); else the card's
    smallest = getattr(model, "min_input", None) or getattr(plan.card, "min_input", None)
    if smallest and img_size < smallest:
        stem = " with the stride-1 small-input stem" if small_input(cfg, img_size) else ""
        raise ConfigError(f"--img-size {img_size}: {cfg.model} needs at least {smallest} px{stem}")
    optim.set_bn(model, cfg.bn_momentum, cfg.bn_eps)
    if cfg.freeze_backbone:
        if not isinstance(getattr(model, "classifier", None), nn.Module):
            raise ConfigError("--freeze-backbone needs a model with a `classifier` child")
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("classifier."))
    return model


def small_input(cfg: TrainConfig, img_size: int) -> bool:
    from lightnets.checkpoints import wants_small_input

    return wants_small_input(img_size, cfg.small_input)


def open_data(plan: Plan, is_main: bool) -> tuple[data_mod.Splits, TrainConfig]:
    """Train and val datasets (decoded into memory when they fit), and the config with the
    worker count decided; unreadable images found while scanning are reported (rank 0)."""
    cfg, pre = plan.cfg, plan.pre
    tf_train = train_transform(
        pre.img_size,
        cfg.scale,
        cfg.hflip,
        cfg.color_jitter,
        cfg.augment,
        cfg.randaugment_n,
        cfg.randaugment_m,
        crop=cfg.train_crop,
    )
    splits = data_mod.open_splits(
        cfg.data,
        plan.fmt,
        mode=image_mode(cfg.in_chans),
        train_transform=tf_train,
        eval_transform=eval_transform(pre.img_size, pre.crop_pct),
        val_split=cfg.val_split,
        seed=cfg.seed,
        strict=cfg.strict,
    )
    if is_main:
        report.skipped_images(splits.skipped)
    found = sorted({splits.class_names[y] for y in splits.train.labels})
    if len(found) < 2:  # e.g. a second class folder whose images are all unreadable
        raise ConfigError(
            f"--data {cfg.data}: readable training images in {len(found)} class(es) "
            f"({', '.join(found)}); training a classifier needs at least two"
        )
    mode = image_mode(cfg.in_chans)
    for split, stats in (("train", splits.train_stats), ("val", splits.val_stats)):
        plan.header += policy.data_notes(stats, pre.img_size, mode, split)
    plan.header += policy.split_notes(splits.class_names, splits.train.labels, splits.val.labels)
    cache, line = policy.cache_decision(cfg, splits.train_stats + splits.val_stats, cfg.in_chans)
    if cache:
        splits.train.preload()
        splits.val.preload()
    if cfg.workers is None:  # decoding is the work workers do; without it they only add IPC
        cfg = dataclasses.replace(cfg, workers=0 if cache else 2)
    plan.header.append(f"{line}; {cfg.workers} DataLoader worker(s)")
    return splits, cfg


def make_loaders(cfg: TrainConfig, splits: data_mod.Splits, dist: distributed.DistInfo):
    per_rank = cfg.batch_size // dist.world_size
    if len(splits.train) // dist.world_size < per_rank:
        raise ConfigError(
            f"--batch-size {cfg.batch_size}: only {len(splits.train)} training "
            f"images, not one full batch per process"
        )
    kw = {"seed": cfg.seed, "rank": dist.rank, "world_size": dist.world_size}
    return (
        data_mod.make_loader(splits.train, per_rank, train=True, workers=cfg.workers, **kw),
        data_mod.make_loader(splits.val, per_rank, train=False, workers=cfg.workers, **kw),
    )


def place_model(cfg: TrainConfig, model: nn.Module, dist: distributed.DistInfo) -> nn.Module:
    """The model on this rank's device (SyncBatchNorm converted, channels_last applied)."""
    if cfg.sync_bn and dist.enabled:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(dist.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def wrap_model(cfg: TrainConfig, model: nn.Module, dist: distributed.DistInfo) -> nn.Module:
    """What the loop calls: DDP and / or torch.compile around the same parameters."""
    wrapped = model
    if dist.enabled:
        wrapped = nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None
        )
    if cfg.compile:
        wrapped = torch.compile(wrapped)
    return wrapped


def build_run(
    cfg: TrainConfig,
    model: nn.Module | None = None,
    on_step: Callable[[nn.Module, int], None] | None = None,
) -> Run:
    """Everything `fit` needs; `model` replaces the registry model (tests, custom networks)."""
    plan = check(cfg, model)
    torch.manual_seed(plan.cfg.seed)  # the weights' initialisation
    torch.use_deterministic_algorithms(plan.cfg.deterministic, warn_only=True)
    model = prepare_model(plan, model)
    dist = distributed.setup(plan.cfg.device)
    splits, cfg = open_data(plan, dist.is_main)
    cfg, lines = policy.memory_format(cfg, dist.device.type)
    plan.header += lines
    if plan.device.type == "cpu":
        torch.set_num_threads(cpu_threads(cfg.threads, cfg.workers))
    train_loader, val_loader = make_loaders(cfg, splits, dist)
    model = place_model(cfg, model, dist)
    optimizer = optim.build_optimizer(cfg, model)
    steps_per_epoch = train_loader.batch_sampler.batches_per_epoch()
    plan.header += policy.bn_momentum_note(cfg, steps_per_epoch)
    mean, std = mean_std(plan.pre, dist.device)
    run = Run(
        cfg=cfg,
        model=wrap_model(cfg, model, dist),
        optimizer=optimizer,
        scheduler=optim.build_scheduler(cfg, optimizer, steps_per_epoch),
        scaler=torch.amp.GradScaler(
            dist.device.type, enabled=_amp_dtype(cfg.amp, dist.device) == torch.float16
        ),
        ema=optim.build_ema(model, cfg.ema_decay),
        train_loader=train_loader,
        val_loader=val_loader,
        dist=dist,
        run_dir=plan.run_dir,
        class_names=splits.class_names,
        mean=mean,
        std=std,
        amp_dtype=_amp_dtype(cfg.amp, dist.device),
        progress=Progress(),
        on_step=on_step,
        criterion=nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing),
        skipped_at_scan=splits.skipped,
        header=plan.header,
    )
    if plan.resume is not None:
        _, state, weights, notes = plan.resume
        ckpt.restore(run, state, weights)
        if dist.is_main:
            for line in notes:
                report.note(f"warning: {line}")
    elif dist.is_main:
        write_run_files(run)
    return run


def write_run_files(run: Run) -> None:
    """config.json / config.toml (the resolved config, absolute paths), classes.json and, for
    mixnet_custom, arch.toml."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    values = run.cfg.to_dict()
    write_text(run.run_dir / rundir.CONFIG, json.dumps(values, indent=1))
    write_text(run.run_dir / rundir.CONFIG_TOML, dump_toml(values))
    write_text(run.run_dir / rundir.CLASSES, json.dumps(run.class_names))
    arch = getattr(ckpt.unwrap(run.model), "arch", None)
    if arch is not None:  # the table as trained: --resume reads it if the original file is gone
        from lightnets.models.arch import write_arch

        write_arch(arch, run.run_dir / rundir.ARCH)


def describe(run: Run, name: str) -> str:
    n_params = sum(p.numel() for p in ckpt.unwrap(run.model).parameters())
    return (
        f"{name}: {n_params / 1e6:.2f} M params, {len(run.class_names)} classes, "
        f"{len(run.train_loader.dataset)} train / {len(run.val_loader.dataset)} val "
        f"images, batch {run.cfg.batch_size} on {run.dist.world_size} x {run.device}, "
        f"run dir {run.run_dir}"
    )


def train(
    cfg: TrainConfig,
    model: nn.Module | None = None,
    on_step: Callable[[nn.Module, int], None] | None = None,
) -> TrainResult:
    """Build and fit a run (the Python entry point of `lightnets train`)."""
    run = None
    try:
        run = build_run(cfg, model, on_step)
        if run.dist.is_main:
            print(describe(run, cfg.model if model is None else type(model).__name__), flush=True)
            for line in run.header:
                print(f"  {line}", flush=True)
        return fit(run)
    finally:
        # DDP's reducer must not outlive the process group: freeing the last reference to a
        # Gloo group from the reducer joins Gloo's threads while holding the GIL, and a thread
        # still releasing a finished all-reduce waits for the GIL (a hang seen in CI)
        if run is not None:
            run.model = None
        distributed.cleanup()
