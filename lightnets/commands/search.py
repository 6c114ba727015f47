"""`lightnets search`: design a MixNet for your device and your data, within a latency budget.

    lightnets search DATA --target onnxruntime:int8 --latency-ms 2.5 --trials 40 -o runs/s \\
        --img-size 32 --epochs 10 --images-per-class 400 --seeds 3
    lightnets search DATA ... -o runs/s             # the same command again resumes the search

Candidates are proposed by regularized evolution within the budget (predicted latency on the
target), each trained by one `lightnets train` run on Ray Tune, weak ones stopped early by ASHA.
Flags this command does not know go to every trial's `lightnets train`. The front (accuracy vs
measured latency) goes to stdout; progress lines to stderr; search.json, candidates/, trials/,
front.{json,md,png}, best.toml and the closing comparison (compare/) to OUT.
"""

from __future__ import annotations

import argparse
import sys

from lightnets.commands import _flags
from lightnets.commands.compare import Progress, split_train_flags


def _search_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("data", metavar="DATA", help="image folder root/train/<class>/, CIFAR directory or "
        "'digits'")  # fmt: skip
    add("--target", required=True, help="where latency counts: eager or RUNTIME:PRECISION of "
        "`lightnets deploy` (onnxruntime:int8, openvino:fp32, ...)")  # fmt: skip
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--latency-ms", type=_flags.positive_float,
        help="latency budget, ms per image at batch 1 on the target (predicted while "
        "searching)")  # fmt: skip
    budget.add_argument("--latency-of", metavar="MODEL",
        help="the budget is this zoo model's latency on the target, measured at the start "
        "(e.g. mobilenet_v2_w035)")  # fmt: skip
    add("--trials", type=_flags.positive_int, required=True, help="candidates to train")
    _flags.add_output(parser, required=True, help="results directory (re-run to resume)")
    _flags.add_img_size(parser, help="image side of training and latency (default 224; 32 for "
                        "digits)")  # fmt: skip
    add("--threads", type=_flags.positive_int, default=1,
        help="threads of the latency predictions and measurements (default 1)")  # fmt: skip
    add("--epochs", type=_flags.positive_int, default=10, help="epochs per trial (default 10)")
    _flags.add_images_per_class(parser)
    add("--seed", type=_flags.nonnegative_int, default=0,
        help="seed of the candidates and of every trial's training (default 0)")  # fmt: skip
    add("--seeds", type=_flags.positive_int, default=1,
        help="seeds 0..S-1 of the closing comparison (default 1)")  # fmt: skip


def _evolution_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--population", type=_flags.positive_int, default=10,
        help="regularized evolution: candidates in the population (default 10)")  # fmt: skip
    add("--sample-size", type=_flags.positive_int, default=3,
        help="regularized evolution: tournament size (default 3)")  # fmt: skip
    add("--objective", choices=("accuracy", "mnas"), default="accuracy",
        help="accuracy, or mnas: acc x (latency / budget)^w (default accuracy)")  # fmt: skip
    add("--mnas-w", type=float, default=-0.07, help="w of --objective mnas (default -0.07)")
    add("--no-early-stop", dest="early_stop", action="store_false",
        help="train every trial to the end (no ASHA)")  # fmt: skip
    add("--grace-epochs", type=_flags.positive_int,
        help="ASHA: epochs before a trial can be stopped (default epochs // 3)")  # fmt: skip
    add("--reduction-factor", type=_flags.positive_int, default=2,
        help="ASHA: keep the top 1/eta at each rung (default 2)")  # fmt: skip
    add("--max-concurrent", type=_flags.positive_int,
        help="trials at once (default: this machine's CPUs / --cpus-per-trial; part of the "
        "search: a resumed search keeps its own)")  # fmt: skip
    add("--no-compare", dest="closing_compare", action="store_false",
        help="skip the closing comparison with the zoo models within the budget")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightnets search",
        description="Search MixNet-style networks within a latency budget on your target and "
        "data (regularized evolution on Ray Tune, ASHA early stopping); hand back the Pareto "
        "front, the best architecture file and a comparison with the zoo.",
        epilog="Any other flag goes to every trial's `lightnets train` (see its --help).",
    )
    _search_options(parser)
    _evolution_options(parser)
    _flags.add_placement(parser)
    add = parser.add_argument
    add("--no-deterministic", dest="deterministic", action="store_false",
        help="let trials use non-deterministic kernels (a resumed search may then "
        "differ)")  # fmt: skip
    add("--no-progress", action="store_true", help="no per-trial lines")
    _flags.add_format(parser, choices=("table", "markdown", "json"))
    return parser


class SearchProgress:
    """One stderr line per step of the search; the closing comparison's through compare's."""

    def __init__(self, enabled: bool = True):
        self.enabled, self.compare = enabled, Progress(enabled)

    def write(self, line: str) -> None:
        if self.enabled:
            print(line, file=sys.stderr)

    def __call__(self, kind: str, trial: str | None, info: dict) -> None:
        if kind.startswith("compare:"):
            self.compare(kind.split(":", 1)[1], trial, info)
        elif kind in LINES:
            self.write(LINES[kind](trial, info))


def _done(trial, info) -> str:
    acc = info.get("acc")
    acc = f"val acc {acc:.2f}%" if acc is not None else "no accuracy"
    return f"done {trial}: {acc} after {info.get('epoch')} epochs"


LINES = {
    "predictor": lambda t, i: (
        f"latency predictor for {i['target']}: "
        + ("cached fit" if i["fitted"] else "timing parts and networks (a few minutes, cached)")
    ),
    "measured": lambda t, i: f"budget: {t} runs in {i['latency_ms']:.3g} ms on the target",
    "refit": lambda t, i: f"fitting the predictor on {i['networks']} networks near the budget",
    "budget": lambda t, i: (
        f"budget {i['budget_ms']:.3g} ms; the smallest network of the space is predicted at "
        f"{i['smallest_ms']:.3g} ms"
    ),
    "start": lambda t, i: (
        f"search: {i['trials']} trials in {i['out']} ({i['finished']} trained earlier: replayed)"
    ),
    "propose": lambda t, i: (
        f"propose {t}: predicted {i['predicted_ms']:.3g} ms"
        + (f", mutates {i['parent']}" if i["parent"] else ", sampled")
    ),
    "done": _done,
    "retry": lambda t, i: f"retry {t}: attempt {i['failures']} died; resuming from its checkpoint",
    "failed": lambda t, i: f"failed {t} after {i['failures']} attempts (see OUT/logs/)",
    "measure": lambda t, i: f"measuring {i['candidates']} candidates end to end on the target",
    "compare": lambda t, i: (
        f"closing comparison: {i['winner']} vs {', '.join(i['models']) or 'no zoo model'} "
        "(measured within the budget on the target)"
    ),
}


def print_result(result: dict, fmt: str, progress: SearchProgress) -> None:
    from lightnets.search.front import render_front
    from lightnets.search.handback import closing_columns
    from lightnets.search.spec import SearchSpec
    from lightnets.tables import render

    extra = {k: result[k] for k in ("out", "best", "failed", "files")}
    if fmt == "json":
        extra["compare"] = _compare_summary(result.get("compare"))
    print(render_front(result["front"], fmt, notes=result["notes"], extra=extra))
    if fmt == "json":
        return
    best = result["best"]
    if best is not None:
        print(f"\nbest: {best['id']}, val acc {best['acc']:.2f}%, {best['latency_ms']:.3f} ms "
              f"measured -> {result['files']['best.toml']}")  # fmt: skip
    closing = result.get("compare")
    if closing is not None:
        rows = closing["result"]["models"]
        print(f"\nclosing comparison ({closing['result']['out']}):\n")
        columns = closing_columns(SearchSpec.from_dict(result["spec"]))
        print(render(rows, columns, fmt, notes=closing["result"]["notes"]))
    progress.write("wrote " + ", ".join(result["files"].values()))


def _compare_summary(closing: dict | None) -> dict | None:
    if closing is None:
        return None
    return {"winner": closing["winner"], "within": closing["within"],
            "zoo_ms": closing["zoo_ms"], "models": closing["result"]["models"]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    mine, train_args = split_train_flags(parser, argv)
    args = _flags.parse_args(parser, mine)
    from lightnets.search.searching import search

    progress = SearchProgress(not args.no_progress)
    kwargs = {k: v for k, v in vars(args).items() if k not in ("output", "format", "no_progress")}
    try:
        result = search(output=args.output, train_args=train_args, on_event=progress, **kwargs)
    finally:
        progress.compare.close()
    print_result(result, args.format, progress)
    return 1 if result["failed"] else 0
