"""`lightnets deploy MODEL|RUN_DIR --data DIR`: which runtime and precision is fastest for this
model on this machine, and what it costs in accuracy on your data.

    lightnets deploy runs/mixnet_s-flowers --data flowers/ -o deploy-mixnet_s
    lightnets deploy mixnet_s --checkpoint RUN --data DIR --runtimes onnxruntime,openvino \
        --precisions fp32,int8 --max-drop 0.5

For every installed runtime x precision (lightnets.deploy.targets), the command exports the model
(re-parameterized where the runtime gains from it) by `lightnets export`'s verified path (int8
calibrated on --calibration-images training images), evaluates each artifact's top-1 on DIR beside
the PyTorch model, and times it: batch 1 min and median over --rounds interleaved rounds (every cell
once per round, each started on an idle CPU), and images/s at --batch (an artifact with a fixed
batch is timed at its own). A runtime that is not installed is a row saying how to install it; an
artifact that fails its check is a row with the reason. It prints the table, writes OUT/deploy.json,
the artifacts under OUT/artifacts/ and a latency-vs-accuracy chart OUT/deploy.png, and names the
fastest artifact within --max-drop points of the PyTorch top-1. """

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lightnets.commands import _flags
from lightnets.deploy.targets import DEPLOY_RUNTIMES


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lightnets deploy",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("model", help="registered model name, or a run dir / weights file")
    _flags.add_checkpoint(p)
    p.add_argument(
        "--data", required=True, help="labelled images: DIR/val/<class>/ or DIR/<class>/"
    )
    p.add_argument(
        "--runtimes",
        type=_names,
        default=None,
        help=f"comma-separated (default: {', '.join(DEPLOY_RUNTIMES)})",
    )
    p.add_argument(
        "--precisions", type=_names, default=None, help="comma-separated (default: all four)"
    )
    p.add_argument(
        "--max-drop",
        type=float,
        default=1.0,
        help="top-1 points an artifact may lose against PyTorch to be named (default 1.0)",
    )
    p.add_argument("--calibrate", metavar="DIR", help="int8 calibration images (default: DIR/train "
                   "beside --data, else the run's training images)")  # fmt: skip
    p.add_argument("--calibration-images", type=_flags.positive_int, default=200, metavar="N")
    p.add_argument("--keep-float", metavar="KINDS", help="int8: layers kept in float (see export)")
    _flags.add_img_size(p)
    p.add_argument(
        "--threads",
        type=_flags.positive_int,
        default=None,
        help="threads every runtime runs with (default: the CPUs this process may use)",
    )
    p.add_argument(
        "--rounds", type=_flags.positive_int, default=5, help="timing rounds (default 5)"
    )
    p.add_argument("--batch", type=_flags.positive_int, default=32, help="throughput batch (32)")
    p.add_argument(
        "--no-wait-idle",
        dest="wait_idle",
        action="store_false",
        help="start each timed cell at once instead of on an idle CPU",
    )
    p.add_argument("--no-ema", action="store_true", help="use the raw weights, not the EMA")
    _flags.add_output(p, help="folder for deploy.json, deploy.png and the artifacts (./deploy)")
    _flags.add_format(p)
    return p


def main(argv: list[str] | None = None) -> int:
    from lightnets.checkpoints import load_checkpoint
    from lightnets.cpu import default_threads
    from lightnets.deploy import artifacts, matrix, report
    from lightnets.errors import ConfigError
    from lightnets.files import check_writable
    from lightnets.tables import render

    args = _flags.parse_args(build_parser(), argv)
    runtimes, precisions, keep_float = _checked_choices(args)
    checkpoint, name = _flags.model_or_run(args.model, args.checkpoint)
    loaded = load_checkpoint(checkpoint, name, prefer_ema=not args.no_ema, img_size=args.img_size)
    artifacts.check_img_size(loaded)  # before a minute of exports
    out = Path(args.output or "deploy")
    (out / "artifacts").mkdir(parents=True, exist_ok=True)
    check_writable(out / "deploy.json", "-o")
    threads = args.threads or default_threads()

    calibration = _calibration(args, loaded) if "int8" in precisions else None
    images = _eval_data(args, loaded)
    eager = matrix.reference_cell(loaded.model, images, threads)
    cells = matrix.export_cells(
        loaded,
        runtimes,
        precisions,
        out / "artifacts",
        calibration=calibration,
        keep_float=keep_float,
        labelled=matrix.labelled_judge(images, eager.top1, args.max_drop),
        on_export=lambda cell, path: print(f"exporting {cell.label} -> {path}", file=sys.stderr),
    )
    ok = [c for c in cells if c.status == "ok"]
    if not ok:
        rows = [matrix.cell_row(c, None, args.batch) for c in cells]
        print(render(rows, report.COLUMNS, args.format))
        raise ConfigError("no artifact could be exported and verified (see the table)")

    print(f"evaluating {len(ok)} artifacts on {len(images)} images", file=sys.stderr)
    matrix.score_cells(ok, images, threads)
    busy = _time(args, loaded, [eager, *ok])
    rows = [matrix.cell_row(c, eager.top1, args.batch) for c in [eager, *cells]]
    winner = matrix.fastest_within(rows[1:], args.max_drop)
    result = _record(args, loaded, checkpoint, len(images), threads, busy, rows, winner)
    _write_and_print(args, result, winner, out)
    return 0


def _checked_choices(args) -> tuple[list[str], list[str], list[str]]:
    """Runtimes, precisions and --keep-float kinds, each name checked, and --data's existence:
    before anything is loaded."""
    from lightnets.deploy import targets
    from lightnets.deploy.quant_graph import parse_keep_float
    from lightnets.errors import ConfigError

    runtimes = args.runtimes or list(DEPLOY_RUNTIMES)
    for runtime in runtimes:
        targets.get_target(runtime)  # UnknownNameError with close matches
    precisions = args.precisions or list(targets.PRECISIONS)
    for precision in precisions:
        targets.check_precision_name(precision)
    keep_float = parse_keep_float(args.keep_float)
    if args.max_drop < 0:
        raise ConfigError(f"--max-drop {args.max_drop}: a drop of top-1 points is >= 0")
    if not Path(args.data).is_dir():
        raise FileNotFoundError(f"--data {args.data}: no such directory")
    return runtimes, precisions, keep_float


def _calibration(args, loaded):
    """The int8 calibration batches: --calibrate, else DIR/train beside --data, else the run's
    training images (lightnets.deploy.calibration)."""
    from lightnets.deploy import calibration
    from lightnets.errors import ConfigError

    folder = calibration.calibration_dir(loaded, args.calibrate, beside=args.data)
    if folder is None:
        raise ConfigError(
            "int8 needs calibration images: pass --calibrate DIR (--data has no train/ and the "
            "checkpoint names no training image folder), or leave int8 out of --precisions"
        )
    files = calibration.calibration_files(folder, args.calibration_images)
    print(f"calibrating int8 on {len(files)} images from {folder}", file=sys.stderr)
    return calibration.calibration_batches(files, loaded.preprocessing, loaded.in_chans)


def _eval_data(args, loaded):
    from lightnets.evaluation import eval_images

    images = eval_images(args.data, loaded.class_names, loaded.preprocessing)
    if images.skipped:
        print(f"skipped {len(images.skipped)} unreadable image(s)", file=sys.stderr)
    return images


def _time(args, loaded, cells) -> int:
    """matrix.time_cells with progress on stderr; the blocks that started on a busy CPU."""
    from lightnets.deploy import matrix

    print(f"timing {len(cells)} cells, {args.rounds} interleaved rounds", file=sys.stderr)
    return matrix.time_cells(
        cells,
        _input_shape(loaded),
        args.rounds,
        args.batch,
        args.wait_idle,
        on_round=lambda r: print(f"  round {r + 1}/{args.rounds}", file=sys.stderr),
    )


def _input_shape(loaded) -> tuple[int, int, int]:
    return (loaded.in_chans, loaded.preprocessing.img_size, loaded.preprocessing.img_size)


def _record(args, loaded, checkpoint, images, threads, busy, rows, winner) -> dict:
    """deploy.json: what was measured, on what, and the rows (the PyTorch reference first)."""
    from lightnets.profiling import machine_info

    return {
        "model": loaded.name,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "data": str(args.data),
        "images": images,
        "input": list(_input_shape(loaded)),
        "threads": threads,
        "rounds": args.rounds,
        "max_drop": args.max_drop,
        "busy_blocks": busy,
        "machine": machine_info("cpu", threads),
        "winner": winner and {k: winner[k] for k in ("runtime", "precision", "note", "artifact")},
        "rows": rows,
    }


def _write_and_print(args, result: dict, winner: dict | None, out: Path) -> None:
    """deploy.json and deploy.png written, then the table with its notes printed."""
    import json

    from lightnets.deploy import report
    from lightnets.files import write_text
    from lightnets.tables import render

    write_text(out / "deploy.json", json.dumps(result, indent=1) + "\n")
    rows, chart = result["rows"], out / "deploy.png"
    chart_note = report.plot_latency_accuracy(
        rows, winner, rows[0]["top1"], args.max_drop, chart, result["model"]
    )
    written = [out / "deploy.json", *([] if chart_note else [chart])]
    notes = report.notes(result, winner, written, chart_note)
    extra = {k: v for k, v in result.items() if k != "rows"}
    print(render(rows, report.COLUMNS, args.format, notes=notes, json_extra=extra))
