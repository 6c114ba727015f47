"""Where one model's cost goes: per block (params, MACs, all ops, share of forward time) and per
aten operator (torch.profiler self time), with the columns their tables show; `profile_layers`
measures both (`lightnets profile --layers`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lightnets._deprecation import renamed_kwargs
from lightnets.cpu import CpuLoad, contention, default_threads, torch_threads
from lightnets.profiling.counting import count_macs, eval_mode, example_input
from lightnets.tables import Column


@dataclass(frozen=True)
class LayerCost:
    """One block's share of a model: its params, MACs, all ops and measured time per call."""

    name: str
    kind: str
    params: int
    macs: int
    all_ops: int
    time_ms: float
    time_pct: float


@dataclass(frozen=True)
class OpCost:
    """One aten operator's self time, summed over a forward pass (torch.profiler)."""

    op: str
    calls: int
    time_ms: float
    time_pct: float


@dataclass(frozen=True)
class LayerReport:
    """One model's cost by block and by operator at `img_size` (batch 1) on `threads` threads;
    `noise`: why the times are probably inflated (other processes took cores), else None."""

    blocks: list[LayerCost]
    ops: list[OpCost]
    img_size: int
    threads: int
    noise: str | None = None


# fmt: off
#         key          header       spec
LAYER_COLUMNS = (
    Column("name",      "block"),
    Column("kind",      "kind"),
    Column("params",    "params",    ",d"),
    Column("macs_m",    "MACs M",    ".2f"),
    Column("all_ops_m", "all ops M", ".2f"),
    Column("time_ms",   "ms",        ".3f"),
    Column("time_pct",  "time %",    ".1f"),
)

OP_COLUMNS = (
    Column("op",        "operator"),
    Column("calls",     "calls",     "d"),
    Column("time_ms",   "ms",        ".3f"),
    Column("time_pct",  "time %",    ".1f"),
)
# fmt: on


def model_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The blocks to report: stem, every block of every stage, head, pool, classifier for a zoo
    model; otherwise the children, with plain nn.Sequential/ModuleList containers opened."""
    if isinstance(getattr(model, "stages", None), nn.Sequential) and hasattr(model, "stem"):
        blocks = [("stem", model.stem)]
        for i, stage in enumerate(model.stages):
            if type(stage) in (nn.Sequential, nn.ModuleList):
                blocks += [(f"stages.{i}.{j}", block) for j, block in enumerate(stage)]
            else:
                blocks.append((f"stages.{i}", stage))
        tail = [(n, getattr(model, n, None)) for n in ("head", "pool", "classifier")]
        return blocks + [(n, m) for n, m in tail if isinstance(m, nn.Module)]

    def expand(prefix: str, module: nn.Module) -> list[tuple[str, nn.Module]]:
        out = []
        for n, child in module.named_children():
            full = f"{prefix}{n}"
            if type(child) in (nn.Sequential, nn.ModuleList):
                out += expand(full + ".", child)
            else:
                out.append((full, child))
        return out

    return expand("", model) or [("", model)]


def _block_seconds(model, x, blocks, threads, warmup, min_run_time):
    """Seconds spent inside each block, summed over `runs` timed forwards; and the forwards'
    total. Wall time between a forward pre-hook and a forward hook (synchronized on CUDA)."""
    cuda = x.device.type == "cuda"
    spent = dict.fromkeys((n for n, _ in blocks), 0.0)
    started: dict[str, float] = {}

    def now() -> float:
        if cuda:
            torch.cuda.synchronize(x.device)
        return time.perf_counter()

    def pre_hook(name):
        return lambda module, args: started.__setitem__(name, now())

    def post_hook(name):
        def hook(module, args, output):
            spent[name] += now() - started[name]

        return hook

    handles = []
    for name, block in blocks:
        handles.append(block.register_forward_pre_hook(pre_hook(name)))
        handles.append(block.register_forward_hook(post_hook(name)))
    total, runs = 0.0, 0
    try:
        with eval_mode(model), torch.inference_mode(), torch_threads(threads):
            for _ in range(warmup):
                model(x)
            spent.update(dict.fromkeys(spent, 0.0))
            while total < min_run_time or runs < 3:
                start = now()
                model(x)
                total += now() - start
                runs += 1
    finally:
        for h in handles:
            h.remove()
    return spent, total, runs


def layer_profile(
    model: nn.Module,
    x: Tensor,
    *,
    threads: int | None = None,
    warmup: int = 2,
    min_run_time: float = 0.5,
) -> list[LayerCost]:
    """Per block (see model_blocks): params, MACs, all ops, and the share of measured forward time.

    Time is wall time between a forward pre-hook and a forward hook on each block (synchronized
    on CUDA), summed over repeated forwards after `warmup`; anything between blocks (flatten, input
    checks) becomes an "(between blocks)" row. Rows are in forward order; sort them as you like.
    """
    threads = threads or default_threads()
    blocks = model_blocks(model)
    costs = count_macs(model, x).by_module
    spent, total, runs = _block_seconds(model, x, blocks, threads, warmup, min_run_time)
    rows = []
    for name, block in blocks:
        macs, all_ops = costs.get(name, (0, 0))
        params = sum(p.numel() for p in block.parameters())
        kind = type(block).__name__
        time_ms, time_pct = 1e3 * spent[name] / runs, 100.0 * spent[name] / total
        rows.append(LayerCost(name, kind, params, macs, all_ops, time_ms, time_pct))
    between = total - sum(spent.values())
    rows.append(
        LayerCost("(between blocks)", "", 0, 0, 0, 1e3 * between / runs, 100.0 * between / total)
    )
    return rows


def op_profile(fn, x: Tensor, *, threads: int | None = None, runs: int = 5) -> list[OpCost]:
    """Where the time goes by operator (convolution, cat, split, mul, sigmoid, ...), per forward,
    sorted by time: torch.profiler self CPU time per aten op, or on CUDA self device time per
    kernel. Profiler overhead inflates absolute times slightly; shares are the figure to read.
    `fn` is a runner (lightnets.deploy.artifacts.make_runner), e.g.
    eager_runner(model, x, threads, None)."""
    from torch.profiler import ProfilerActivity, profile

    threads = threads or default_threads()
    cuda = x.device.type == "cuda"
    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
    with torch_threads(threads):
        fn(x)  # warm-up outside the profile
        with profile(activities=activities) as prof:
            for _ in range(runs):
                fn(x)
            if cuda:
                torch.cuda.synchronize(x.device)
    if cuda:
        events = [(e, e.self_device_time_total) for e in prof.key_averages()]
    else:
        events = [(e, e.self_cpu_time_total) for e in prof.key_averages()]
        events = [(e, t) for e, t in events if e.key.startswith("aten::")]
    events = [(e, t) for e, t in events if t > 0]
    total = sum(t for _, t in events) or 1.0
    rows = [OpCost(e.key, e.count // runs, t / 1e3 / runs, 100.0 * t / total) for e, t in events]
    return sorted(rows, key=lambda r: -r.time_ms)


@renamed_kwargs(resolution="img_size")
def profile_layers(
    model: nn.Module,
    img_size: int | None = None,
    *,
    threads: int | None = None,
    device: str | torch.device = "cpu",
    warmup: int = 2,
    min_run_time: float = 0.5,
    name: str = "",
) -> LayerReport:
    """`layer_profile` and `op_profile` of `model` in eval mode on one random image of side
    `img_size` (default: the card's, 224 without a card), with the machine load
    watched while they run (lightnets.cpu.CpuLoad)."""
    from lightnets.deploy.artifacts import eager_runner
    from lightnets.profiling.table import check_img_size

    model = model.to(device).eval()
    img_size = img_size or getattr(getattr(model, "card", None), "img_size", 224)
    check_img_size(model, img_size, name)
    x = example_input(model, img_size, 1, device)
    threads = threads or default_threads()
    with CpuLoad() as load:
        blocks = layer_profile(model, x, threads=threads, warmup=warmup, min_run_time=min_run_time)
        ops = op_profile(eager_runner(model, x, threads, None), x, threads=threads)
    return LayerReport(blocks, ops, img_size, threads, contention(load.cores, threads))
