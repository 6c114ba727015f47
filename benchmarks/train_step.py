"""Training-step benchmark: lightnets' models beside timm's, same torch, one process.

A step is what `lightnets train` does per batch: forward, cross-entropy, backward, SGD with
momentum. Every variant of every model is timed in interleaved rounds (a burst of noise on a shared
machine hits all rows alike); each cell reports the min and the median over rounds of the mean
step time of a round. timm rows appear when timm is importable (it needs torchvision, which the
project's torch build cannot load: run this from an environment with torch + torchvision + timm and
lightnets installed with `pip install --no-deps -e .`).

    python benchmarks/train_step.py                             # 224 px, batch 16, vs timm
    python benchmarks/train_step.py --size 32 --batch 64 --small-input \
        --variants eager channels_last merged "merged channels_last"
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch import nn

import lightnets
from lightnets.layers.mixconv import MixConv2d

TIMM_NAMES = {"mixnet_s": "mixnet_s", "mobilenet_v2_w100": "mobilenetv2_100"}
VARIANTS = (
    "eager",
    "channels_last",
    "merged",
    "merged channels_last",
    "timm",
    "timm channels_last",
)


def build(name: str, variant: str, num_classes: int, small_input: bool) -> nn.Module:
    if variant.startswith("timm"):
        import timm

        return timm.create_model(TIMM_NAMES[name], num_classes=num_classes)
    kwargs = {"small_input": True} if small_input else {}
    model = lightnets.create_model(name, num_classes=num_classes, **kwargs)
    if variant.startswith("merged"):  # every MixConv as one conv on zero-padded kernels
        for m in model.modules():
            if isinstance(m, MixConv2d) and not m.merge_blocker():
                m.impl = "merged"
    return model


def make_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, channels_last: bool):
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(TIMM_NAMES))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--small-input", action="store_true", help="stride-1 stem (lightnets only)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=3, help="steps per round")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        import timm  # noqa: F401
    except ImportError:
        args.variants = [v for v in args.variants if not v.startswith("timm")]
        print("timm not importable: its rows are left out", file=sys.stderr)

    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 10, (args.batch,))
    cells = {}
    for name in args.models:
        for variant in args.variants:
            model = build(name, variant, 10, args.small_input)
            step = make_step(model, x, y, variant.endswith("channels_last"))
            step()  # warm-up: allocator, lazy init
            step()
            cells[(name, variant)] = step
    times = {key: [] for key in cells}
    for _ in range(args.rounds):
        for key, step in cells.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[key].append((time.perf_counter() - start) / args.steps * 1e3)

    print(
        f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, {args.size} px, "
        f"{args.rounds} rounds x {args.steps} steps"
    )
    print("| model | variant | step ms min / median | img/s (min) | vs timm (min / median) |")
    print("|---|---|---|---|---|")
    for (name, variant), ms in times.items():
        base = times.get((name, "timm"))
        ratio = (
            f"{min(ms) / min(base):.2f} / {statistics.median(ms) / statistics.median(base):.2f}"
            if base
            else "-"
        )
        print(
            f"| {name} | {variant} | {min(ms):.1f} / {statistics.median(ms):.1f} | "
            f"{args.batch / min(ms) * 1e3:.0f} | {ratio} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
