"""Deployment benchmark: does re-parameterization make MixNet as fast per MAC as MobileNetV2?

One process, every variant of every model timed in interleaved rounds (a burst of noise on a
shared machine then hits all rows alike); each cell reports the min and the median over rounds.
Variants: PyTorch eager (NCHW), eager channels_last, re-parameterized eager, ONNX Runtime on the
plain export, ORT on the re-parameterized export, ORT on the re-parameterized export with channels
aligned to ORT's blocked layout (lightnets.deploy.layout), and OpenVINO on the re-parameterized
export when installed. Every row's output is compared with the eager model's (relative error).

    python benchmarks/deploy.py                       # docs/deploy.md's table (2 threads, 224 px)
    python benchmarks/deploy.py --rounds 3 --batch 1  # quicker
    python benchmarks/deploy.py --mixconv             # MixConv2d split vs merged, training step
    python benchmarks/deploy.py --wait-idle           # on a shared machine (Linux): see below

--wait-idle starts each timed cell only once the CPU was idle for 0.1 s (lightnets.cpu.
wait_for_idle_cpu, from /proc/stat; `lightnets profile` reads the same counters to flag noise). On a
2-core machine shared with test runs, bursts of other work otherwise land in most cells and
inflate even the min over rounds by 30-60%; waiting keeps most of them out, and the min and
median over rounds handle the rest.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils import benchmark

import lightnets
from lightnets.cpu import wait_for_idle_cpu
from lightnets.deploy import export_onnx, reparameterize
from lightnets.deploy.checks import relative_error
from lightnets.deploy.layout import align_channels
from lightnets.deploy.loaders import ort_session
from lightnets.profiling import cpu_model

MODELS = ("mixnet_s", "mixnet_m", "mixnet_l", "mobilenet_v2_w100", "mobilenet_v3_large_w100")
VARIANTS = ("eager", "channels_last", "reparam eager", "ORT plain", "ORT reparam",
            "ORT reparam+aligned", "OpenVINO reparam")  # fmt: skip


def randomize_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial BN statistics, so that the equivalence column tests real folding."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(c, generator=g) + 1.0)
    return model


def build_variants(name: str, size: int, threads: int, batches, workdir: Path, openvino: bool):
    """name -> {variant: {batch: callable(x) -> output}} and the eager model (the reference)."""
    model = randomize_norms(lightnets.create_model(name)).eval()
    fused = reparameterize(model)
    plain_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    files = {}
    for tag, module in (("plain", model), ("reparam", fused), ("aligned", align_channels(fused))):
        files[tag] = workdir / f"{name}_{tag}.onnx"
        export_onnx(module, files[tag], size, reference=model)

    def torch_run(module, channels_last=False):
        def run(x):
            with torch.inference_mode():
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                return module(x)

        return run

    def ort_run(path):
        session = ort_session(path, threads)
        return lambda x: session.run(None, {"input": x.numpy()})[0]

    variants = {
        "eager": {b: torch_run(model) for b in batches},
        "channels_last": {b: torch_run(plain_cl, True) for b in batches},
        "reparam eager": {b: torch_run(fused) for b in batches},
        "ORT plain": {b: ort_run(files["plain"]) for b in batches},
        "ORT reparam": {b: ort_run(files["reparam"]) for b in batches},
        "ORT reparam+aligned": {b: ort_run(files["aligned"]) for b in batches},
    }
    if openvino:
        from lightnets.deploy.openvino import compile_openvino

        variants["OpenVINO reparam"] = {
            b: (lambda run: lambda x: run(x.numpy()))(
                compile_openvino(files["reparam"], threads, (b, 3, size, size))
            )
            for b in batches
        }
    return variants, model


def time_call(fn, x, threads: int, number: int) -> float:
    timer = benchmark.Timer("fn(x)", globals={"fn": fn, "x": x}, num_threads=threads)
    return timer.timeit(number).median


def run_benchmark(args) -> dict:
    torch.set_num_threads(args.threads)
    openvino = not args.no_openvino and _has_openvino()
    rows, cells, busy = {}, [], 0
    with tempfile.TemporaryDirectory(prefix="lightnets-deploy-") as tmp:
        inputs = {b: torch.randn(b, 3, args.img_size, args.img_size) for b in args.batch}
        for name in args.models:
            print(f"building {name} ...", file=sys.stderr)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                variants, reference = build_variants(
                    name, args.img_size, args.threads, args.batch, Path(tmp), openvino
                )
            with torch.inference_mode():
                expected = {b: reference(x) for b, x in inputs.items()}
            macs = _macs(reference, args.img_size)
            for variant, by_batch in variants.items():
                row = rows.setdefault((name, variant), {"macs_m": macs, "times": {}, "error": 0})
                for b, fn in by_batch.items():
                    out = fn(inputs[b])  # also the warm-up call
                    fn(inputs[b])
                    row["error"] = max(row["error"], relative_error(out, expected[b]))
                    row["times"][b] = []
                    cells.append((name, variant, b, fn))
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
            for name, variant, b, fn in cells:
                if args.wait_idle:
                    busy += not wait_for_idle_cpu()
                number = max(1, args.calls // b)
                rows[(name, variant)]["times"][b].append(
                    time_call(fn, inputs[b], args.threads, number)
                )
    if busy:
        print(f"{busy} cells timed without an idle CPU (30 s timeout)", file=sys.stderr)
    return {"rows": rows, "openvino": openvino}


def _has_openvino() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        print("OpenVINO not installed (pip install lightnets[openvino]): no OpenVINO rows")
        return False
    return True


def _macs(model, size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, 3, size, size))
    return counter.get_total_flops() / 2 / 1e6


def report(result: dict, args) -> str:
    rows = result["rows"]
    head = ["model", "MACs (M)", "variant"]
    for b in args.batch:
        head += [f"b{b} min ms", f"b{b} median ms"] + ([f"b{b} img/s"] if b > 1 else [])
    head.append("rel. error")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (name, variant), row in rows.items():
        cells = [name, f"{row['macs_m']:.0f}", variant]
        for b in args.batch:
            t = row["times"][b]
            cells += [f"{min(t) * 1e3:.2f}", f"{statistics.median(t) * 1e3:.2f}"]
            if b > 1:
                cells.append(f"{b / statistics.median(t):.0f}")
        cells.append(f"{row['error']:.1e}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *_ratios(rows, args)]
    return "\n".join(lines)


def _ratios(rows, args) -> list[str]:
    def med(name, variant, b):
        t = rows.get((name, variant), {}).get("times", {}).get(b)
        return statistics.median(t) if t else None

    def best(name, variant, b):
        t = rows.get((name, variant), {}).get("times", {}).get(b)
        return min(t) if t else None

    out = []
    mix, mb2 = "mixnet_s", "mobilenet_v2_w100"
    for stat, f in (("median", med), ("min", best)):
        for variant in ("ORT reparam", "ORT reparam+aligned", "OpenVINO reparam"):
            if 1 in args.batch and f(mix, variant, 1) and f(mb2, "ORT plain", 1):
                out.append(
                    f"- {stat}: MixNet-S {variant} / MobileNetV2 ORT plain, batch 1: "
                    f"{f(mix, variant, 1) / f(mb2, 'ORT plain', 1):.2f}x (target <= 1.2x)"
                )
            if 1 in args.batch and f(mix, variant, 1) and f(mix, "ORT plain", 1):
                out.append(
                    f"- {stat}: MixNet-S ORT plain / {variant}, batch 1: "
                    f"{f(mix, 'ORT plain', 1) / f(mix, variant, 1):.2f}x faster (target >= 2x)"
                )
            big = max(args.batch)
            if big > 1 and f(mix, variant, big) and f(mix, "ORT plain", big):
                out.append(
                    f"- {stat}: MixNet-S {variant} / ORT plain images/s, batch {big}: "
                    f"{f(mix, 'ORT plain', big) / f(mix, variant, big):.2f}x (target >= 1.8x)"
                )
    return out


def mixconv_training(args) -> str:
    """Forward+backward time of MixNet-S's mixed depthwise layers, split vs merged (CPU)."""
    from lightnets.layers import MixConv2d

    torch.set_num_threads(args.threads)
    # (channels, kernels, stride, input side) of MixNet-S's mixed depthwise layers at 224 px
    layers = [(144, (3, 5, 7), 2, 56), (240, (3, 5), 1, 28), (240, (3, 5, 7), 2, 28),
              (480, (3, 5), 1, 14), (480, (3, 5, 7), 1, 14), (360, (3, 5, 7, 9), 1, 14),
              (720, (3, 5, 7, 9), 2, 14), (1200, (3, 5, 7, 9), 1, 7)]  # fmt: skip
    times = {(impl, i): [] for impl in ("split", "merged") for i in range(len(layers))}
    for _ in range(args.rounds):
        for i, (c, k, s, h) in enumerate(layers):
            x = torch.randn(args.mixconv_batch, c, h, h, requires_grad=True)
            for impl in ("split", "merged"):  # interleaved per layer: noise hits both alike
                layer = MixConv2d(c, c, k, s, impl=impl)

                def step(x, layer=layer):
                    y = layer(x)
                    y.backward(torch.ones_like(y))

                times[impl, i].append(time_call(step, x, args.threads, 2))
    lines = [
        f"layer {c:4d} ch {str(k):13s} s{s} {h:2d}px: split min {min(times['split', i]) * 1e3:7.1f}"
        f" ms, merged min {min(times['merged', i]) * 1e3:7.1f} ms"
        for i, (c, k, s, h) in enumerate(layers)
    ]
    for impl in ("split", "merged"):
        per_layer = [times[impl, i] for i in range(len(layers))]
        lines.append(
            f"MixConv2d {impl:6s}: forward+backward of MixNet-S's {len(layers)} mixed layers, "
            f"batch {args.mixconv_batch}: sum of per-layer min "
            f"{sum(min(t) for t in per_layer) * 1e3:.1f} ms, of medians "
            f"{sum(statistics.median(t) for t in per_layer) * 1e3:.1f} ms"
        )
    faster = sum(min(times["merged", i]) < min(times["split", i]) for i in range(len(layers)))
    lines.append(f"merged faster in {faster} of {len(layers)} layers (by min)")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--calls", type=int, default=8, help="batch-1 calls per timing (b: /b)")
    parser.add_argument("--no-openvino", action="store_true")
    parser.add_argument(
        "--wait-idle", action="store_true", help="start each cell on an idle CPU (Linux)"
    )
    parser.add_argument("--json", help="also write the raw times here")
    parser.add_argument("--mixconv", action="store_true", help="time MixConv2d impls instead")
    parser.add_argument("--mixconv-batch", type=int, default=16)
    args = parser.parse_args(argv)
    header = (
        f"{cpu_model()}, {args.threads} threads, torch "
        f"{torch.__version__}, {args.img_size}px, {args.rounds} interleaved rounds"
    )
    if args.mixconv:
        print(header)
        print(mixconv_training(args))
        return 0
    result = run_benchmark(args)
    print(header + _versions())
    print(report(result, args))
    if args.json:
        raw = [
            {"model": n, "variant": v, "macs_m": r["macs_m"], "error": r["error"],
             "times_s": {str(b): t for b, t in r["times"].items()}}
            for (n, v), r in result["rows"].items()
        ]  # fmt: skip
        Path(args.json).write_text(json.dumps(raw, indent=1))
    return 0


def _versions() -> str:
    import onnxruntime

    text = f", onnxruntime {onnxruntime.__version__}"
    try:
        import openvino

        text += f", openvino {openvino.__version__.split('-')[0]}"
    except ImportError:
        pass
    return text


if __name__ == "__main__":
    sys.exit(main())
