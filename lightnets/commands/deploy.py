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
    from lightnets.deploy import artifacts, matrix, reparameterize
    from lightnets.errors import ConfigError
    from lightnets.files import check_writable
    from lightnets.tables import render

    args = _flags.parse_args(build_parser(), argv)
    runtimes, precisions, keep_float = _checked_choices(args)
    checkpoint, name = _flags.model_or_run(args.model, args.checkpoint)
    loaded = load_checkpoint(checkpoint, name, prefer_ema=not args.no_ema, img_size=args.img_size)
    artifacts.check_input_size(loaded)  # before a minute of exports
    out = Path(args.output or "deploy")
    (out / "artifacts").mkdir(parents=True, exist_ok=True)
    check_writable(out / "deploy.json", "-o")
    threads = args.threads or default_threads()

    calibration = _calibration(args, loaded) if "int8" in precisions else None
    dataset = _eval_data(args, loaded)
    deployed = reparameterize(loaded.model)  # for the targets that want it (Target.reparameterize)
    eager = _reference_cell(loaded, dataset, threads)
    labelled = _labelled_judge(loaded, dataset, eager.top1, args.max_drop)
    cells = _export_all(loaded, deployed, runtimes, precisions, out, calibration, keep_float,
                        labelled)  # fmt: skip
    ok = [c for c in cells if c.status == "ok"]
    if not ok:
        print(render([_row(c, None, args.batch) for c in cells], _columns(), args.format))
        raise ConfigError("no artifact could be exported and verified (see the table)")

    _score(loaded, dataset, ok, threads)
    shape = (loaded.in_chans, loaded.preprocessing.img_size, loaded.preprocessing.img_size)
    print(f"timing {len(ok) + 1} cells, {args.rounds} interleaved rounds", file=sys.stderr)
    busy = matrix.time_cells(
        [eager, *ok],
        shape,
        args.rounds,
        args.batch,
        args.wait_idle,
        on_round=lambda r: print(f"  round {r + 1}/{args.rounds}", file=sys.stderr),
    )
    rows = [_row(c, eager.top1, args.batch) for c in [eager, *cells]]
    winner = matrix.fastest_within(rows[1:], args.max_drop)
    from lightnets.profiling import machine_info

    result = {
        "model": loaded.name,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "data": str(args.data),
        "images": len(dataset),
        "input": list(shape),
        "threads": threads,
        "rounds": args.rounds,
        "max_drop": args.max_drop,
        "busy_blocks": busy,
        "machine": machine_info("cpu", threads),
        "winner": winner and {k: winner[k] for k in ("runtime", "precision", "note", "artifact")},
        "rows": rows,
    }
    import json

    from lightnets.files import write_text

    write_text(out / "deploy.json", json.dumps(result, indent=1) + "\n")
    notes = _notes(args, result, winner, len(ok) + 1, out)
    extra = {k: v for k, v in result.items() if k != "rows"}
    print(render(rows, _columns(), args.format, notes=notes, json_extra=extra))
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


def _reference_cell(loaded, dataset, threads: int):
    """The PyTorch model's cell: its runner and its top-1/top-5 on `dataset`."""
    import torch

    from lightnets.deploy import matrix

    torch.set_num_threads(threads)
    eager = matrix.Cell("pytorch", "fp32", note="eager, the reference")
    eager.run, eager.metadata = _eager_runner(loaded.model), {}
    eager.top1, eager.top5 = _accuracy(dataset, loaded.model)
    return eager


def _labelled_judge(loaded, dataset, reference_top1: float, max_drop: float):
    """int8 judged where it matters when top-1 agreement with fp32 refuses it: the top-1 drop
    on the labelled images, within --max-drop (checks.verify_artifact's `labelled`)."""
    from lightnets.deploy import checks

    def judge(run, batch) -> tuple[bool, str]:
        top1, _ = _accuracy(dataset, checks.ArtifactModule(run, batch))
        drop = reference_top1 - top1
        accepted = drop <= max_drop
        return accepted, (
            f"on {len(dataset)} labelled images top-1 {top1:.2f}% vs PyTorch {reference_top1:.2f}%"
            f" (drop {drop:.2f} {'<=' if accepted else '>'} --max-drop {max_drop:g})"
        )

    return judge


def _score(loaded, dataset, cells, threads: int) -> None:
    """Top-1/top-5 of each cell's artifact on `dataset` (filled into the cells, which are loaded
    for timing on the way)."""
    from lightnets.deploy import checks, targets

    print(f"evaluating {len(cells)} artifacts on {len(dataset)} images", file=sys.stderr)
    for cell in cells:
        cell.run = targets.get_target(cell.runtime).load(cell.path, threads)
        module = checks.ArtifactModule(cell.run, cell.metadata.get("batch"))
        cell.top1, cell.top5 = _accuracy(dataset, module)


def _notes(args, result: dict, winner: dict | None, timed: int, out: Path) -> list[str]:
    """The lines under the table: what was measured, how noisy, the winner, the files."""
    rows, reference = result["rows"], result["rows"][0]["top1"]
    chart_note = _chart(rows, winner, reference, args.max_drop, out / "deploy.png", result["model"])
    notes = [
        f"{result['model']}, {result['input'][1]} px, {result['threads']} threads, top-1 on "
        f"{result['images']} images of {args.data}; drop against PyTorch eager ({reference:.2f}%)",
        "latency: batch 1, min and median over interleaved rounds; images/s at the batch shown",
    ]
    busy = result["busy_blocks"]
    if busy:
        notes.append(
            f"{busy} of {2 * args.rounds * timed} timed blocks started on a busy CPU (no idle "
            "0.1 s within 10 s): other work shared the cores, read the latencies as noisy"
        )
    if winner:
        how = f" ({winner['note']})" if winner["note"] else ""
        notes.append(
            f"fastest within {args.max_drop} points: {winner['runtime']} {winner['precision']}"
            f"{how} ({winner['b1_min_ms']:.2f} ms, top-1 {winner['top1']:.2f}%, "
            f"{winner['top1_drop']:+.2f}) -> {winner['artifact']}"
        )
    else:
        notes.append(f"no artifact is within {args.max_drop} points of PyTorch")
    notes.append(
        f"wrote {out / 'deploy.json'}" + (f", {out / 'deploy.png'}" if not chart_note else "")
    )
    return notes + [chart_note] * bool(chart_note)


def _columns():
    from lightnets.tables import Column

    return (
        Column("runtime", "runtime"),
        Column("precision", "precision"),
        Column("status", "status"),
        Column("b1_min_ms", "b1 min ms", ".2f"),
        Column("b1_median_ms", "b1 median ms", ".2f"),
        Column(
            "images_per_s", "img/s", ".0f", note="img/s: throughput at the batch of column 'batch'"
        ),
        Column("batch", "batch", "d"),
        Column("size_mb", "MB", ".1f"),
        Column("top1", "top-1 %", ".2f"),
        Column("top1_drop", "drop", "+.2f", note="drop: top-1 points lost against PyTorch eager"),
        Column("check", "export check"),
        Column("note", "note"),
    )


def _row(cell, reference_top1, batch):
    from lightnets.deploy.matrix import cell_row

    return cell_row(cell, reference_top1, batch)


def _export_all(loaded, deployed, runtimes, precisions, out, calibration, keep_float, labelled):
    """One cell per installed runtime x precision it has; a 'missing' row per absent runtime."""
    from lightnets.deploy import matrix, targets

    cells = []
    for runtime in runtimes:
        target = targets.get_target(runtime)
        if targets.missing(target):
            absent = ", ".join(targets.missing_packages(target))
            note = f"{absent}: {targets.missing(target)}"
            cells.append(matrix.Cell(runtime, "-", "missing", note))
            continue
        for precision in (p for p in precisions if p in target.precisions):
            model = deployed if target.reparameterize else loaded.model
            cells.append(
                _export_cell(
                    loaded, model, target, precision, out, calibration, keep_float, labelled
                )  # fmt: skip
            )
    return cells


def _export_cell(loaded, deployed, target, precision, out, calibration, keep_float, labelled):
    from lightnets.deploy import artifacts, matrix
    from lightnets.errors import LightnetsError

    cell = matrix.Cell(target.runtime, precision)
    path = out / "artifacts" / f"{loaded.name}-{target.runtime}-{precision}{target.suffix}"
    print(f"exporting {cell.label} -> {path}", file=sys.stderr)
    try:
        cell.metadata = artifacts.export_verified(
            loaded,
            target.runtime,
            precision,
            path,
            deployed=deployed,
            calibration=calibration if precision == "int8" else None,
            keep_float=keep_float if precision == "int8" else (),
            labelled=labelled,
        )
        cell.path = path
        cell.note = cell.metadata["verification"].get("note", "")
    except LightnetsError as err:  # not installed, or the artifact failed its check
        cell.status = "missing" if isinstance(err, ImportError) else "failed"
        cell.note = " ".join(str(err).split())
    except Exception as err:  # a converter's own failure: one row, not the whole matrix
        cell.status, cell.note = (
            "failed",
            f"{type(err).__name__}: {' '.join(str(err).split())}"[:300],
        )
    if cell.status == "ok" and cell.precision == "bf16" and target.runtime == "openvino":
        from lightnets.deploy.loaders import inference_precision

        cell.note = inference_precision("bf16")[1] or ""
    return cell


def _calibration(args, loaded):
    from lightnets.deploy.quantize import (
        calibration_batches,
        calibration_files,
        default_calibration_dir,
    )
    from lightnets.errors import ConfigError

    folder = args.calibrate
    if folder is None and (Path(args.data) / "train").is_dir():
        folder = Path(args.data) / "train"
    folder = folder or default_calibration_dir(loaded)
    if folder is None:
        raise ConfigError(
            "int8 needs calibration images: pass --calibrate DIR (--data has no train/ and the "
            "checkpoint names no training image folder), or leave int8 out of --precisions"
        )
    files = calibration_files(folder, args.calibration_images)
    print(f"calibrating int8 on {len(files)} images from {folder}", file=sys.stderr)
    return calibration_batches(files, loaded.preprocessing, loaded.in_chans)


def _eval_data(args, loaded):
    from lightnets.evaluation import eval_images

    images = eval_images(args.data, loaded.class_names, loaded.preprocessing)
    if images.skipped:
        print(f"skipped {len(images.skipped)} unreadable image(s)", file=sys.stderr)
    return images


def _accuracy(images, module) -> tuple[float, float]:
    from lightnets.evaluation import evaluate_on

    res = evaluate_on(module, images, batch_size=32)
    return res["top1"], res["top5"]


def _eager_runner(model):
    import torch

    def run(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return run


def _chart(rows, winner, reference_top1, max_drop, path: Path, model_name: str) -> str | None:
    """Batch-1 latency against top-1, one point per artifact; None, or why there is no chart."""
    try:
        from lightnets.profiling.plot import require_matplotlib

        require_matplotlib()
    except ImportError as err:
        return f"no chart: {err}"
    import matplotlib.pyplot as plt

    from lightnets.files import atomic_write

    points = [r for r in rows if r["status"] == "ok" and r["b1_min_ms"] and r["top1"] is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in points:
        is_winner = winner is not None and r is winner
        ax.scatter(r["b1_min_ms"], r["top1"], s=60 if is_winner else 30,
                   marker="*" if is_winner else "o", zorder=3)  # fmt: skip
        ax.annotate(f"{r['runtime']} {r['precision']}", (r["b1_min_ms"], r["top1"]),
                    textcoords="offset points", xytext=(5, 4), fontsize=8)  # fmt: skip
    ax.axhline(reference_top1 - max_drop, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("batch-1 latency, min over rounds (ms)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"{model_name}: latency vs accuracy (dashed: PyTorch - {max_drop} points)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return None
