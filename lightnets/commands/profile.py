"""`lightnets profile`: what each model costs here, beside what its paper claimed.

    lightnets profile                          # the headline set, one model per family
    lightnets profile "mixnet_*" mobilenet_v2_w100 --batch 1,64 --threads 4 --format markdown
    lightnets profile mixnet_s --layers --top 10        # where the time goes, block by block
    lightnets profile --runtime onnxruntime --plot pareto.png
    lightnets profile mixnet_s --arch my_net.toml       # a table of your own beside MixNet-S

The numbers come from lightnets.profiling (pure functions) and the tables from lightnets.tables;
this module parses arguments, checks them before anything is measured, shows progress on stderr
and prints the table on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence

import torch

from lightnets import create_model, list_models, model_card, profiling
from lightnets.commands import _flags
from lightnets.commands.models import match_models
from lightnets.deploy.artifacts import check_runtime
from lightnets.deploy.targets import TIMED_RUNTIMES
from lightnets.errors import ConfigError
from lightnets.files import check_writable
from lightnets.profiling import COLUMNS, LAYER_COLUMNS, OP_COLUMNS, machine_line
from lightnets.registry import resolve_name
from lightnets.tables import footnotes, render, render_csv, render_table

# One model per family: what `lightnets profile` with no names measures (under 2 min on 2 cores).
# fmt: off
HEADLINE = (
    "mixnet_s", "mixnet_m", "mixnet_l",
    "mobilenet_v1_w100", "mobilenet_v2_w100", "mobilenet_v3_large_w100", "mobilenet_v3_small_w100",
    "shufflenet_v1_g3_w100", "shufflenet_v2_w100", "squeezenet_1_1", "xception", "mobilefacenet",
    "efficientnet_b0", "mnasnet_a1", "vgnet_g_1_0mp", "vgnet_f_1_5mp",
)
# fmt: on


def _batches(text: str) -> tuple[int, ...]:
    try:
        return tuple(_flags.positive_int(part) for part in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 1,32, got {text!r}"
        ) from None


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
    _flags.add_arch(parser)
    _flags.add_img_size(parser, help="input side in pixels (default: each model's card img_size)")
    _add_what_is_timed(parser)
    parser.add_argument(
        "--layers",
        action="store_true",
        help="one model: params, MACs and time share per block and per operator",
    )
    parser.add_argument(
        "--top",
        type=_flags.positive_int,
        default=15,
        help="rows shown with --layers, by time (default 15)",
    )
    _flags.add_format(parser)
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        help="Pareto chart: paper top-1 vs measured latency and vs MACs",
    )
    _add_timing(parser)
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress on stderr (a bar on a terminal, else one line per model)",
    )
    return parser


def _add_what_is_timed(parser: argparse.ArgumentParser) -> None:
    """--batch, --threads, --device, --runtime and --reparameterize: what runs, on what."""
    parser.add_argument(
        "--batch",
        type=_batches,
        default=(1, 32),
        help="latency at the smallest batch, throughput at the largest (default 1,32)",
    )
    parser.add_argument(
        "--threads",
        type=_flags.positive_int,
        default=None,
        help=f"intra-op threads (default: all {profiling.default_threads()} cores)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--runtime",
        choices=TIMED_RUNTIMES,
        default="eager",
        help="what runs the timed forward (MACs and memory are always eager)",
    )
    parser.add_argument(
        "--reparameterize",
        action="store_true",
        help="profile the inference form: BN folded, mixed convs merged (lightnets.deploy)",
    )


def _add_timing(parser: argparse.ArgumentParser) -> None:
    """--warmup and --min-time: how long each measurement runs."""
    parser.add_argument(
        "--warmup",
        type=_flags.nonnegative_int,
        default=2,
        help="untimed calls before timing the small batch (default 2)",
    )
    parser.add_argument(
        "--min-time",
        type=_flags.positive_float,
        default=0.25,
        help="seconds of timed calls per measurement (default 0.25)",
    )


def resolve_models(patterns: Sequence[str], arch: str | None = None) -> list[str]:
    """Canonical names for names, aliases and shell patterns, in order and without repeats.

    No patterns: the HEADLINE set, skipping (with a note on stderr) names not registered; with
    `arch` (--arch FILE), mixnet_custom alone, and after the named models otherwise.
    Unknown names and patterns raise UnknownNameError naming close matches.
    """
    if arch is not None:
        names = resolve_models(patterns) if patterns else []
        return names + ["mixnet_custom"] * ("mixnet_custom" not in names)
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
        is_pattern = any(ch in pattern for ch in "*?[")
        found = match_models(pattern) if is_pattern else [resolve_name(pattern)]
        names += [n for n in found if n not in names]
    return names


def check_args(args: argparse.Namespace, names: list[str]) -> None:
    """Every mistake the arguments can hold, found before the first model is built."""
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: CUDA is not available on this machine")
    check_runtime(args.runtime, args.device)
    if args.arch is not None:  # the table fits the size it will be measured at
        from lightnets.models.arch import check_fits, read_arch

        check_fits(read_arch(args.arch), args.img_size or model_card("mixnet_custom").img_size)
    elif "mixnet_custom" in names:
        raise ConfigError("mixnet_custom needs an architecture file: --arch FILE")
    if args.layers and len(names) != 1:
        raise ConfigError(f"--layers profiles one model, got {len(names)}: {' '.join(names)}")
    if args.img_size is not None:
        for name in names:
            smallest = model_card(name).min_input
            if args.img_size < smallest:
                raise ConfigError(
                    f"--img-size {args.img_size} is too small for {name} (min_input {smallest})"
                )
    if args.plot:
        if args.layers:
            raise ConfigError("--plot draws the model table; it cannot be combined with --layers")
        if all(model_card(name).top1 is None for name in names):
            raise ConfigError("--plot: none of these models has a paper top-1 on its card")
        from lightnets.profiling.plot import require_matplotlib

        require_matplotlib()
        check_writable(args.plot, "--plot")


# ---------------------------------------------------------------------------- running


def progress(names: Sequence[str], enabled: bool) -> Iterator[str]:
    """Yield `names`, showing progress on stderr: a tqdm bar on a terminal, else one plain line
    per model ("[3/16] mixnet_s ...") so that logs and pipes see it too."""
    if not enabled:
        yield from names
    elif sys.stderr.isatty():
        from tqdm import tqdm

        with tqdm(names, desc="profile", unit="model", file=sys.stderr, leave=False) as bar:
            for name in bar:
                bar.set_postfix_str(name)
                yield name
    else:
        for i, name in enumerate(names, 1):
            print(f"[{i}/{len(names)}] {name} ...", file=sys.stderr, flush=True)
            yield name


def build_model(name: str, args: argparse.Namespace):
    if name == "mixnet_custom":
        model = create_model(name, arch=args.arch)
        model.model_name = f"mixnet_custom ({os.path.basename(args.arch)})"  # which table
    else:
        model = create_model(name)
    if args.reparameterize:
        from lightnets.deploy import reparameterize

        model = reparameterize(model)
    return model


def profile_models(names: Iterable[str], args: argparse.Namespace) -> list:
    profiles = []
    for name in names:
        model = build_model(name, args)
        profiles.append(
            profiling.profile_model(
                model,
                img_size=args.img_size,
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


# ---------------------------------------------------------------------------- printing


def print_models(profiles: list, fmt: str, machine: dict) -> None:
    rows = [dataclasses.asdict(p) for p in profiles]
    if fmt == "json":  # the notes of every column, also those not shown with these batches
        print(render(rows, COLUMNS, fmt, json_key="models", json_extra={"machine": machine}))
        return
    notes = [*profiling.profile_notes(profiles), machine_line(machine)]
    print(render(rows, profiling.profile_columns(profiles), fmt, notes=notes))


def print_layers(name: str, args: argparse.Namespace, machine: dict) -> None:
    report = profiling.profile_layers(
        build_model(name, args),
        args.img_size,
        threads=args.threads,
        device=args.device,
        warmup=args.warmup,
        min_run_time=args.min_time,
        name=name,
    )
    blocks, ops, img_size, busy = report.blocks, report.ops, report.img_size, report.noise
    block_rows = [
        dict(dataclasses.asdict(b), macs_m=b.macs / 1e6, all_ops_m=b.all_ops / 1e6) for b in blocks
    ]
    block_rows.sort(key=lambda r: -r["time_pct"])
    op_rows = [dataclasses.asdict(o) for o in ops]
    if args.format == "json":
        report = {"machine": machine, "model": name, "img_size": img_size, "noise": busy}
        print(json.dumps({**report, "blocks": block_rows, "ops": op_rows}, indent=1))
        return
    if args.format == "csv":
        print(render_csv(block_rows))
        return
    md = args.format == "markdown"
    total = sum(b.time_ms for b in blocks)
    print(
        f"{name} at {img_size}x{img_size}, batch 1: {total:.2f} ms per forward "
        f"(with hooks), top {args.top} blocks by time"
    )
    print(render_table(block_rows[: args.top], LAYER_COLUMNS, markdown=md))
    print()
    print(f"by operator (torch.profiler self CPU time), top {args.top}")
    print(render_table(op_rows[: args.top], OP_COLUMNS, markdown=md))
    print()
    notes = [profiling.REPARAM_NOTE] if args.reparameterize else []
    if busy:
        notes.append(f"noisy: {busy} while timing: the ms columns are probably inflated")
    print(footnotes((), [*notes, machine_line(machine)], markdown=md))


def main(argv: list[str] | None = None) -> int:
    args = _flags.parse_args(build_parser(), argv)
    names = resolve_models(args.models, args.arch)
    check_args(args, names)
    machine = profiling.machine_info(args.device, args.threads, args.runtime)
    if args.layers:
        print_layers(names[0], args, machine)
        return 0
    profiles = profile_models(progress(names, not args.no_progress), args)
    print_models(profiles, args.format, machine)
    if args.plot:
        from lightnets.profiling.plot import plot_pareto

        skipped = plot_pareto(profiles, args.plot)
        if skipped:
            print(
                f"lightnets profile: note: --plot leaves out models without a paper top-1: "
                f"{' '.join(skipped)}",
                file=sys.stderr,
            )
        print(f"lightnets profile: wrote {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
