"""`lightnets eval`: top-1/top-5, per-class accuracy, confusion matrix and images/s of a checkpoint.

    lightnets eval --checkpoint runs/mixnet_s-flowers-20250101-120000 [--data DIR] [--json]

The checkpoint (a run dir, a checkpoint dir or a .safetensors file) carries the training config
and class names, so the model, preprocessing and data default to those of the run. A weights file
without that metadata needs --model and --data.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

from lightnets.errors import ConfigError
from lightnets.train import checkpoint as ckpt
from lightnets.train import data as data_mod
from lightnets.train.config import TrainConfig
from lightnets.train.loop import evaluate
from lightnets.train.transforms import eval_transform


def load_for_inference(
    checkpoint: str,
    model_name: str | None = None,
    device: str = "cpu",
    prefer_ema: bool = True,
    workers: int = 0,
):
    """(model in eval mode, TrainConfig, class names, preprocessing) from a checkpoint."""
    from lightnets.checkpoints import build_model, preprocessing

    tensors, meta = ckpt.read_weights(checkpoint, prefer_ema)
    saved = json.loads(meta["config"]) if "config" in meta else {}
    class_names = json.loads(meta["class_names"]) if "class_names" in meta else None
    if model_name is None and "model" not in saved:
        raise ConfigError(f"--checkpoint {checkpoint} carries no config; pass --model NAME")
    cfg = TrainConfig.from_dict(saved, f"{checkpoint} config")
    cfg = dataclasses.replace(cfg, pretrained=None, model=model_name or cfg.model)
    if class_names is None:
        head = tensors.get("classifier.weight")
        n = head.shape[0] if head is not None else (cfg.num_classes or 1000)
        class_names = [str(i) for i in range(n)]
    import lightnets

    pre = preprocessing(cfg, lightnets.model_card(cfg.model))
    model = build_model(cfg, cfg.num_classes or len(class_names), pre.img_size)
    lightnets.load_weights(model, tensors)
    from lightnets.train.distributed import pick_device

    dev = pick_device(device)
    if dev.type == "cpu":
        from lightnets.train.distributed import cpu_threads

        torch.set_num_threads(cpu_threads(0, workers))
    model = model.to(dev).eval()
    return model, cfg, class_names, pre


def eval_dataset(cfg: TrainConfig, data: str, class_names: list[str], pre: dict, strict: bool):
    """Labelled images to evaluate: DIR/val (or DIR itself), or the val split of digits/CIFAR."""
    mode = "L" if cfg.in_chans == 1 else "RGB"
    transform = eval_transform(pre.img_size, pre.crop_pct)
    fmt = data_mod.detect_format(data, cfg.dataset if data == cfg.data else "auto")
    if fmt != "folder":
        splits = data_mod.open_splits(
            data,
            fmt,
            mode=mode,
            train_transform=transform,
            eval_transform=transform,
            val_split=cfg.val_split,
            seed=cfg.seed,
            strict=strict,
        )
        names, dataset, skipped = splits.class_names, splits.val, []
    else:
        root = Path(data) / "val" if (Path(data) / "val").is_dir() else Path(data)
        names = data_mod.class_dirs(root)
        unknown = sorted(set(names) - set(class_names))
        if unknown:
            raise ConfigError(
                f"--data {root}: classes {unknown[:5]} are not among the "
                f"checkpoint's {len(class_names)} classes"
            )
        paths, labels, skipped = data_mod.scan_folder(root, class_names, strict)
        dataset = data_mod.ImageDataset(labels, transform, mode, paths=paths, strict=strict)
        names = class_names
    if names != class_names:
        raise ConfigError(
            f"--data: {len(names)} classes but the checkpoint has "
            f"{len(class_names)} ({', '.join(class_names[:5])}...)"
        )
    return dataset, skipped


def plot_confusion(matrix: torch.Tensor, class_names: list[str], path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "confusion matrix PNG skipped: matplotlib missing (pip install lightnets[plot])"
    n = len(class_names)
    rows = matrix.double() / matrix.sum(1, keepdim=True).clamp(min=1)
    size = min(4 + 0.35 * n, 30)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rows.numpy(), cmap="Blues", vmin=0, vmax=1)
    if n <= 40:
        ax.set_xticks(range(n), class_names, rotation=90)
        ax.set_yticks(range(n), class_names)
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(
                        j,
                        i,
                        int(matrix[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if rows[i, j] > 0.5 else "black",
                    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    ckpt.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lightnets eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="run dir, checkpoint dir or .safetensors")
    p.add_argument("--data", help="labelled images (default: the run's data)")
    p.add_argument("--model", help="model name (default: the run's)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights, not the EMA")
    p.add_argument("--strict", action="store_true", help="fail on the first unreadable image")
    p.add_argument("--out", help="directory for confusion.png (default: next to the weights)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or args.workers < 0:
        raise ConfigError("--batch-size must be >= 1 and --workers >= 0")
    model, cfg, class_names, pre = load_for_inference(
        args.checkpoint, args.model, args.device, not args.no_ema, args.workers
    )
    dataset, skipped = eval_dataset(cfg, args.data or cfg.data, class_names, pre, args.strict)
    loader = data_mod.make_loader(
        dataset, args.batch_size, train=False, seed=0, workers=args.workers
    )
    device = next(model.parameters()).device
    mean = torch.tensor(pre.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, device=device).view(1, -1, 1, 1)
    res = evaluate(
        model,
        loader,
        device=device,
        mean=mean,
        std=std,
        num_classes=len(class_names),
        confusion=True,
    )
    matrix = res.pop("confusion")
    per_class = {
        name: (100 * float(matrix[i, i]) / float(matrix[i].sum()) if matrix[i].sum() else None)
        for i, name in enumerate(class_names)
    }
    skipped = skipped + res.pop("skipped")
    out_dir = Path(args.out) if args.out else _default_out(args.checkpoint)
    out_dir.mkdir(parents=True, exist_ok=True)
    note = plot_confusion(matrix, class_names, out_dir / "confusion.png")
    result = {
        "model": cfg.model,
        "checkpoint": args.checkpoint,
        **res,
        "per_class": per_class,
        "confusion": matrix.tolist(),
        "skipped": skipped,
        "confusion_png": None if note else str(out_dir / "confusion.png"),
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(
            f"{cfg.model}: top-1 {res['top1']:.2f}%  top-5 {res['top5']:.2f}%  loss "
            f"{res['loss']:.4f}  on {res['images']} images  {res['images_per_s']:.0f} img/s"
        )
        width = max(map(len, class_names))
        for name, acc in per_class.items():
            print(f"  {name:<{width}}  {'-' if acc is None else f'{acc:6.2f}%'}")
        if not note:
            print(f"confusion matrix: {out_dir / 'confusion.png'}")
    if note:
        print(note, file=sys.stderr)
    if skipped:
        print(
            f"skipped {len(skipped)} unreadable image(s): " + "; ".join(skipped[:5]),
            file=sys.stderr,
        )
    return 0


def _default_out(checkpoint: str) -> Path:
    path = Path(checkpoint)
    return path if path.is_dir() else path.parent
