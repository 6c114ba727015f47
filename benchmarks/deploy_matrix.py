"""Deployment matrix benchmark: every runtime x precision of one model, and the int8 variants that
were tried to make MixNet's int8 fast, timed in one process with interleaved rounds.

Trains nothing. Takes a checkpoint (or random weights with randomised BN statistics), exports each
cell through lightnets.deploy.artifacts.export_verified (the path `lightnets export` takes), times
batch 1 (min and median over rounds, every cell once per round, each started on an idle CPU with
--wait-idle) and images/s at --batch, and, with --data, the top-1 of every artifact against the
PyTorch model. Rows "ORT int8 ..." are mixed-precision / quantizer-option variants of ORT int8
(see docs/deploy.md for what each one is and what it measured); a timm row (timm's own model for
the same name, ORT fp32) is added when timm is installed.

    python benchmarks/deploy_matrix.py --model mixnet_s --calibrate DATA/train --wait-idle
    python benchmarks/deploy_matrix.py --checkpoint runs/mixnet_s-x --data DATA --wait-idle
    python benchmarks/deploy_matrix.py --model mobilenet_v2_w100 --calibrate DATA/train --quick

Random weights give meaningless accuracy, and int8's top-1 agreement with fp32 on them is low
(near-tied logits), so without a checkpoint the agreement threshold is not enforced (cosine is).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from deploy import randomize_norms  # noqa: E402

import lightnets  # noqa: E402
from lightnets.checkpoints import load_checkpoint  # noqa: E402
from lightnets.deploy import artifacts, checks, matrix, reparameterize, targets  # noqa: E402
from lightnets.deploy.quantize import calibration_batches, calibration_files  # noqa: E402
from lightnets.tables import Column, render  # noqa: E402

SYMMETRIC = {"ActivationSymmetric": True}
# label -> (runtime, precision, keep_float, quantizer keyword arguments)
VARIANTS = {
    "ORT fp32": ("onnxruntime", "fp32", (), {}),
    "ORT fp16": ("onnxruntime", "fp16", (), {}),
    "ORT int8": ("onnxruntime", "int8", (), {}),
    "ORT int8 nncf": ("onnxruntime", "int8", (), {"quantizer": "nncf"}),
    "ORT int8 keep act": ("onnxruntime", "int8", ("act",), {}),
    "ORT int8 keep se": ("onnxruntime", "int8", ("se",), {}),
    "ORT int8 keep se,act": ("onnxruntime", "int8", ("se", "act"), {}),
    "ORT int8 keep dw-large": ("onnxruntime", "int8", ("dw-large",), {}),
    "ORT int8 keep dw": ("onnxruntime", "int8", ("dw",), {}),
    "ORT int8 qoperator": ("onnxruntime", "int8", (), {"quant_format": "qoperator"}),
    "ORT int8 act-symmetric": ("onnxruntime", "int8", (), {"extra_options": SYMMETRIC}),
    "OV fp32": ("openvino", "fp32", (), {}),
    "OV fp16": ("openvino", "fp16", (), {}),
    "OV bf16": ("openvino", "bf16", (), {}),
    "OV int8": ("openvino", "int8", (), {}),
    "OV int8 keep se": ("openvino", "int8", ("se",), {}),
    "OV int8 performance": ("openvino", "int8", (), {"preset": "performance"}),
    "ExecuTorch fp32": ("executorch", "fp32", (), {}),
    "ExecuTorch int8": ("executorch", "int8", (), {}),
    "LiteRT fp32": ("litert", "fp32", (), {}),
    "LiteRT int8": ("litert", "int8", (), {}),
    "ncnn fp32": ("ncnn", "fp32", (), {}),
    "ncnn int8": ("ncnn", "int8", (), {}),
}  # fmt: skip
QUICK = ("ORT fp32", "ORT int8", "ORT int8 keep act", "OV fp32", "OV int8")


def build_cells(loaded, labels, calibration, workdir: Path, strict: bool) -> list[matrix.Cell]:
    deployed = reparameterize(loaded.model)
    cells = []
    for label in labels:
        runtime, precision, keep, options = VARIANTS[label]
        target = targets.get_target(runtime)
        cell = matrix.Cell(runtime, precision, note=label)
        if targets.missing(target):
            cell.status, cell.note = "missing", f"{label}: {targets.missing(target)}"
            cells.append(cell)
            continue
        if precision == "int8" and not calibration:
            cell.status, cell.note = "failed", f"{label}: needs --calibrate"
            cells.append(cell)
            continue
        path = workdir / f"{label.replace(' ', '_').replace(',', '+')}{target.suffix}"
        print(f"exporting {label}", file=sys.stderr, flush=True)
        try:
            cell.metadata = artifacts.export_verified(
                loaded, runtime, precision, path, deployed=deployed,
                calibration=calibration if precision == "int8" else None, keep_float=keep,
                quantize=options or None, min_agreement=0.9 if strict else 0.0,
            )  # fmt: skip
            cell.path = path
        except Exception as err:  # one failing cell is a row, not the end of the benchmark
            cell.status, cell.note = "failed", f"{label}: {type(err).__name__}: {err}"[:200]
        cells.append(cell)
    return cells


def timm_cell(name: str, size: int, workdir: Path, onnx_file: str | None) -> matrix.Cell | None:
    """timm's own model of the same name as ONNX fp32 in ORT: `onnx_file` when given (timm needs
    torchvision, which cannot be installed beside a local CPU torch: export it from another
    environment), else exported here if timm imports."""
    from lightnets.deploy.loaders import load_onnx as load
    from lightnets.deploy.onnx import write_onnx

    card = lightnets.model_card(name)
    if onnx_file:
        path, label = Path(onnx_file), f"timm {Path(onnx_file).name} -> ORT fp32"
    else:
        try:
            import timm
        except ImportError:
            return None
        if not card.timm_name:
            return None
        model = timm.create_model(card.timm_name, pretrained=False).eval()
        path = write_onnx(model, torch.randn(2, 3, size, size), workdir / "timm.onnx")
        label = f"timm {card.timm_name} -> ORT fp32"
    cell = matrix.Cell("timm", "fp32", note=label, path=path)
    cell.metadata = {}
    cell.run = load(path, None)
    return cell


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mixnet_s")
    p.add_argument("--checkpoint")
    p.add_argument("--data", help="labelled images for top-1 (DIR/val/<class>/ or DIR/<class>/)")
    p.add_argument("--calibrate", help="int8 calibration images (default: DIR/train of --data)")
    p.add_argument("--calibration-images", type=int, default=200)
    p.add_argument("--img-size", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--variants", default=None, help="comma-separated labels (default: all)")
    p.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    p.add_argument("--wait-idle", action="store_true", help="start each cell on an idle CPU")
    p.add_argument("--peer-onnx", help="timm's model as an ONNX file, timed as the peer row")
    p.add_argument("--format", default="markdown", choices=("table", "markdown", "json", "csv"))
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    loaded = load_checkpoint(args.checkpoint, None if args.checkpoint else args.model,
                             img_size=args.img_size)  # fmt: skip
    if args.checkpoint is None:
        randomize_norms(loaded.model)
    size = loaded.preprocessing.img_size
    labels = QUICK if args.quick else tuple(VARIANTS)
    if args.variants:
        labels = tuple(v.strip() for v in args.variants.split(","))
        unknown = [v for v in labels if v not in VARIANTS]
        if unknown:
            p.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    calibrate = args.calibrate or (args.data and Path(args.data, "train").is_dir() and
                                   Path(args.data, "train"))  # fmt: skip
    calibration = None
    if calibrate:
        files = calibration_files(calibrate, args.calibration_images)
        calibration = calibration_batches(files, loaded.preprocessing, loaded.in_chans)
    with tempfile.TemporaryDirectory(prefix="deploy-matrix-") as tmp:
        workdir = Path(tmp)
        cells = build_cells(loaded, labels, calibration, workdir, args.checkpoint is not None)
        ok = [c for c in cells if c.status == "ok"]
        for cell in ok:
            cell.run = targets.get_target(cell.runtime).load(cell.path, args.threads)
        baseline = timm_cell(loaded.name, size, workdir, args.peer_onnx)
        eager = matrix.Cell("pytorch", "fp32", note="eager")
        eager.metadata = {}

        def eager_run(x):
            with torch.inference_mode():
                return loaded.model(torch.from_numpy(x)).numpy()

        eager.run = eager_run
        timed = [eager, *([baseline] if baseline else []), *ok]
        reference_top1 = None
        if args.data:
            reference_top1 = _top1s(loaded, args.data, [eager, *ok])
        print(f"timing {len(timed)} cells x {args.rounds} rounds", file=sys.stderr, flush=True)
        matrix.time_cells(timed, (loaded.in_chans, size, size), args.rounds, args.batch,
                           args.wait_idle)  # fmt: skip
        rows = [matrix.cell_row(c, reference_top1, args.batch) for c in [*timed, *[
            c for c in cells if c.status != "ok"]]]  # fmt: skip
    for row in rows:
        row["variant"] = row["note"].split(";")[0] or row["runtime"]
    columns = (
        Column("variant", "variant"),
        Column("status", "status"),
        Column("b1_min_ms", "b1 min ms", ".2f"),
        Column("b1_median_ms", "b1 median ms", ".2f"),
        Column("images_per_s", f"b{args.batch} img/s", ".0f"),
        Column("size_mb", "MB", ".1f"),
        Column("top1", "top-1", ".2f"),
        Column("top1_drop", "drop", "+.2f"),
        Column("check", "export check"),
    )
    from lightnets.profiling import machine_info, machine_line

    notes = [machine_line(machine_info("cpu", args.threads, "onnxruntime")),
             f"{loaded.name}, {size} px, {args.rounds} interleaved rounds"
             + (", each cell started on an idle CPU" if args.wait_idle else ""),
             *_ratios(rows)]  # fmt: skip
    print(render(rows, columns, args.format, notes=notes))
    return 0


def _top1s(loaded, data, cells) -> float:
    """Fill each cell's top-1 on `data`; returns the first (the eager model's)."""
    from lightnets.evaluation import eval_images, evaluate_on

    images = eval_images(data, loaded.class_names, loaded.preprocessing)
    for cell in cells:
        module = (loaded.model if cell.runtime == "pytorch" else
                  checks.ArtifactModule(cell.run, (cell.metadata or {}).get("batch")))  # fmt: skip
        res = evaluate_on(module, images, batch_size=32)
        cell.top1, cell.top5 = res["top1"], res["top5"]
    return cells[0].top1


def _ratios(rows) -> list[str]:
    by = {r["variant"]: r for r in rows if r["status"] == "ok" and r["b1_min_ms"]}
    lines = []
    for base, label in (("ORT fp32", "ORT int8"), ("OV fp32", "OV int8")):
        for variant, row in by.items():
            if variant.startswith(label) and base in by:
                for stat in ("b1_min_ms", "b1_median_ms"):
                    lines.append(f"{base} / {variant} ({stat[3:-3]}): "
                                 f"{by[base][stat] / row[stat]:.2f}x")  # fmt: skip
    if "timm" in {r["runtime"] for r in rows}:
        timm = next(r for r in rows if r["runtime"] == "timm")
        best = min((r for r in by.values() if r["runtime"] not in ("timm", "pytorch")),
                   key=lambda r: r["b1_min_ms"], default=None)  # fmt: skip
        if best:
            lines.append(f"fastest artifact ({best['variant']}) / timm ORT fp32 (min): "
                         f"{best['b1_min_ms'] / timm['b1_min_ms']:.2f}x")  # fmt: skip
    return lines


if __name__ == "__main__":
    sys.exit(main())
