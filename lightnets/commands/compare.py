"""`lightnets compare`: which network is best on *your* data, trained the same way, on Ray Tune.

    lightnets compare mobilenet_v2_w035 mixnet_s vgnet_g_1_0mp --data DIR --img-size 32 \\
        --seeds 3 --epochs 30 -o runs/cmp            # then: the same command again resumes
    lightnets compare 'mobilenet_v2_*k*' --data DIR --recipe mixnet --lr 0.05 -o runs/k
    lightnets compare --resume -o runs/cmp --address ray://head:10001 --cpus-per-trial 4
    lightnets compare runs/search/best.toml mobilenet_v2_w035 --data DIR --img-size 32 -o runs/b

Every model x seed is one `lightnets train` run directory (OUT/trials/<model>-s<seed>/); flags
this command does not know are passed to every trial's `lightnets train`. The table (mean ± std
over seeds, the per-seed values, params, MACs, latency) goes to stdout; one line per finished
trial and a bar with the ETA to stderr; results.{md,csv,json}, pareto.png and curves.png to OUT.
"""

from __future__ import annotations

import argparse
import sys

from lightnets.commands import _flags
from lightnets.errors import ConfigError


def add_sweep_options(parser: argparse.ArgumentParser) -> None:
    """The options `compare` and `study` share: budget, data, measurement, Ray placement."""
    add_trial_options(parser)
    add_latency_options(parser)
    _flags.add_placement(parser)
    parser.add_argument(
        "--no-deterministic",
        dest="deterministic",
        action="store_false",
        default=None,
        help="let trials use non-deterministic kernels (a resumed trial may then differ)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no bar or per-trial lines")
    _flags.add_format(parser)
    _flags.add_output(parser, help="results directory (default runs/compare-<hash>)")


def add_trial_options(parser: argparse.ArgumentParser) -> None:
    """What every trial trains on and with."""
    parser.add_argument("--data", default=None, help="image folder root/train/<class>/, CIFAR "
                        "directory or 'digits' (default digits)")  # fmt: skip
    parser.add_argument("--epochs", type=_flags.positive_int, help="epochs of every trial")
    parser.add_argument("--seeds", type=_flags.positive_int, help="seeds 0..S-1 per model")
    parser.add_argument("--recipe", help="lightnets train recipe (mixnet, finetune, FILE)")
    _flags.add_img_size(parser, help="image side of every trial (default: the models' cards)")
    _flags.add_images_per_class(parser)


def add_latency_options(parser: argparse.ArgumentParser) -> None:
    """How the models' latency is measured after the sweep."""
    parser.add_argument(
        "--runtime",
        choices=("eager", "onnxruntime"),
        default="eager",
        help="what runs the timed forward (default eager)",
    )
    parser.add_argument("--no-latency", action="store_true", help="params and MACs only")
    parser.add_argument(
        "--latency-threads",
        type=_flags.positive_int,
        default=1,
        help="threads of the latency measurement (default 1)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightnets compare",
        description="Train every model x seed the same way on your data (Ray Tune) and compare "
        "them: mean ± std over seeds, params, MACs, latency; differences within noise are "
        "not ranked.",
        epilog="Any other flag goes to every trial's `lightnets train` (see its --help).",
    )
    parser.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="model names, shell patterns ('mixnet_*') or architecture files (NAME.toml: "
        "a MixNet-style network named NAME)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="re-run the comparison stored in -o OUT (its models, seeds and settings)",
    )
    add_sweep_options(parser)
    return parser


# ------------------------------------------------------------------------------ train flags


def split_train_flags(parser: argparse.ArgumentParser, argv: list[str]):
    """(argv for this parser, flags for `lightnets train`): a flag of `lightnets train` that this
    parser lacks goes to the trials, with as many values as it takes."""
    own = {s for action in parser._actions for s in action.option_strings}
    if not any(a.startswith("--") and a.split("=", 1)[0] not in own for a in argv):
        return argv, []
    from lightnets.compare.checks import train_flag_arity

    arity = train_flag_arity()
    mine, train = [], []
    i = 0
    while i < len(argv):
        flag = argv[i].split("=", 1)[0]
        if argv[i].startswith("--") and flag not in own and flag in arity:
            n = 0 if "=" in argv[i] else arity[flag]
            train += argv[i : i + 1 + n]
            i += 1 + n
        else:
            mine.append(argv[i])
            i += 1
    return mine, train


# ------------------------------------------------------------------------------ progress


class Progress:
    """One stderr line per finished, retried or failed trial, and a tqdm bar with the ETA."""

    def __init__(self, enabled: bool = True):
        self.enabled, self.bar = enabled, None

    def write(self, line: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    def __call__(self, kind: str, trial: str | None, info: dict) -> None:
        if kind == "plan":
            reused, resumed = info["reused"], info["resumed"]
            self.write(
                f"{info['total']} trials in {info['out']}: {len(reused)} finished (reused), "
                f"{len(resumed)} resume from a checkpoint, {info['run']} to run"
            )
            if self.enabled and info["run"]:
                from tqdm import tqdm

                self.bar = tqdm(total=info["run"], unit="trial", file=sys.stderr, desc="trials")
        elif kind == "done":
            acc = info.get("acc")
            acc = f"val acc {acc:.2f}%" if acc is not None else "no accuracy"
            node = (info.get("node") or "?")[:8]
            resumed = ", resumed" if info.get("resumed") else ""
            self.write(
                f"done {trial}: {acc} after {info.get('epochs')} epochs, "
                f"{info.get('wall_s', 0):.0f} s on node {node}{resumed}"
            )
            self._step()
        elif kind == "retry":
            self.write(
                f"retry {trial}: attempt {info['failures']} died; resuming from its checkpoint"
            )
        elif kind == "failed":
            self.write(f"failed {trial} after {info['failures']} attempts (see OUT/logs/)")
            self._step()
        elif kind == "costs":
            self.close()
            self.write(f"measuring params, MACs and latency of {info['models']} models")

    def _step(self) -> None:
        if self.bar is not None:
            self.bar.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def sweep_kwargs(args) -> dict:
    return dict(
        runtime=args.runtime,
        latency=not args.no_latency,
        latency_threads=args.latency_threads,
        address=args.address,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        workers=args.workers,
        max_failures=args.max_failures,
    )


def print_results(result: dict, fmt: str, progress: Progress) -> None:
    from lightnets.compare.results import render_results

    keys = ("out", "failed", "study", "scale", "claims", "kernels")
    extra = {k: result[k] for k in keys if k in result}
    print(render_results(result["models"], fmt, notes=result["notes"], extra=extra))
    if fmt in ("table", "markdown"):
        progress.write("wrote " + ", ".join(result["files"].values()))


def expand_models(names: list[str]) -> list[str]:
    from lightnets.commands.models import match_models

    out = []
    for name in names:
        is_file = name.endswith((".toml", ".json"))
        out += match_models(name) if any(c in name for c in "*?[") and not is_file else [name]
    return out


def split_archs(names: list[str]) -> tuple[list[str], dict[str, str]]:
    """(model names, {name: file}): an architecture file FILE.toml / FILE.json among the models
    is the network named by its file name without the suffix."""
    from pathlib import Path

    archs = {Path(n).stem: n for n in names if n.endswith((".toml", ".json"))}
    return [Path(n).stem if n.endswith((".toml", ".json")) else n for n in names], archs


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    mine, train_args = split_train_flags(parser, argv)
    args = _flags.parse_args(parser, mine)
    from lightnets.compare import compare

    kwargs = dict(
        epochs=args.epochs,
        seeds=args.seeds,
        recipe=args.recipe,
        img_size=args.img_size,
        images_per_class=args.images_per_class,
        data=args.data,
        train_args=train_args,
        deterministic=args.deterministic,
    )
    models, archs = split_archs(expand_models(args.models))
    if args.resume:
        from lightnets.compare.spec import read_spec

        if not args.output:
            raise ConfigError("--resume needs -o OUT, the results directory to continue")
        saved = read_spec(args.output)
        if saved is None:
            raise FileNotFoundError(f"-o {args.output}: no compare.json to resume")
        given = {k: v for k, v in kwargs.items() if v not in (None, [], ())}
        kwargs = dict(
            epochs=saved.epochs,
            seeds=len(saved.seeds),
            recipe=saved.recipe,
            img_size=saved.img_size,
            images_per_class=saved.images_per_class,
            data=saved.data,
            train_args=saved.train_args,
            deterministic=saved.deterministic,
        )
        kwargs.update(given)  # a changed setting is refused by the spec check
        models = models or list(saved.models)
    elif not models:
        parser.error("name at least one MODEL (or --resume -o OUT)")
    kwargs["data"] = kwargs["data"] or "digits"
    kwargs["seeds"] = kwargs["seeds"] or 1
    kwargs["deterministic"] = kwargs["deterministic"] is not False
    progress = Progress(not args.no_progress)
    try:
        result = compare(
            models,
            output=args.output,
            archs=archs,
            on_event=progress,
            **kwargs,
            **sweep_kwargs(args),
        )
    finally:
        progress.close()
    print_results(result, args.format, progress)
    return 1 if result["failed"] else 0
