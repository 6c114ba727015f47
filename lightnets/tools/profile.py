"""`lightnets profile`: what each model costs here, beside what its paper claimed.

    lightnets profile                          # the headline set, one model per family
    lightnets profile "mixnet_*" mobilenet_v2_w100 --batch 1,64 --threads 4 --format markdown
    lightnets profile mixnet_s --layers --top 10        # where the time goes, block by block
    lightnets profile --runtime onnxruntime --plot pareto.png

The numbers come from lightnets.profiling (pure functions); this module parses arguments, runs
them with a progress bar on stderr, and prints the table on stdout.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lightnets import create_model, list_models, model_card
from lightnets import profiling as P
from lightnets.errors import ConfigError, MissingDependencyError, UnknownNameError
from lightnets.registry import resolve_name

# One model per family: what `lightnets profile` with no names measures (under 2 min on 2 cores).
# fmt: off
HEADLINE = (
    "mixnet_s", "mixnet_m", "mixnet_l",
    "mobilenet_v1_w100", "mobilenet_v2_w100", "mobilenet_v3_large_w100", "mobilenet_v3_small_w100",
    "shufflenet_v1_g3_w100", "shufflenet_v2_w100", "squeezenet_1_1", "xception", "mobilefacenet",
    "efficientnet_b0", "mnasnet_a1", "vgnet_g_1_0mp", "vgnet_f_1_5mp",
)
# fmt: on


@dataclass(frozen=True)
class Column:
    key: str  # field of ModelProfile / LayerCost / OpCost; the CSV and JSON key
    header: str
    spec: str = ""  # format spec for numbers; "" for text
    note: str = ""  # footnote under the table


# fmt: off
#         key                header          spec    note
COLUMNS = (
    Column("model",          "model"),
    Column("resolution",     "res",          "d"),
    Column("params_m",       "params M",     ".2f",
           "params M: learned parameters (nn.Parameter), millions."),
    Column("fixed_k",        "fixed K",      ".1f",
           "fixed K: fixed kernel values (conv-weight-shaped buffers, e.g. VGNet's Gaussian and "
           "edge kernels), thousands; convolved but not learned."),
    Column("macs_m",         "MACs M",       ".1f",
           "MACs M: multiply-accumulates per image of convolutions and matrix products "
           "(torch.utils.flop_counter FLOPs / 2); biases, BN, activations, pooling and adds not "
           "included - the papers' FLOPs/mult-adds convention."),
    Column("all_ops_m",      "all ops M",    ".1f",
           "all ops M: MACs plus 1 op per output element of BN (inference scale+shift), "
           "activations and elementwise add/mul (residuals, SE gating), plus 1 per input element "
           "of pooling/means; split, concat, shuffle and padding count 0."),
    Column("peak_mem_mb",    "act MB",       ".1f",
           "act MB: peak bytes of tensors alive during one no-grad forward of one image "
           "(activations, temporaries, output; not weights or input), MiB."),
    Column("latency_ms",     "ms",           ".2f",
           "ms / IQR: median and interquartile range of latency at the small batch "
           "(torch.utils.benchmark blocked_autorange after warm-up, fixed threads); no IQR from "
           "fewer than 4 timed blocks."),
    Column("latency_iqr_ms", "IQR",          ".2f"),
    Column("throughput_ips", "img/s",        ".0f",
           "img/s: images per second at the large batch (median)."),
    Column("paper_params_m", "paper params", ".2f",
           "paper params / MACs / top-1: the paper's figures (ImageNet top-1 %); d% = (ours - "
           "paper) / paper, MACs only at the paper's resolution."),
    Column("d_params_pct",   "d%",           "+.1f"),
    Column("paper_macs_m",   "paper MACs",   ".0f"),
    Column("d_macs_pct",     "d%",           "+.1f"),
    Column("paper_top1",     "top-1",        ".1f"),
    Column("ref_params_m",   "ref params",   ".3f",
           "ref params / ref MACs: exact counts of a reference implementation (timm, "
           "torchvision) with the same MAC counter."),
    Column("ref_macs_m",     "ref MACs",     ".1f"),
)

LAYER_COLUMNS = (
    Column("name",     "block"),
    Column("kind",     "kind"),
    Column("params",   "params",   ",d"),
    Column("macs_m",   "MACs M",   ".2f"),
    Column("all_ops_m", "all ops M", ".2f"),
    Column("time_ms",  "ms",       ".3f"),
    Column("time_pct", "time %",   ".1f"),
)

OP_COLUMNS = (
    Column("op",       "operator"),
    Column("calls",    "calls",    "d"),
    Column("time_ms",  "ms",       ".3f"),
    Column("time_pct", "time %",   ".1f"),
)
# fmt: on


def _cell(value, spec: str) -> str:
    if value is None:
        return "-"
    return format(value, spec) if spec else str(value)


def render_table(rows: list[dict], columns: Sequence[Column], markdown: bool = False) -> str:
    """Aligned text (or a GitHub markdown table): text left-aligned, numbers right-aligned."""
    cells = [[_cell(r.get(c.key), c.spec) for c in columns] for r in rows]
    headers = [c.header for c in columns]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    right = [bool(c.spec) for c in columns]

    def line(values):
        parts = [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)]
        return "| " + " | ".join(parts) + " |" if markdown else "  ".join(parts).rstrip()

    if markdown:
        rule = (
            "|"
            + "|".join(
                ("-" * (w + 1) + ":") if r else (":" + "-" * (w + 1)) for w, r in zip(widths, right)
            )
            + "|"
        )
    else:
        rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in cells)])


def render_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue().rstrip("\n")


def footnotes(columns: Sequence[Column], machine: dict) -> str:
    notes = [c.note for c in columns if c.note]
    where = (
        f"machine: {machine['cpu']}, {machine['threads']} threads, torch {machine['torch']}, "
        f"device {machine['device']}, runtime {machine['runtime']}"
    )
    if "gpu" in machine:
        where += f" ({machine['gpu']})"
    return "\n".join([*notes, where])


# ---------------------------------------------------------------------------- arguments


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _batches(text: str) -> tuple[int, ...]:
    try:
        return tuple(_positive_int(part) for part in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 1,32, got {text!r}"
        ) from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightnets profile",
        description="Params, MACs, activation memory and latency of each model, beside the "
        "figures its paper reports. Progress goes to stderr, the table to stdout.",
    )
    parser.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="names or shell patterns ('mixnet_*'); default: one model per family",
    )
    parser.add_argument(
        "--resolution",
        type=_positive_int,
        help="input side in pixels (default: each model's card input_size)",
    )
    parser.add_argument(
        "--batch",
        type=_batches,
        default=(1, 32),
        help="latency at the smallest batch, throughput at the largest (default 1,32)",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help=f"intra-op threads (default: all {P.default_threads()} cores)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--runtime",
        choices=tuple(P.RUNTIMES),
        default="eager",
        help="what runs the timed forward (MACs and memory are always eager)",
    )
    parser.add_argument(
        "--reparameterize",
        action="store_true",
        help="profile the inference form: BN folded, mixed convs merged (lightnets.deploy)",
    )
    parser.add_argument(
        "--layers",
        action="store_true",
        help="one model: params, MACs and time share per block and per operator",
    )
    parser.add_argument(
        "--top",
        type=_positive_int,
        default=15,
        help="rows shown with --layers, by time (default 15)",
    )
    parser.add_argument("--format", choices=("table", "markdown", "csv", "json"), default="table")
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        help="Pareto chart: paper top-1 vs measured latency and vs MACs",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=2,
        help="untimed calls before timing the small batch (default 2)",
    )
    parser.add_argument(
        "--min-time",
        type=_positive_float,
        default=0.25,
        help="seconds of timed calls per measurement (default 0.25)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def resolve_models(patterns: Sequence[str]) -> list[str]:
    """Canonical names for names, aliases and shell patterns, in order and without repeats.

    No patterns: the HEADLINE set, skipping (with a note on stderr) names not registered.
    """
    if not patterns:
        registered = set(list_models())
        missing = [n for n in HEADLINE if n not in registered]
        if missing:
            print(
                f"lightnets profile: note: skipping unregistered headline models: "
                f"{' '.join(missing)}",
                file=sys.stderr,
            )
        names = [n for n in HEADLINE if n in registered]
        if not names:
            raise ConfigError("no headline model is registered; name the models to profile")
        return names
    names: list[str] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            found = list_models(pattern)
            if not found:
                raise UnknownNameError(
                    f"no model matches {pattern!r}; `lightnets models` lists them"
                )
        else:
            found = [resolve_name(pattern)]  # KeyError with close matches
        names += [n for n in found if n not in names]
    return names


def _check_args(args: argparse.Namespace, names: list[str]) -> None:
    if args.warmup < 0:
        raise ConfigError(f"--warmup must be >= 0, got {args.warmup}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: CUDA is not available on this machine")
    P.check_runtime(args.runtime, args.device)
    if args.layers and len(names) != 1:
        raise ConfigError(f"--layers profiles one model, got {len(names)}: {' '.join(names)}")
    if args.layers and args.plot:
        raise ConfigError("--plot draws the model table; it cannot be combined with --layers")
    if args.resolution is not None:
        for name in names:
            card = model_card(name)
            if args.resolution < card.min_input:
                raise ConfigError(
                    f"--resolution {args.resolution} is too small for {name} "
                    f"(min_input {card.min_input})"
                )


# ---------------------------------------------------------------------------- commands


def _progress(items, disable: bool):
    from tqdm import tqdm

    return tqdm(
        items, desc="profile", unit="model", file=sys.stderr, leave=False, disable=disable or None
    )


def build_model(name: str, args: argparse.Namespace):
    model = create_model(name)
    if args.reparameterize:
        from lightnets.deploy import reparameterize

        model = reparameterize(model)
    return model


def profile_models(names: list[str], args: argparse.Namespace) -> list[P.ModelProfile]:
    profiles = []
    bar = _progress(names, args.no_progress)
    for name in bar:
        bar.set_postfix_str(name)
        model = build_model(name, args)
        profiles.append(
            P.profile_model(
                model,
                resolution=args.resolution,
                batch=args.batch,
                threads=args.threads,
                device=args.device,
                runtime=args.runtime,
                warmup=args.warmup,
                min_run_time=args.min_time,
            )
        )
        del model
    return profiles


def _with_batch_headers(profiles: list[P.ModelProfile]) -> tuple[Column, ...]:
    """Headers name the batch sizes measured; the throughput column goes if none was measured."""
    lat = profiles[0].latency_batch if profiles else 1
    thr = profiles[0].throughput_batch if profiles else None
    cols = []
    for c in COLUMNS:
        if c.key == "latency_ms":
            c = dataclasses.replace(c, header=f"ms b{lat}")
        elif c.key == "throughput_ips":
            if thr is None:
                continue
            c = dataclasses.replace(c, header=f"img/s b{thr}")
        cols.append(c)
    return tuple(cols)


def print_models(profiles: list[P.ModelProfile], fmt: str, machine: dict) -> None:
    rows = [dataclasses.asdict(p) for p in profiles]
    columns = _with_batch_headers(profiles)
    if fmt == "json":
        notes = {c.key: c.note for c in COLUMNS if c.note}
        print(json.dumps({"machine": machine, "columns": notes, "models": rows}, indent=1))
    elif fmt == "csv":
        print(render_csv(rows))
    else:
        print(render_table(rows, columns, markdown=fmt == "markdown"))
        print()
        print(footnotes(columns, machine))


def print_layers(name: str, args: argparse.Namespace, machine: dict) -> None:
    model = build_model(name, args).to(args.device).eval()
    resolution = args.resolution or model.card.input_size
    P.check_resolution(model, resolution, name)
    x = P.example_input(model, resolution, 1, args.device)
    threads = args.threads or P.default_threads()
    blocks = P.layer_profile(
        model, x, threads=threads, warmup=args.warmup, min_run_time=args.min_time
    )
    ops = P.op_profile(P.eager_runner(model, x, threads, None), x, threads=threads)
    block_rows = [
        dict(dataclasses.asdict(b), macs_m=b.macs / 1e6, all_ops_m=b.all_ops / 1e6) for b in blocks
    ]
    block_rows.sort(key=lambda r: -r["time_pct"])
    op_rows = [dataclasses.asdict(o) for o in ops]
    if args.format == "json":
        print(
            json.dumps(
                {
                    "machine": machine,
                    "model": name,
                    "resolution": resolution,
                    "blocks": block_rows,
                    "ops": op_rows,
                },
                indent=1,
            )
        )
        return
    if args.format == "csv":
        print(render_csv(block_rows))
        return
    md = args.format == "markdown"
    total = sum(b.time_ms for b in blocks)
    print(
        f"{name} at {resolution}x{resolution}, batch 1: {total:.2f} ms per forward "
        f"(with hooks), top {args.top} blocks by time"
    )
    print(render_table(block_rows[: args.top], LAYER_COLUMNS, markdown=md))
    print()
    print(f"by operator (torch.profiler self CPU time), top {args.top}")
    print(render_table(op_rows[: args.top], OP_COLUMNS, markdown=md))
    print()
    print(footnotes((), machine))


def _log_tick(value: float, _pos=None) -> str:
    """Plain numbers at 1, 2 and 5 times a power of ten; other log ticks stay unlabelled."""
    if value <= 0:
        return ""
    mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
    return f"{value:g}" if any(abs(mantissa - m) < 1e-6 for m in (1, 2, 5)) else ""


def _label_offsets(xs: list[float], ys: list[float]) -> list[int]:
    """Vertical label offsets (points) that step labels down when points crowd each other: a
    label moves 9 pt lower for each earlier label it would overlap (log x, linear y)."""
    lx = [math.log10(x) for x in xs]
    span_x = (max(lx) - min(lx)) or 1.0
    span_y = (max(ys) - min(ys)) or 1.0
    placed: list[tuple[float, float, int]] = []
    offsets = []
    for fx, fy in zip(((v - min(lx)) / span_x for v in lx), ((v - min(ys)) / span_y for v in ys)):
        dy = 3
        while any(
            abs(fx - px) < 0.2 and abs(fy - py) < 0.05 and dy == pdy for px, py, pdy in placed
        ):
            dy -= 9
        placed.append((fx, fy, dy))
        offsets.append(dy)
    return offsets


def plot_pareto(profiles: list[P.ModelProfile], path: str) -> None:
    """Two panels, paper top-1 against measured latency and against MACs, one labelled point per
    model, with the Pareto front (nothing both cheaper and more accurate) as a step line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        raise MissingDependencyError(
            "--plot needs matplotlib: pip install lightnets[plot]"
        ) from None
    points = [p for p in profiles if p.paper_top1 is not None]
    if not points:
        raise ConfigError("--plot: none of the profiled models has a paper top-1 on its card")
    skipped = [p.model for p in profiles if p.paper_top1 is None]
    if skipped:
        print(
            f"lightnets profile: note: --plot leaves out models without a paper top-1: "
            f"{' '.join(skipped)}",
            file=sys.stderr,
        )
    panels = (
        ("latency_ms", f"measured latency, batch {points[0].latency_batch} (ms)"),
        ("macs_m", "MACs per image (M)"),
    )
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), sharey=True)
    for ax, (key, label) in zip(axes, panels):
        xs = [getattr(p, key) for p in points]
        ys = [p.paper_top1 for p in points]
        ax.scatter(xs, ys, s=22, zorder=3)
        for p, x, y, dy in zip(points, xs, ys, _label_offsets(xs, ys)):
            ax.annotate(p.model, (x, y), textcoords="offset points", xytext=(4, dy), fontsize=7)
        front, best = [], float("-inf")
        for x, y in sorted(zip(xs, ys), key=lambda t: (t[0], -t[1])):
            if y > best:
                front.append((x, y))
                best = y
        ax.step(
            *zip(*front), where="post", color="tab:orange", lw=1, zorder=2, label="Pareto front"
        )
        ax.set_xscale("log")
        ax.margins(x=0.12, y=0.08)  # room for the labels of the outermost points
        plain = FuncFormatter(_log_tick)
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
        ax.tick_params(axis="x", which="both", labelsize=8)
        ax.set_xlabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    axes[0].set_ylabel("paper ImageNet top-1 (%)")
    machine = P.machine_info(points[0].device, points[0].threads, points[0].runtime)
    fig.suptitle(
        f"lightnets profile: {machine['cpu']}, {points[0].threads} threads, {points[0].runtime}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = resolve_models(args.models)
    _check_args(args, names)
    machine = P.machine_info(args.device, args.threads, args.runtime)
    if args.layers:
        print_layers(names[0], args, machine)
        return 0
    profiles = profile_models(names, args)
    print_models(profiles, args.format, machine)
    if args.plot:
        plot_pareto(profiles, args.plot)
        print(f"lightnets profile: wrote {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
