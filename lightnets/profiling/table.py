"""One model's measured cost beside its paper's figures: `profile_model`, `ModelProfile`, and the
columns and footnotes a profile table shows (rendered by lightnets.tables).

Params, MACs, all ops and peak memory are measured at batch 1 on the eager model (see counting.py
and memory.py); latency at the smallest batch and throughput at the largest on the chosen runtime
(see timing.py and lightnets.deploy.artifacts.make_runner).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lightnets._deprecation import renamed_function, renamed_kwargs
from lightnets.cpu import default_threads, torch_threads
from lightnets.deploy.artifacts import make_runner
from lightnets.errors import ConfigError
from lightnets.profiling.counting import count_macs, count_params, example_input
from lightnets.profiling.memory import measure_memory
from lightnets.profiling.timing import MIN_BLOCKS_FOR_IQR, Latency, measure_latency
from lightnets.tables import Column


@dataclass(frozen=True)
class ModelProfile:
    """One model's measured cost beside its paper's figures (None where unknown or not measured).

    Differences are (ours - paper) / paper in percent; the MACs difference is only given at the
    paper's own image size. `noise` says why the latency is probably inflated (None: it looked
    clean); `reparameterized` is True when the counts are of a re-parameterized model.
    """

    model: str
    img_size: int
    params_m: float
    fixed_k: float
    macs_m: float
    all_ops_m: float
    peak_mem_mb: float
    latency_ms: float
    latency_iqr_ms: float
    throughput_ips: float | None
    paper_params_m: float | None
    d_params_pct: float | None
    paper_macs_m: float | None
    d_macs_pct: float | None
    paper_top1: float | None
    ref_params_m: float | None
    ref_macs_m: float | None
    # exact figures and measurement conditions, for machines
    params: int
    fixed: int
    macs: int
    all_ops: int
    peak_mem_bytes: int
    latency_batch: int
    latency_runs: int
    throughput_batch: int | None
    throughput_runs: int | None
    threads: int
    device: str
    runtime: str
    noise: str | None = None
    reparameterized: bool = False


# fmt: off
#         key                header          spec    note
COLUMNS = (
    Column("model",          "model"),
    Column("img_size",       "input",        "d"),
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
           "paper) / paper, MACs only at the paper's image size."),
    Column("d_params_pct",   "d%",           "+.1f"),
    Column("paper_macs_m",   "paper MACs",   ".0f"),
    Column("d_macs_pct",     "d%",           "+.1f"),
    Column("paper_top1",     "top-1",        ".1f"),
    Column("ref_params_m",   "ref params",   ".3f",
           "ref params / ref MACs: exact counts of a reference implementation (timm, "
           "torchvision) with the same MAC counter."),
    Column("ref_macs_m",     "ref MACs",     ".1f"),
)
# fmt: on

REPARAM_NOTE = (
    "re-parameterized: params M, MACs M and all ops M count the re-parameterized graph (BN folded "
    "into the convs, mixed depthwise kernels merged into one zero-padded kernel), not the trained "
    "model; the padding zeros add MACs."
)


def profile_columns(profiles: Sequence[ModelProfile]) -> tuple[Column, ...]:
    """COLUMNS with headers naming the batch sizes measured ("ms b1", "img/s b32"); the
    throughput column goes when no throughput was measured."""
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


def profile_notes(profiles: Sequence[ModelProfile]) -> list[str]:
    """Footnotes that depend on what was measured: the re-parameterized counts, and each row
    whose latency looked noisy, with the reason."""
    notes = [REPARAM_NOTE] if any(p.reparameterized for p in profiles) else []
    notes += [
        f"noisy: {p.model} ({p.noise}): its ms and img/s are probably inflated by other work on "
        "this machine"
        for p in profiles
        if p.noise
    ]
    return notes


def _diff_pct(ours: float, paper: float | None) -> float | None:
    return None if not paper else 100.0 * (ours - paper) / paper


def model_min_input(model: nn.Module) -> int:
    card = getattr(model, "card", None)
    return getattr(model, "min_input", None) or getattr(card, "min_input", None) or 1


def check_img_size(model: nn.Module, img_size: int, name: str = "") -> None:
    """One-line ConfigError if `img_size` is below the model's smallest input side."""
    smallest = model_min_input(model)
    if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < smallest:
        who = name or getattr(model, "model_name", type(model).__name__)
        raise ConfigError(f"img_size {img_size!r} is too small for {who} (min_input {smallest})")


check_resolution = renamed_function(check_img_size, "check_resolution")


def _noise(latency: Latency, throughput: Latency | None) -> str | None:
    reasons = [
        f"b{t.batch}: {why}" for t in (latency, throughput) if t and (why := t.noise()) is not None
    ]
    return "; ".join(reasons) or None


def _time(model, x, runtime, batches, threads, *, warmup, min_run_time):
    """Latency at the smallest batch, throughput (or None) at the largest; the runner is built
    on `x` (batch 1)."""
    img_size, device = x.shape[-1], x.device
    with tempfile.TemporaryDirectory(prefix="lightnets-profile-") as workdir:
        run = make_runner(runtime, model, x, threads, Path(workdir))
        xb = example_input(model, img_size, batches[0], device)
        latency = measure_latency(
            run, xb, threads=threads, warmup=warmup, min_run_time=min_run_time
        )
        throughput = None
        if len(batches) > 1:
            # blocked_autorange's block-size probe is this batch's warm-up (its time is discarded)
            xb = example_input(model, img_size, batches[-1], device)
            throughput = measure_latency(
                run, xb, threads=threads, warmup=0, min_run_time=min_run_time
            )
        del run
    return latency, throughput


@renamed_kwargs(resolution="img_size")
def profile_model(
    model: nn.Module,
    *,
    img_size: int | None = None,
    batch: Sequence[int] = (1, 32),
    threads: int | None = None,
    device: str | torch.device = "cpu",
    runtime: str = "eager",
    warmup: int = 2,
    min_run_time: float = 0.25,
) -> ModelProfile:
    """Params, MACs, all ops and peak memory at batch 1; latency at the smallest batch and
    throughput at the largest (when larger) of `batch`; beside the paper figures in `model.card`.

    `img_size` defaults to the card's (224 without a card). MACs and memory are
    measured on the eager model; `runtime` selects what is timed
    (lightnets.deploy.targets.TIMED_RUNTIMES).
    """
    card = getattr(model, "card", None)
    name = getattr(model, "model_name", type(model).__name__)
    img_size = img_size or getattr(card, "img_size", 224)
    check_img_size(model, img_size, name)
    batches = sorted(set(batch))
    if not batches or batches[0] < 1:
        raise ConfigError(f"batch sizes must be positive integers, got {tuple(batch)!r}")
    threads = threads or default_threads()
    device = torch.device(device)
    model = model.to(device).eval()

    params = count_params(model)
    x = example_input(model, img_size, 1, device)
    with torch_threads(threads):
        macs = count_macs(model, x)
        peak = measure_memory(model, x)
    latency, throughput = _time(
        model, x, runtime, batches, threads, warmup=warmup, min_run_time=min_run_time
    )
    return ModelProfile(
        model=name,
        img_size=img_size,
        params_m=params.learned / 1e6,
        fixed_k=params.fixed / 1e3,
        macs_m=macs.macs / 1e6,
        all_ops_m=macs.all_ops / 1e6,
        peak_mem_mb=peak / 2**20,
        **_timing_fields(latency, throughput),
        **_beside_paper(card, img_size, params.learned / 1e6, macs.macs / 1e6),
        params=params.learned,
        fixed=params.fixed,
        macs=macs.macs,
        all_ops=macs.all_ops,
        peak_mem_bytes=peak,
        threads=threads,
        device=str(device),
        runtime=runtime,
        reparameterized=hasattr(model, "reparam_report"),
    )


def _timing_fields(latency, throughput) -> dict:
    """The ModelProfile fields of the timings: latency at the small batch, throughput (None
    without a larger batch), and the noise seen."""
    return {
        "latency_ms": latency.median_s * 1e3,
        # a spread needs a few samples; a call slower than min_run_time gives only one or two
        "latency_iqr_ms": latency.iqr_s * 1e3 if latency.blocks >= MIN_BLOCKS_FOR_IQR else None,
        "throughput_ips": throughput.throughput if throughput else None,
        "latency_batch": latency.batch,
        "latency_runs": latency.runs,
        "throughput_batch": throughput.batch if throughput else None,
        "throughput_runs": throughput.runs if throughput else None,
        "noise": _noise(latency, throughput),
    }


def _beside_paper(card, img_size: int, params_m: float, macs_m: float) -> dict:
    """The ModelProfile fields from the model card; MACs only at the paper's own image size."""
    at_paper_size = card is not None and img_size == card.img_size
    paper_params = getattr(card, "params_m", None)
    paper_macs = getattr(card, "macs_m", None) if at_paper_size else None
    ref_params = getattr(card, "ref_params", None)
    return dict(
        paper_params_m=paper_params,
        d_params_pct=_diff_pct(params_m, paper_params),
        paper_macs_m=paper_macs,
        d_macs_pct=_diff_pct(macs_m, paper_macs),
        paper_top1=getattr(card, "top1", None),
        ref_params_m=ref_params / 1e6 if ref_params else None,
        ref_macs_m=getattr(card, "ref_macs_m", None) if at_paper_size else None,
    )
