"""The training loop, top to bottom: step -> epoch -> fit (epochs, evaluation, checkpoints).

Everything it works on is built elsewhere (lightnets.train.run.build_run) and handed over in a
`Run`. A step is: normalise the uint8 batch on the device, optional mixup/cutmix, forward under
autocast, check the loss and gradient are finite, optimizer + scheduler + EMA update. The loop
checks for Ctrl-C / SIGTERM after every step and checkpoints before leaving; a second signal
does not cut that short (a third Ctrl-C does, keeping the previous checkpoint).

Every number reduced over ranks lives on the rank's device: NCCL reduces CUDA tensors only.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightnets import rundir
from lightnets.train import checkpoint as ckpt
from lightnets.train import report
from lightnets.train.config import TrainConfig
from lightnets.train.distributed import DistInfo, all_reduce, reduce_values
from lightnets.train.evaluate import evaluate
from lightnets.train.nonfinite import NonFiniteLossError, locate_nonfinite
from lightnets.train.transforms import mix_batch, normalize


@dataclass
class Progress:
    """Where the run is; saved in every checkpoint so that a resume continues exactly."""

    epoch: int = 0  # current epoch, 0-based
    step_in_epoch: int = 0  # batches of `epoch` already consumed
    global_step: int = 0
    best_metric: float = -math.inf
    best_epoch: int = -1
    history: list[dict] = field(default_factory=list)
    running: dict = field(default_factory=dict)  # this epoch's sums so far

    def new_epoch_sums(self) -> None:
        self.running = {
            "loss": 0.0,
            "correct": 0,
            "seen": 0,
            "data_s": 0.0,
            "total_s": 0.0,
            "skipped": [],
        }


@dataclass
class Run:
    cfg: TrainConfig
    model: nn.Module  # maybe DDP / compiled; checkpoint.unwrap gives the plain model
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    ema: nn.Module | None
    train_loader: object
    val_loader: object
    dist: DistInfo
    run_dir: Path
    class_names: list[str]
    mean: Tensor
    std: Tensor
    amp_dtype: torch.dtype | None
    progress: Progress
    on_step: Callable[[nn.Module, int], None] | None = None
    criterion: nn.Module = field(default_factory=nn.CrossEntropyLoss)
    skipped_at_scan: list[str] = field(default_factory=list)  # unreadable files found up front
    header: list[str] = field(default_factory=list)  # what was chosen for the user, and why

    @property
    def device(self) -> torch.device:
        return self.dist.device

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


@dataclass
class TrainResult:
    run_dir: Path
    history: list[dict]
    best_metric: float
    interrupted: int | None = None  # signal number when stopped by Ctrl-C / SIGTERM
    is_main: bool = True  # rank 0, the process that reports


class _StopRequested(Exception):
    pass


class SignalFlag:
    """Remembers SIGINT / SIGTERM instead of dying, so the loop can checkpoint first.

    A repeated signal is noted, not obeyed: a second Ctrl-C in a row is usually impatience, and
    leaving mid-step would lose the work since the last checkpoint. A third Ctrl-C leaves at once
    (the previous checkpoint stays intact: saves are atomic).
    """

    def __init__(self, verbose: bool = True):
        self.signum: int | None = None
        self.repeats = 0
        self.verbose = verbose
        self._previous = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.signum is None:
            self.signum = signum
            message = f"\n{name}: finishing this step, then checkpointing"
        else:
            self.repeats += signum == signal.SIGINT
            if self.repeats >= 2:
                raise KeyboardInterrupt
            message = f"\n{name}: already stopping; Ctrl-C twice more quits without saving"
        if self.verbose:
            print(message, file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)


# --- one step


def prepare(run: Run, x: Tensor) -> Tensor:
    x = normalize(x.to(run.device, non_blocking=True), run.mean, run.std)
    if run.cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def train_step(run: Run, x: Tensor, y: Tensor) -> tuple[float, int]:
    """One optimisation step; (loss, correct top-1). Raises NonFiniteLossError before updating."""
    cfg, p = run.cfg, run.progress
    x, y = prepare(run, x), y.to(run.device, non_blocking=True)
    target = y
    if cfg.mixup or cfg.cutmix:
        seed = hash((cfg.seed, p.epoch, p.step_in_epoch, run.dist.rank)) & 0xFFFFFFFF
        x, target = mix_batch(
            x, F.one_hot(y, len(run.class_names)).float(), cfg.mixup, cfg.cutmix, seed
        )
    with run.autocast():
        logits = run.model(x)
        loss = run.criterion(logits.float(), target)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    params = [q for q in run.model.parameters() if q.grad is not None]
    if run.scaler.is_enabled():  # fp16: inf gradients are expected and skipped by the scaler
        finite = torch.isfinite(loss.detach())
        if cfg.clip_grad:
            run.scaler.unscale_(run.optimizer)
            nn.utils.clip_grad_norm_(params, cfg.clip_grad)
    else:  # the norm is also the finiteness check of every gradient
        norm = nn.utils.clip_grad_norm_(params, cfg.clip_grad or math.inf)
        finite = torch.isfinite(loss.detach()) & torch.isfinite(norm)
    # `finite` is on the device already
    if not bool(all_reduce(finite.float().reshape(1), torch.distributed.ReduceOp.MIN)):
        raise NonFiniteLossError(_nonfinite_message(run, x, target))
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    if run.ema is not None:
        run.ema.update_parameters(ckpt.unwrap(run.model))
    return float(loss.detach()), int((logits.detach().argmax(1) == y).sum())


def _nonfinite_message(run: Run, x: Tensor, target: Tensor) -> str:
    p = run.progress
    where = locate_nonfinite(ckpt.unwrap(run.model), x, target, run.criterion, run.autocast)
    last = rundir.find_checkpoint(run.run_dir, rundir.LAST)
    kept = f"last good checkpoint kept: {last}" if last else "no checkpoint had been written yet"
    return (
        f"non-finite loss or gradient at epoch {p.epoch + 1}, step {p.step_in_epoch + 1}: "
        f"{where}; training stopped, {kept}"
    )


# --- one epoch


def train_one_epoch(run: Run, stop: SignalFlag) -> dict:
    """Train the rest of `progress.epoch`; returns its train metrics. Raises _StopRequested."""
    cfg, p = run.cfg, run.progress
    run.model.train()
    if cfg.freeze_backbone:
        freeze_statistics(ckpt.unwrap(run.model))
    sampler = run.train_loader.batch_sampler
    sampler.set_epoch(p.epoch, p.step_in_epoch)
    r = p.running
    bar = report.progress_bar(
        sampler.batches_per_epoch(),
        p.step_in_epoch,
        f"epoch {p.epoch + 1}/{cfg.epochs}",
        cfg.progress and run.dist.is_main,
    )
    batches = iter(run.train_loader)
    while True:
        t0 = time.perf_counter()
        try:
            x, y, skipped = next(batches)
        except StopIteration:
            break
        t_data = time.perf_counter() - t0
        # every rank agrees on stopping and on skipping a batch too small for BatchNorm
        stopping, too_small = reduce_values(
            [stop.signum is not None, len(y) < 2], run.device, torch.distributed.ReduceOp.MAX
        )
        if stopping:
            raise _StopRequested
        r["skipped"] += skipped
        if not too_small:
            loss, correct = train_step(run, x, y)
            r["loss"] += loss * len(y)
            r["correct"] += correct
            r["seen"] += len(y)
        p.step_in_epoch += 1
        p.global_step += 1
        r["data_s"] += t_data
        r["total_s"] += time.perf_counter() - t0
        if run.on_step is not None:
            run.on_step(ckpt.unwrap(run.model), p.global_step)
        if cfg.checkpoint_every and p.global_step % cfg.checkpoint_every == 0:
            ckpt.save_run(run, best=False)
        report.update_bar(bar, r, run.optimizer.param_groups[0]["lr"], run.dist.world_size)
    bar.close()
    if stop.signum is not None:
        raise _StopRequested
    loss_sum, correct, seen = reduce_values([r["loss"], r["correct"], r["seen"]], run.device)
    return {
        "train_loss": loss_sum / max(seen, 1),
        "train_acc": 100 * correct / max(seen, 1),
        "lr": run.optimizer.param_groups[0]["lr"],
        "epoch_s": r["total_s"],
        "images_per_s": seen / max(r["total_s"], 1e-9),
        "data_wait": r["data_s"] / max(r["total_s"], 1e-9),
    }


def freeze_statistics(model: nn.Module) -> None:
    """--freeze-backbone: the frozen layers run in eval mode (BatchNorm keeps its statistics, no
    stochastic depth); the classifier and the dropout in front of it keep training mode."""
    for name, child in model.named_children():
        if name != "classifier" and not isinstance(child, nn.Dropout):
            child.eval()


# --- all epochs


def fit(run: Run) -> TrainResult:
    """Train from `run.progress` to cfg.epochs, evaluating and checkpointing after each epoch."""
    cfg, p, main = run.cfg, run.progress, run.dist.is_main
    if not p.running:
        p.new_epoch_sums()
    with SignalFlag(verbose=main) as stop:
        try:
            while p.epoch < cfg.epochs:
                row = {"epoch": p.epoch + 1, **train_one_epoch(run, stop)}
                skipped = sorted(set(p.running["skipped"]))
                if (p.epoch + 1) % cfg.eval_every == 0 or p.epoch + 1 == cfg.epochs:
                    skipped = sorted(set(skipped) | set(validate(run, row)))
                end_epoch(run, row, skipped)
                if p.epoch == cfg.stop_at_epoch and p.epoch < cfg.epochs:
                    if main:
                        print(
                            f"stopped after epoch {p.epoch} as asked (--stop-at-epoch); "
                            f"continue with: lightnets train --resume {run.run_dir}"
                        )
                    break
        except _StopRequested:
            ckpt.save_run(run, best=False)
            # shut the DataLoader workers down here, while signals are still caught: left to the
            # garbage collector after this block, the shutdown met a second Ctrl-C as a
            # KeyboardInterrupt in the iterator's __del__, a traceback (seen in CI)
            run.train_loader = run.val_loader = None
            if main:
                report.note(
                    f"stopped by {signal.Signals(stop.signum).name} at epoch {p.epoch + 1}, "
                    f"step {p.step_in_epoch}; checkpoint saved. Continue with: "
                    f"lightnets train --resume {run.run_dir}"
                )
            return TrainResult(run.run_dir, p.history, p.best_metric, stop.signum, main)
        finally:
            if main and p.history:
                from lightnets.train.plots import plot_curves

                problem = plot_curves(run.run_dir, p.history)
                if problem:
                    report.note(problem)
    return TrainResult(run.run_dir, p.history, p.best_metric, None, main)


def validate(run: Run, row: dict) -> list[str]:
    """Evaluate the model (and its EMA) on the val split into `row`; the images skipped."""
    num_classes = len(run.class_names)
    kw = {
        "device": run.device,
        "mean": run.mean,
        "std": run.std,
        "num_classes": num_classes,
        "amp_dtype": run.amp_dtype,
        "channels_last": run.cfg.channels_last,
    }
    top5 = num_classes >= report.TOP5_MIN_CLASSES
    val = evaluate(ckpt.unwrap(run.model), run.val_loader, **kw)
    row.update(val_loss=val["loss"], val_acc=val["top1"])
    if top5:
        row["val_top5"] = val["top5"]
    if run.ema is not None:
        ema = evaluate(run.ema.module, run.val_loader, **kw)
        row.update(ema_val_loss=ema["loss"], ema_val_acc=ema["top1"])
        if top5:
            row["ema_val_top5"] = ema["top5"]
    return val["skipped"]


def end_epoch(run: Run, row: dict, skipped: list[str]) -> None:
    """Book the epoch's row, move on to the next epoch, and (rank 0) checkpoint and report."""
    p = run.progress
    row["skipped_images"] = len(skipped) + len(run.skipped_at_scan)
    metric = row.get("ema_val_acc", row.get("val_acc", -math.inf))
    is_best = metric > p.best_metric
    if is_best:
        p.best_metric, p.best_epoch = metric, p.epoch + 1
    p.history.append(row)
    p.epoch, p.step_in_epoch = p.epoch + 1, 0
    p.new_epoch_sums()
    if run.dist.is_main:
        ckpt.save_run(run, best=is_best)
        report.write_metrics(run.run_dir, p.history)
        report.epoch_done(row, run.cfg.epochs, skipped)
        if run.cfg.tensorboard:
            report.tensorboard(run.run_dir, row)
