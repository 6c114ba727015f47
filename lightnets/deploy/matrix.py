"""The deployment matrix behind `lightnets deploy`: one cell per runtime x precision, exported
and verified, scored on the user's images beside the PyTorch reference, timed in interleaved
rounds, and the fastest cell within an accuracy budget. lightnets.deploy.report words and draws
the result."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from lightnets.deploy import artifacts, checks, targets
from lightnets.deploy.sidecar import artifact_files
from lightnets.errors import LightnetsError

# ------------------------------------------------------------------ the deployment matrix


@dataclass
class Cell:
    """One runtime x precision of a deployment matrix: how it was exported and how it ran."""

    runtime: str
    precision: str
    status: str = "ok"  # ok, missing (not installed), failed (export or verification)
    note: str = ""
    path: Path | None = None
    metadata: dict | None = None
    run: Callable | None = None
    b1_ms: list[float] | None = None
    bn_ms: list[float] | None = None
    top1: float | None = None
    top5: float | None = None

    @property
    def label(self) -> str:
        return f"{self.runtime} {self.precision}"


# ------------------------------------------------------------------ export and score


def reference_cell(model: torch.nn.Module, images, threads: int) -> Cell:
    """The PyTorch model's cell, the reference: its runner and its top-1/top-5 on `images`
    (lightnets.evaluation.EvalImages), run with `threads` threads."""
    torch.set_num_threads(threads)
    eager = Cell("pytorch", "fp32", note="eager, the reference")
    eager.run, eager.metadata = _eager_runner(model), {}
    eager.top1, eager.top5 = accuracy(images, model)
    return eager


def labelled_judge(images, reference_top1: float, max_drop: float) -> Callable:
    """int8 judged where it matters when top-1 agreement with fp32 refuses it: the top-1 drop
    on the labelled images, within --max-drop (checks.verify_artifact's `labelled`)."""

    def judge(run, batch) -> tuple[bool, str]:
        top1, _ = accuracy(images, checks.ArtifactModule(run, batch))
        drop = reference_top1 - top1
        accepted = drop <= max_drop
        return accepted, (
            f"on {len(images)} labelled images top-1 {top1:.2f}% vs PyTorch {reference_top1:.2f}%"
            f" (drop {drop:.2f} {'<=' if accepted else '>'} --max-drop {max_drop:g})"
        )

    return judge


def export_cells(
    loaded,
    runtimes: list[str],
    precisions: list[str],
    folder: Path,
    *,
    calibration: list[torch.Tensor] | None = None,
    keep_float: Sequence[str] = (),
    labelled: Callable | None = None,
    on_export: Callable[[Cell, Path], None] | None = None,
) -> list[Cell]:
    """One cell per installed runtime x precision it has, exported into `folder` by
    artifacts.export_verified (re-parameterized where the target wants it); a 'missing' cell per
    absent runtime. `on_export(cell, path)` is called before each export (progress)."""
    from lightnets.deploy.reparam import reparameterize

    deployed = reparameterize(loaded.model)  # for the targets that want it (Target.reparameterize)
    cells = []
    for runtime in runtimes:
        target = targets.get_target(runtime)
        if targets.missing(target):
            absent = ", ".join(targets.missing_packages(target))
            note = f"{absent}: {targets.missing(target)}"
            cells.append(Cell(runtime, "-", "missing", note))
            continue
        for precision in (p for p in precisions if p in target.precisions):
            model = deployed if target.reparameterize else loaded.model
            path = folder / f"{loaded.name}-{target.runtime}-{precision}{target.suffix}"
            int8 = precision == "int8"
            cell = Cell(target.runtime, precision)
            if on_export:
                on_export(cell, path)
            export_cell(cell, loaded, model, path, calibration=calibration if int8 else None,
                        keep_float=keep_float if int8 else (), labelled=labelled)  # fmt: skip
            cells.append(cell)
    return cells


def export_cell(cell: Cell, loaded, deployed, path: Path, **options) -> Cell:
    """`cell` exported to `path` and verified (artifacts.export_verified with `options`); a
    failure is the cell's status and note: 'missing' (not installed) or 'failed' (the reason)."""
    try:
        cell.metadata = artifacts.export_verified(
            loaded, cell.runtime, cell.precision, path, deployed=deployed, **options
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
    if cell.status == "ok" and cell.precision == "bf16" and cell.runtime == "openvino":
        from lightnets.deploy.loaders import inference_precision

        cell.note = inference_precision("bf16")[1] or ""
    return cell


def score_cells(cells: list[Cell], images, threads: int) -> None:
    """Top-1/top-5 of each cell's artifact on `images` (filled into the cells, which are loaded
    with `threads` threads for timing on the way)."""
    for cell in cells:
        cell.run = targets.get_target(cell.runtime).load(cell.path, threads)
        module = checks.ArtifactModule(cell.run, cell.metadata.get("batch"))
        cell.top1, cell.top5 = accuracy(images, module)


def accuracy(images, module) -> tuple[float, float]:
    """(top-1, top-5) of `module` (a model, or an artifact as one) on `images`."""
    from lightnets.evaluation import evaluate_on

    res = evaluate_on(module, images, batch_size=32)
    return res["top1"], res["top5"]


def _eager_runner(model):
    def run(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return run


# ------------------------------------------------------------------ timing


def _time_block(run, x, seconds: float = 0.15) -> float:
    """ms per call of `run(x)` over a block of calls lasting about `seconds` (at least 1)."""
    import time

    start = time.perf_counter()
    run(x)
    once = time.perf_counter() - start
    number = max(1, int(seconds / max(once, 1e-6)))
    start = time.perf_counter()
    for _ in range(number):
        run(x)
    return (time.perf_counter() - start) / number * 1e3


def time_cells(
    cells: list[Cell],
    shape: tuple[int, int, int],
    rounds: int = 5,
    batch: int = 32,
    wait_idle: bool = True,
    on_round: Callable[[int], None] | None = None,
) -> int:
    """Fill each cell's b1_ms and bn_ms (ms per call at batch 1 and `batch`) from `rounds`
    interleaved rounds: every round times every cell once, each block started on an idle CPU
    (lightnets.cpu.wait_for_idle_cpu) so that a runtime's spinning worker threads or another
    process do not land in the next cell. A fixed-batch artifact is timed at its own batch.
    Returns how many blocks started on a busy CPU (the idle wait timed out): a noise warning."""
    from lightnets.cpu import wait_for_idle_cpu

    g = torch.Generator().manual_seed(0)
    inputs = {}
    for cell in cells:
        fixed = (cell.metadata or {}).get("batch")
        for b in (fixed or 1, fixed or batch):
            if b not in inputs:
                inputs[b] = torch.randn(b, *shape, generator=g).numpy()
        cell.b1_ms, cell.bn_ms = [], []
        for b in (fixed or 1, fixed or batch):  # warm-up: first calls compile, allocate, tune
            cell.run(inputs[b])
    busy = 0
    for r in range(rounds):
        for cell in cells:
            fixed = (cell.metadata or {}).get("batch")
            if wait_idle:
                busy += not wait_for_idle_cpu(timeout=10)
            cell.b1_ms.append(_time_block(cell.run, inputs[fixed or 1]))
        for cell in cells:
            fixed = (cell.metadata or {}).get("batch")
            if wait_idle:
                busy += not wait_for_idle_cpu(timeout=10)
            cell.bn_ms.append(_time_block(cell.run, inputs[fixed or batch], seconds=0.0))
        if on_round:
            on_round(r)
    return busy


def cell_row(cell: Cell, reference_top1: float | None, batch: int) -> dict:
    """A Cell as a table / JSON row."""
    import statistics

    meta = cell.metadata or {}
    fixed = meta.get("batch")
    row = {
        "runtime": cell.runtime,
        "precision": cell.precision,
        "status": cell.status,
        "b1_min_ms": min(cell.b1_ms) if cell.b1_ms else None,
        "b1_median_ms": statistics.median(cell.b1_ms) if cell.b1_ms else None,
        "batch": fixed or batch,
        "images_per_s": (fixed or batch) / min(cell.bn_ms) * 1e3 if cell.bn_ms else None,
        "size_mb": (
            sum(p.stat().st_size for p in artifact_files(cell.path)) / 1e6 if cell.path else None
        ),
        "top1": cell.top1,
        "top5": cell.top5,
        "top1_drop": (
            reference_top1 - cell.top1
            if reference_top1 is not None and cell.top1 is not None
            else None
        ),
        "check": _check_text(meta.get("verification")),
        "note": cell.note + (f"; fixed batch {fixed}" if fixed else ""),
        "artifact": str(cell.path) if cell.path else None,
    }
    if cell.b1_ms:
        row["b1_ms_rounds"] = [round(t, 4) for t in cell.b1_ms]
    if meta.get("quantization"):
        row["quantization"] = meta["quantization"]
    return row


def _check_text(verification: dict | None) -> str | None:
    if not verification:
        return None
    if "relative_error" in verification:
        return f"err {verification['relative_error']:.1e}"
    return f"agree {100 * verification['agreement']:.1f}%, cos {verification['cosine']:.4f}"


def fastest_within(rows: list[dict], max_drop: float) -> dict | None:
    """The row with the lowest batch-1 min latency among those within `max_drop` points of the
    reference top-1 (rows without an accuracy figure do not qualify)."""
    ok = [
        r
        for r in rows
        if r["status"] == "ok"
        and r["b1_min_ms"] is not None
        and r["top1_drop"] is not None
        and r["top1_drop"] <= max_drop
    ]
    return min(ok, key=lambda r: r["b1_min_ms"]) if ok else None
