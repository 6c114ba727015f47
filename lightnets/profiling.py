"""What a network costs, measured: parameters, MACs, activation memory and latency.

Pure functions, usable from a notebook; `lightnets profile` (lightnets.tools.profile) is a thin CLI
over them. Only torch is imported here; numpy and onnxruntime are imported by the runtime that
needs them.

What each figure counts (the CLI prints the same text as footnotes):

- MACs: multiply-accumulates of convolutions and matrix products (aten.convolution, mm, addmm, bmm)
  as counted by torch.utils.flop_counter, whose FLOPs are 2 x MACs. Biases are not counted. This is
  the papers' convention ("FLOPs" in MixNet/MnasNet, "mult-adds" in MobileNet).
- all ops: MACs plus one op per output element of every batch norm (at inference a scale and a
  shift, i.e. one multiply-add), activation and elementwise add/sub/mul/div (residual adds, SE
  gating, hand-written hard-swish), plus one op per input element of pooling and means (global
  pooling, SE squeeze). Data movement (split, concat, channel shuffle, padding, copies) counts zero.
- fixed: values of fixed kernels, i.e. buffers with at least 3 dimensions (the shape of a
  convolution weight). VGNet's Gaussian and edge kernels are cost (they are convolved), but they
  are not learned, so they are not parameters. Batch-norm statistics are 1-D and never count.
- peak activation memory: the most bytes held at one time by tensors created during one inference
  forward pass (torch.no_grad). Weights and the input are excluded; the output is included. On the
  CPU, storages are tracked from the op that creates them until the last tensor using them is
  freed; scratch memory inside a kernel (e.g. oneDNN workspaces) is not seen. On CUDA it is
  torch.cuda.max_memory_allocated during the pass minus what was allocated before it.
- latency: torch.utils.benchmark.Timer.blocked_autorange after explicit warm-up calls, at a fixed
  thread count; the median and interquartile range over blocks of calls. The benchmark timer
  synchronizes the accelerator before each timestamp, so CUDA times are complete.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import tempfile
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils import benchmark
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode
from torch.utils.flop_counter import flop_registry as MAC_OPS  # counted as 2 FLOPs per MAC

from lightnets.errors import ConfigError, MissingDependencyError

aten = torch.ops.aten

# ---------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class ParamCount:
    """Parameter counts: `trainable` (requires_grad), `frozen` (a Parameter with requires_grad
    off), `fixed` (fixed-kernel buffers: convolved, never learned)."""

    trainable: int
    frozen: int
    fixed: int

    @property
    def learned(self) -> int:
        """All nn.Parameters, trainable or frozen: what the papers call parameters."""
        return self.trainable + self.frozen


def is_fixed_kernel(buffer: Tensor) -> bool:
    """A buffer shaped like a convolution weight (C_out, C_in/groups, *kernel); BN stats are 1-D."""
    return buffer.ndim >= 3 and buffer.is_floating_point()


def count_params(model: nn.Module) -> ParamCount:
    """Trainable, frozen and fixed-kernel values of `model` (shared tensors counted once)."""
    trainable = frozen = 0
    for p in model.parameters():  # parameters() already skips duplicates
        if p.requires_grad:
            trainable += p.numel()
        else:
            frozen += p.numel()
    fixed = sum(b.numel() for b in model.buffers() if is_fixed_kernel(b))
    return ParamCount(trainable, frozen, fixed)


# ---------------------------------------------------------------------------- MACs and ops


def _numel(shape) -> int:
    # ops such as batch norm and max pooling return a tuple; the first element is the result
    if isinstance(shape, (tuple, list)) and shape and not isinstance(shape[0], int):
        shape = shape[0]
    return math.prod(shape)


def _per_output(*args, out_shape=None, **kwargs) -> int:
    return _numel(out_shape)


def _per_input(x_shape, *args, out_shape=None, **kwargs) -> int:
    return _numel(x_shape)


# One op per output element: normalisation, activations, elementwise arithmetic. In-place variants
# are distinct aten packets (relu_ vs relu), so both are listed.
# fmt: off
_ELEMENTWISE_NAMES = (
    "_native_batch_norm_legit_no_training", "_native_batch_norm_legit", "native_batch_norm",
    "native_layer_norm", "native_group_norm",
    "relu", "relu_", "hardtanh", "hardtanh_", "silu", "silu_", "sigmoid", "sigmoid_",
    "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_", "_prelu_kernel", "gelu", "gelu_",
    "tanh", "tanh_", "leaky_relu", "leaky_relu_", "elu", "elu_", "mish", "mish_",
    "clamp", "clamp_", "clamp_min", "clamp_min_", "_softmax",
    "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_",
)
# One op per input element: every input value is read and summed or compared once.
_REDUCTION_NAMES = (
    "mean", "sum", "amax", "avg_pool2d", "max_pool2d", "max_pool2d_with_indices",
    "_adaptive_avg_pool2d", "adaptive_max_pool2d",
)
# fmt: on
ELEMENTWISE_OPS = {getattr(aten, n): _per_output for n in _ELEMENTWISE_NAMES} | {
    getattr(aten, n): _per_input for n in _REDUCTION_NAMES
}


@dataclass(frozen=True)
class MacCount:
    """Counts for one forward pass of the given input (per image when the batch is 1).

    `by_module` maps a submodule's qualified name ("" for the whole model) to (MACs, all ops).
    """

    macs: int
    all_ops: int
    by_module: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False, compare=False)


def example_input(model: nn.Module, resolution: int, batch: int = 1, device="cpu") -> Tensor:
    """A random (batch, model.in_chans, resolution, resolution) image batch."""
    return torch.randn(batch, getattr(model, "in_chans", 3), resolution, resolution, device=device)


def count_macs(model: nn.Module, x: Tensor) -> MacCount:
    """MACs (convolutions and matrix products) and all ops of `model(x)`, in eval mode.

    One torch.utils.flop_counter pass counts both: its own formulas for MACs, and ELEMENTWISE_OPS
    added through `custom_mapping` for the rest. The model's train/eval mode is restored.
    """
    counter = FlopCounterMode(display=False, custom_mapping=ELEMENTWISE_OPS)
    with _eval(model), torch.no_grad(), counter:
        model(x)
    root = type(model).__name__
    by_module = {}
    for name, ops in counter.get_flop_counts().items():
        if name == "Global" or not (name == root or name.startswith(root + ".")):
            continue
        macs = sum(v for op, v in ops.items() if op in MAC_OPS) // 2
        other = sum(v for op, v in ops.items() if op not in MAC_OPS)
        by_module[name[len(root) + 1 :]] = (macs, macs + other)
    macs, all_ops = by_module.get("", (0, 0))
    return MacCount(macs, all_ops, by_module)


@contextlib.contextmanager
def _eval(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


# ---------------------------------------------------------------------------- memory


class _LiveBytes(TorchDispatchMode):
    """Bytes held by the storages that ops create inside this mode, and their peak.

    A storage counts from the op that creates it until the last tensor using it is freed (weakref
    finalizers; CPython frees tensors as soon as they are unreferenced). Storages in `external`
    (weights, input) are never counted, nor are views or in-place results on them.
    """

    def __init__(self, external: set[int]):
        super().__init__()
        self.external = external
        self.refs: dict[int, int] = {}
        self.sizes: dict[int, int] = {}
        self.current = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, Tensor):
                self._track(t)
        return out

    def _track(self, t: Tensor) -> None:
        storage = t.untyped_storage()
        ptr, size = storage.data_ptr(), storage.nbytes()
        if size == 0 or ptr in self.external:
            return
        if ptr not in self.refs:
            self.refs[ptr], self.sizes[ptr] = 0, size
            self.current += size
            self.peak = max(self.peak, self.current)
        self.refs[ptr] += 1
        weakref.finalize(t, self._release, ptr)

    def _release(self, ptr: int) -> None:
        self.refs[ptr] -= 1
        if self.refs[ptr] == 0:
            del self.refs[ptr]
            self.current -= self.sizes.pop(ptr)


def measure_memory(model: nn.Module, x: Tensor) -> int:
    """Peak bytes of activations (and temporaries) during one inference forward of `x`.

    CUDA: torch.cuda.max_memory_allocated over the pass minus what was allocated before it.
    CPU: the peak of live tensor storages created by the pass (see _LiveBytes).
    """
    with _eval(model), torch.no_grad():
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
            base = torch.cuda.memory_allocated(x.device)
            torch.cuda.reset_peak_memory_stats(x.device)
            out = model(x)
            torch.cuda.synchronize(x.device)
            peak = torch.cuda.max_memory_allocated(x.device) - base
            del out
            return peak
        tensors = [x, *model.parameters(), *model.buffers()]
        external = {t.untyped_storage().data_ptr() for t in tensors}
        with _LiveBytes(external) as live:
            out = model(x)
        del out
        return live.peak


# ---------------------------------------------------------------------------- latency


def default_threads() -> int:
    """The cores this process may run on (all of them, unless restricted by affinity)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with `threads` intra-op threads, then restore the previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class Latency:
    """Seconds per call of a batch: median and interquartile range over the timed blocks."""

    median_s: float
    iqr_s: float
    batch: int
    runs: int  # timed calls, after the warm-up
    warmup: int
    threads: int
    blocks: int = 1  # timed blocks of `runs // blocks` calls; the median and IQR are over blocks

    @property
    def throughput(self) -> float:
        """Images per second at this batch size."""
        return self.batch / self.median_s


def measure_latency(
    fn: Callable[[Tensor], object],
    x: Tensor,
    *,
    threads: int | None = None,
    warmup: int = 2,
    min_run_time: float = 0.25,
) -> Latency:
    """Time `fn(x)` with torch.utils.benchmark at a fixed number of intra-op threads.

    `warmup` untimed calls come first (allocator, oneDNN primitive caches, lazy init);
    blocked_autorange then picks a block size and repeats blocks for at least `min_run_time`
    seconds. A call slower than `min_run_time` is timed once more after its block-size probe.
    """
    if warmup < 0:
        raise ConfigError(f"warmup must be >= 0, got {warmup!r}")
    if min_run_time <= 0:
        raise ConfigError(f"min_run_time must be positive, got {min_run_time!r}")
    threads = threads or default_threads()
    with torch_threads(threads):
        for _ in range(warmup):
            fn(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
    timer = benchmark.Timer(stmt="fn(x)", globals={"fn": fn, "x": x}, num_threads=threads)
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return Latency(
        median_s=m.median,
        iqr_s=m.iqr,
        batch=x.shape[0],
        runs=m.number_per_run * len(m.raw_times),
        warmup=warmup,
        threads=threads,
        blocks=len(m.raw_times),
    )


# ---------------------------------------------------------------------------- runtimes

# A runtime turns a model into a callable on a batch. Each builder takes (model, example, threads,
# workdir) and returns that callable; adding a runtime is one function and one RUNTIMES entry.
Runner = Callable[[Tensor], object]


def eager_runner(model: nn.Module, example: Tensor, threads: int, workdir: Path) -> Runner:
    """Plain PyTorch, eval mode, under torch.inference_mode."""
    model.eval()

    def run(x: Tensor):
        with torch.inference_mode():
            return model(x)

    return run


def export_onnx_for_timing(model: nn.Module, example: Tensor, path: Path) -> Path:
    """ONNX opset 17 with a dynamic batch axis, for timing only (no parity check)."""
    model.eval()
    with warnings.catch_warnings():
        # the TorchScript exporter warns that it is deprecated and that shape checks trace as
        # constants; neither matters for a timing copy exported at the size it is timed at
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["input"],
            output_names=["output"],
            opset_version=17,
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            dynamo=False,
        )
    return path


def onnxruntime_runner(model: nn.Module, example: Tensor, threads: int, workdir: Path) -> Runner:
    """An ONNX Runtime CPU session on a temporary ONNX export, `threads` intra-op threads."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingDependencyError(
            "--runtime onnxruntime needs onnxruntime: pip install lightnets[onnx]"
        ) from None
    path = export_onnx_for_timing(model, example.cpu(), workdir / "model.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(x: Tensor):
        return session.run(None, {"input": x.cpu().numpy()})

    return run


def openvino_runner(model: nn.Module, example: Tensor, threads: int, workdir: Path) -> Runner:
    """OpenVINO on the CPU, on a temporary ONNX export (see lightnets.deploy.openvino)."""
    from lightnets.deploy.openvino import openvino_runner as build

    return build(model, example, threads, workdir)


@dataclass(frozen=True)
class Runtime:
    """How to build a runner, and the optional package it needs (checked before any model is
    built, so a missing package fails at once)."""

    build: Callable[[nn.Module, Tensor, int, Path], Runner]
    package: str | None = None
    extra: str = ""
    cpu_only: bool = False


RUNTIMES: dict[str, Runtime] = {
    "eager": Runtime(eager_runner),
    "onnxruntime": Runtime(onnxruntime_runner, "onnxruntime", "onnx", cpu_only=True),
    "openvino": Runtime(openvino_runner, "openvino", "openvino", cpu_only=True),
}


def check_runtime(runtime: str, device: str | torch.device = "cpu") -> Runtime:
    """The Runtime named `runtime`; ValueError/ImportError (with the pip command) if unusable."""
    import importlib.util

    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    spec = RUNTIMES[runtime]
    if spec.package and importlib.util.find_spec(spec.package) is None:
        raise MissingDependencyError(
            f"--runtime {runtime} needs {spec.package}: pip install lightnets[{spec.extra}]"
        )
    if spec.cpu_only and torch.device(device).type != "cpu":
        raise ConfigError(f"runtime {runtime!r} is timed on the CPU here; use --device cpu")
    return spec


def make_runner(
    runtime: str, model: nn.Module, example: Tensor, threads: int, workdir: Path
) -> Runner:
    return check_runtime(runtime, example.device).build(model, example, threads, workdir)


# ---------------------------------------------------------------------------- whole model


@dataclass(frozen=True)
class ModelProfile:
    """One model's measured cost beside its paper's figures (None where unknown or not measured).

    Differences are (ours - paper) / paper in percent; the MACs difference is only given at the
    paper's own resolution.
    """

    model: str
    resolution: int
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


MIN_BLOCKS_FOR_IQR = 4


def _diff_pct(ours: float, paper: float | None) -> float | None:
    return None if not paper else 100.0 * (ours - paper) / paper


def model_min_input(model: nn.Module) -> int:
    card = getattr(model, "card", None)
    return getattr(model, "min_input", None) or getattr(card, "min_input", None) or 1


def check_resolution(model: nn.Module, resolution: int, name: str = "") -> None:
    """One-line ValueError if `resolution` is below the model's smallest input side."""
    smallest = model_min_input(model)
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < smallest:
        who = name or getattr(model, "model_name", type(model).__name__)
        raise ConfigError(
            f"resolution {resolution!r} is too small for {who} (min_input {smallest})"
        )


def profile_model(
    model: nn.Module,
    *,
    resolution: int | None = None,
    batch: Sequence[int] = (1, 32),
    threads: int | None = None,
    device: str | torch.device = "cpu",
    runtime: str = "eager",
    warmup: int = 2,
    min_run_time: float = 0.25,
) -> ModelProfile:
    """Params, MACs, all ops and peak memory at batch 1; latency at the smallest batch and
    throughput at the largest (when larger) of `batch`; beside the paper figures in `model.card`.

    `resolution` defaults to the card's input_size (224 without a card). MACs and memory are
    measured on the eager model; `runtime` selects what is timed (see RUNTIMES).
    """
    card = getattr(model, "card", None)
    name = getattr(model, "model_name", type(model).__name__)
    resolution = resolution or getattr(card, "input_size", 224)
    check_resolution(model, resolution, name)
    batches = sorted(set(batch))
    if not batches or batches[0] < 1:
        raise ConfigError(f"batch sizes must be positive integers, got {tuple(batch)!r}")
    threads = threads or default_threads()
    device = torch.device(device)
    model = model.to(device).eval()

    params = count_params(model)
    x = example_input(model, resolution, 1, device)
    with torch_threads(threads):
        macs = count_macs(model, x)
        peak = measure_memory(model, x)
    with tempfile.TemporaryDirectory(prefix="lightnets-profile-") as workdir:
        run = make_runner(runtime, model, x, threads, Path(workdir))
        xb = example_input(model, resolution, batches[0], device)
        latency = measure_latency(
            run, xb, threads=threads, warmup=warmup, min_run_time=min_run_time
        )
        throughput = None
        if len(batches) > 1:
            # blocked_autorange's block-size probe is this batch's warm-up (its time is discarded)
            xb = example_input(model, resolution, batches[-1], device)
            throughput = measure_latency(
                run, xb, threads=threads, warmup=0, min_run_time=min_run_time
            )
        del run

    at_paper_size = card is not None and resolution == card.input_size
    paper_params = getattr(card, "params_m", None)
    paper_macs = getattr(card, "macs_m", None) if at_paper_size else None
    ref_params = getattr(card, "ref_params", None)
    return ModelProfile(
        model=name,
        resolution=resolution,
        params_m=params.learned / 1e6,
        fixed_k=params.fixed / 1e3,
        macs_m=macs.macs / 1e6,
        all_ops_m=macs.all_ops / 1e6,
        peak_mem_mb=peak / 2**20,
        latency_ms=latency.median_s * 1e3,
        # a spread needs a few samples; a call slower than min_run_time gives only one or two
        latency_iqr_ms=latency.iqr_s * 1e3 if latency.blocks >= MIN_BLOCKS_FOR_IQR else None,
        throughput_ips=throughput.throughput if throughput else None,
        paper_params_m=paper_params,
        d_params_pct=_diff_pct(params.learned / 1e6, paper_params),
        paper_macs_m=paper_macs,
        d_macs_pct=_diff_pct(macs.macs / 1e6, paper_macs),
        paper_top1=getattr(card, "top1", None),
        ref_params_m=ref_params / 1e6 if ref_params else None,
        ref_macs_m=getattr(card, "ref_macs_m", None) if at_paper_size else None,
        params=params.learned,
        fixed=params.fixed,
        macs=macs.macs,
        all_ops=macs.all_ops,
        peak_mem_bytes=peak,
        latency_batch=latency.batch,
        latency_runs=latency.runs,
        throughput_batch=throughput.batch if throughput else None,
        throughput_runs=throughput.runs if throughput else None,
        threads=threads,
        device=str(device),
        runtime=runtime,
    )


# ---------------------------------------------------------------------------- per block


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
        with _eval(model), torch.inference_mode(), torch_threads(threads):
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

    rows = []
    for name, block in blocks:
        macs, all_ops = costs.get(name, (0, 0))
        params = sum(p.numel() for p in block.parameters())
        rows.append(
            LayerCost(
                name,
                type(block).__name__,
                params,
                macs,
                all_ops,
                1e3 * spent[name] / runs,
                100.0 * spent[name] / total,
            )
        )
    between = total - sum(spent.values())
    rows.append(
        LayerCost("(between blocks)", "", 0, 0, 0, 1e3 * between / runs, 100.0 * between / total)
    )
    return rows


@dataclass(frozen=True)
class OpCost:
    """One aten operator's self time, summed over a forward pass (torch.profiler)."""

    op: str
    calls: int
    time_ms: float
    time_pct: float


def op_profile(fn: Runner, x: Tensor, *, threads: int | None = None, runs: int = 5) -> list[OpCost]:
    """Where the time goes by operator (convolution, cat, split, mul, sigmoid, ...), per forward,
    sorted by time: torch.profiler self CPU time per aten op, or on CUDA self device time per
    kernel. Profiler overhead inflates absolute times slightly; shares are the figure to read."""
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


# ---------------------------------------------------------------------------- machine


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what platform reports."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def machine_info(device: str = "cpu", threads: int | None = None, runtime: str = "eager") -> dict:
    """What a timing depends on, so runs on different machines can be compared."""
    info = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads or default_threads(),
        "device": str(device),
        "runtime": runtime,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if str(device).startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
    if runtime == "onnxruntime":
        with contextlib.suppress(ImportError):
            import onnxruntime

            info["onnxruntime"] = onnxruntime.__version__
    return info
