"""The training loop, top to bottom: step -> epoch -> evaluate -> fit (epochs, checkpoints).

Everything it works on is built elsewhere (lightnets.train.cli.build_run) and handed over in a
`Run`. A step is: normalise the uint8 batch on the device, optional mixup/cutmix, forward under
autocast, check the loss and gradient are finite, optimizer + scheduler + EMA update. The loop
checks for Ctrl-C / SIGTERM after every step and checkpoints before leaving.
"""

from __future__ import annotations

import contextlib
import csv
import json
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

from lightnets.errors import ConfigError
from lightnets.train import checkpoint as ckpt
from lightnets.train.config import TrainConfig
from lightnets.train.distributed import DistInfo, all_reduce
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


class _StopRequested(Exception):
    pass


class SignalFlag:
    """Remembers SIGINT / SIGTERM instead of dying, so the loop can checkpoint first."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:  # a second Ctrl-C: leave now
            raise KeyboardInterrupt
        self.signum = signum
        print(
            f"\n{signal.Signals(signum).name}: finishing this step, then checkpointing",
            file=sys.stderr,
        )

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
    last = ckpt.find_checkpoint(run.run_dir, "last")
    kept = f"last good checkpoint kept: {last}" if last else "no checkpoint had been written yet"
    return (
        f"non-finite loss or gradient at epoch {p.epoch + 1}, step {p.step_in_epoch + 1}: "
        f"{where}; training stopped, {kept}"
    )


# --- one epoch


def train_one_epoch(run: Run, stop: SignalFlag) -> dict:
    """Train the rest of `progress.epoch`; returns its train metrics. Raises _StopRequested."""
    from tqdm import tqdm

    cfg, p = run.cfg, run.progress
    run.model.train()
    if cfg.freeze_backbone:  # frozen layers keep their BN statistics
        for name, m in ckpt.unwrap(run.model).named_children():
            if name != "classifier":
                m.eval()
    sampler = run.train_loader.batch_sampler
    sampler.set_epoch(p.epoch, p.step_in_epoch)
    r = p.running
    bar = tqdm(
        total=sampler.batches_per_epoch(),
        initial=p.step_in_epoch,
        leave=False,
        desc=f"epoch {p.epoch + 1}/{cfg.epochs}",
        dynamic_ncols=True,
        disable=not (cfg.progress and run.dist.is_main),
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
        flags = all_reduce(
            torch.tensor([float(stop.signum is not None), float(len(y) < 2)]),
            torch.distributed.ReduceOp.MAX,
        )
        if flags[0]:
            raise _StopRequested
        r["skipped"] += skipped
        if not flags[1]:
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
            save(run, best=False)
        bar.update()
        if bar.n % 5 == 0 or bar.n == bar.total:
            bar.set_postfix(
                loss=f"{r['loss'] / max(r['seen'], 1):.3f}",
                acc=f"{100 * r['correct'] / max(r['seen'], 1):.1f}",
                lr=f"{run.optimizer.param_groups[0]['lr']:.2e}",
                ips=f"{r['seen'] * run.dist.world_size / max(r['total_s'], 1e-9):.0f}",
                wait=f"{r['data_s'] / max(r['total_s'], 1e-9):.0%}",
                refresh=False,
            )
    bar.close()
    if stop.signum is not None:
        raise _StopRequested
    seen = all_reduce(torch.tensor([r["loss"], r["correct"], r["seen"]], dtype=torch.float64))
    return {
        "train_loss": float(seen[0] / max(seen[2], 1)),
        "train_acc": float(100 * seen[1] / max(seen[2], 1)),
        "lr": run.optimizer.param_groups[0]["lr"],
        "epoch_s": r["total_s"],
        "images_per_s": float(seen[2]) / max(r["total_s"], 1e-9),
        "data_wait": r["data_s"] / max(r["total_s"], 1e-9),
    }


# --- evaluation


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader,
    *,
    device,
    mean,
    std,
    num_classes: int,
    amp_dtype=None,
    channels_last=False,
    confusion=False,
) -> dict:
    """loss, top-1, top-5 (%), images/s over this rank's shard, summed over ranks.

    With `confusion`, also the (true, predicted) count matrix (single process).
    """
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64)  # loss, top1, top5, n
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64) if confusion else None
    skipped: list[str] = []
    k = min(5, num_classes)
    autocast = (
        torch.autocast(device.type, dtype=amp_dtype)
        if amp_dtype is not None
        else contextlib.nullcontext()
    )
    start = time.perf_counter()
    for x, y, bad in loader:
        skipped += bad
        if not len(y):
            continue
        x = normalize(x.to(device), mean, std)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = y.to(device)
        with autocast:
            logits = model(x).float()
        sums[0] += float(F.cross_entropy(logits, y, reduction="sum"))
        top = logits.topk(k, dim=1).indices
        sums[1] += float((top[:, 0] == y).sum())
        sums[2] += float((top == y[:, None]).any(1).sum())
        sums[3] += len(y)
        if matrix is not None:
            matrix += torch.bincount(
                y.cpu() * num_classes + top[:, 0].cpu(), minlength=num_classes**2
            ).reshape(num_classes, num_classes)
    elapsed = time.perf_counter() - start
    all_reduce(sums)
    n = max(float(sums[3]), 1.0)
    out = {
        "loss": float(sums[0]) / n,
        "top1": 100 * float(sums[1]) / n,
        "top5": 100 * float(sums[2]) / n,
        "images": int(sums[3]),
        "images_per_s": float(sums[3]) / max(elapsed, 1e-9),
        "skipped": skipped,
    }
    if matrix is not None:
        out["confusion"] = matrix
    return out


# --- checkpoints and run-dir files


def training_state(run: Run) -> dict:
    p = run.progress
    return {
        "format": ckpt.STATE_FORMAT,
        "epoch": p.epoch,
        "step_in_epoch": p.step_in_epoch,
        "global_step": p.global_step,
        "best_metric": p.best_metric,
        "best_epoch": p.best_epoch,
        "history": p.history,
        "running": p.running,
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "ema": run.ema.state_dict() if run.ema is not None else None,
        "scaler": run.scaler.state_dict(),
        "rng": ckpt.rng_state(),
        "config": run.cfg.to_dict(),
        "class_names": run.class_names,
    }


def restore(run: Run, ckpt_dir: Path) -> None:
    """Load weights and everything else from a checkpoint dir into a freshly built run."""
    from safetensors.torch import load_file

    state = ckpt.load_state(ckpt_dir)
    if state["class_names"] != run.class_names:
        raise ConfigError(
            f"--resume: the checkpoint has {len(state['class_names'])} classes "
            f"{state['class_names'][:5]}..., the data {len(run.class_names)}"
        )
    ckpt.unwrap(run.model).load_state_dict(load_file(str(ckpt_dir / "model.safetensors")))
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    if run.ema is not None:
        run.ema.load_state_dict(state["ema"])
    p = run.progress
    p.epoch, p.step_in_epoch, p.global_step = (
        state["epoch"],
        state["step_in_epoch"],
        state["global_step"],
    )
    p.best_metric, p.best_epoch = state["best_metric"], state["best_epoch"]
    p.history, p.running = list(state["history"]), dict(state["running"])
    ckpt.set_rng_state(state["rng"])  # last: building the run above drew random numbers


def save(run: Run, best: bool) -> None:
    """Rank 0 writes RUN/last (and copies it to RUN/best); other ranks do nothing."""
    if not run.dist.is_main:
        return
    p = run.progress
    meta = ckpt.checkpoint_metadata(run.cfg.to_dict(), run.class_names, p.epoch, p.global_step)
    ema = run.ema.module if run.ema is not None else None
    ckpt.save_checkpoint(run.run_dir, "last", run.model, ema, training_state(run), meta)
    if best:
        ckpt.copy_checkpoint(run.run_dir, "last", "best")


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    import io

    ckpt.write_text(run_dir / "metrics.json", json.dumps(history, indent=1))
    columns = list(dict.fromkeys(k for row in history for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns)
    writer.writeheader()
    writer.writerows(history)
    ckpt.write_text(run_dir / "metrics.csv", buf.getvalue())


def plot_curves(run_dir: Path, history: list[dict]) -> str | None:
    """curves.png with loss and accuracy per epoch; a note instead if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "curves.png skipped: matplotlib is not installed (pip install lightnets[plot])"
    if not history:
        return None
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax in (("loss", ax_loss), ("acc", ax_acc)):
        for split in ("train", "val", "ema_val"):
            values = [row.get(f"{split}_{key}") for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, [math.nan if v is None else v for v in values], "o-", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss" if key == "loss" else "top-1 accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    ckpt.atomic_write(run_dir / "curves.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return None


# --- all epochs


def fit(run: Run) -> TrainResult:
    """Train from `run.progress` to cfg.epochs, evaluating and checkpointing after each epoch."""
    cfg, p, main = run.cfg, run.progress, run.dist.is_main
    if not p.running:
        p.new_epoch_sums()
    eval_kw = {
        "device": run.device,
        "mean": run.mean,
        "std": run.std,
        "num_classes": len(run.class_names),
        "amp_dtype": run.amp_dtype,
        "channels_last": cfg.channels_last,
    }
    with SignalFlag() as stop:
        try:
            while p.epoch < cfg.epochs:
                row = {"epoch": p.epoch + 1, **train_one_epoch(run, stop)}
                skipped = sorted(set(p.running["skipped"]))
                last_epoch = p.epoch + 1 == cfg.epochs
                if (p.epoch + 1) % cfg.eval_every == 0 or last_epoch:
                    val = evaluate(ckpt.unwrap(run.model), run.val_loader, **eval_kw)
                    row.update(val_loss=val["loss"], val_acc=val["top1"], val_top5=val["top5"])
                    skipped = sorted(set(skipped) | set(val["skipped"]))
                    if run.ema is not None:
                        ema = evaluate(run.ema.module, run.val_loader, **eval_kw)
                        row.update(
                            ema_val_loss=ema["loss"],
                            ema_val_acc=ema["top1"],
                            ema_val_top5=ema["top5"],
                        )
                row["skipped_images"] = len(skipped) + len(run.skipped_at_scan)
                metric = row.get("ema_val_acc", row.get("val_acc", -math.inf))
                is_best = metric > p.best_metric
                if is_best:
                    p.best_metric, p.best_epoch = metric, p.epoch + 1
                p.history.append(row)
                p.epoch, p.step_in_epoch = p.epoch + 1, 0
                p.new_epoch_sums()
                if main:
                    save(run, best=is_best)
                    write_metrics(run.run_dir, p.history)
                    _report_epoch(cfg, row, skipped)
                    if cfg.tensorboard:
                        _tensorboard(run.run_dir, row)
                if p.epoch == cfg.stop_at_epoch and p.epoch < cfg.epochs:
                    if main:
                        print(
                            f"stopped after epoch {p.epoch} as asked (--stop-at-epoch); "
                            f"continue with: lightnets train --resume {run.run_dir}"
                        )
                    break
        except _StopRequested:
            save(run, best=False)
            if main:
                print(
                    f"stopped by {signal.Signals(stop.signum).name} at epoch {p.epoch + 1}, "
                    f"step {p.step_in_epoch}; checkpoint saved. Continue with: "
                    f"lightnets train --resume {run.run_dir}",
                    file=sys.stderr,
                )
            return TrainResult(run.run_dir, p.history, p.best_metric, stop.signum)
        finally:
            if main and p.history:
                note = plot_curves(run.run_dir, p.history)
                if note:
                    print(note, file=sys.stderr)
    return TrainResult(run.run_dir, p.history, p.best_metric)


def _tensorboard(run_dir: Path, row: dict) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(run_dir / "tensorboard")) as writer:
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)):
                writer.add_scalar(key, value, row["epoch"])


def _report_epoch(cfg: TrainConfig, row: dict, skipped: list[str]) -> None:
    parts = [
        f"epoch {row['epoch']}/{cfg.epochs}",
        f"train loss {row['train_loss']:.3f} acc {row['train_acc']:.1f}%",
    ]
    if "val_acc" in row:
        parts.append(
            f"val loss {row['val_loss']:.3f} acc {row['val_acc']:.2f}% top5 {row['val_top5']:.1f}%"
        )
    if "ema_val_acc" in row:
        parts.append(f"ema acc {row['ema_val_acc']:.2f}%")
    parts.append(
        f"lr {row['lr']:.2e}  {row['images_per_s']:.0f} img/s  "
        f"data wait {row['data_wait']:.0%}  {row['epoch_s']:.1f} s"
    )
    print("  ".join(parts), flush=True)
    if skipped:
        print(
            f"skipped {len(skipped)} unreadable image(s): "
            + "; ".join(skipped[:5])
            + (" ..." if len(skipped) > 5 else ""),
            file=sys.stderr,
        )
