"""Runtimes that `lightnets profile --runtime` times: PyTorch eager, ONNX Runtime and OpenVINO.

A runtime turns a model into a runner, a callable on a torch batch. Each builder takes (model,
example, threads, workdir) and returns that runner; adding a runtime is one function and one
RUNTIMES entry. The exported runtimes go through this package's one exporter (lightnets.deploy.onnx)
and check their runner against PyTorch on the example before it is timed, so a timing is always of
a graph that computes the model. onnxruntime and openvino are imported only by their builder.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from lightnets.deploy.onnx import INPUT, export_onnx, ort_session, relative_error, write_onnx
from lightnets.deploy.targets import TARGETS
from lightnets.errors import ConfigError, MissingDependencyError

Runner = Callable[[Tensor], object]
PARITY_RTOL = 1e-4  # as export_onnx: largest relative error of a runtime against PyTorch


def eager_runner(model: nn.Module, example: Tensor, threads: int, workdir: Path | None) -> Runner:
    """Plain PyTorch, eval mode, under torch.inference_mode."""
    model.eval()

    def run(x: Tensor):
        with torch.inference_mode():
            return model(x)

    return run


def onnxruntime_runner(model: nn.Module, example: Tensor, threads: int, workdir: Path) -> Runner:
    """An ONNX Runtime CPU session with `threads` intra-op threads on a verified export (opset 17,
    dynamic batch) written to `workdir`."""
    path = Path(workdir) / "model.onnx"
    export_onnx(model, path, tuple(example.shape[-2:]), in_chans=example.shape[1], rtol=PARITY_RTOL)
    session = ort_session(path, threads)

    def run(x: Tensor):
        return session.run(None, {INPUT: x.cpu().numpy()})

    return run


def openvino_runner(model: nn.Module, example: Tensor, threads: int, workdir: Path) -> Runner:
    """OpenVINO on the CPU (f32, latency hint, dynamic batch) on an ONNX export written to
    `workdir`; its output on `example` must match PyTorch's."""
    from lightnets.deploy.openvino import compile_openvino

    path = write_onnx(model.eval(), example.cpu(), Path(workdir) / "model.onnx")
    compiled = compile_openvino(path, threads)

    def run(x: Tensor):
        return compiled(x.cpu().numpy())

    with torch.no_grad():
        error = relative_error(run(example), model(example))
    if error > PARITY_RTOL:
        raise ConfigError(
            f"OpenVINO output differs from PyTorch: relative error {error:.2e} > {PARITY_RTOL:.0e}"
        )
    return run


@dataclass(frozen=True)
class Runtime:
    """How to build a runner, and the optional packages it needs (checked before any model is
    built, so a missing package fails at once)."""

    build: Callable[[nn.Module, Tensor, int, Path], Runner]
    packages: tuple[str, ...] = ()
    extra: str = ""  # the pip extra that installs `packages`
    cpu_only: bool = False


def _exported(build, runtime: str) -> Runtime:
    """A runtime that runs an export: packages and pip extra as its deployment target's."""
    target = TARGETS[runtime]
    return Runtime(build, target.packages, target.extra, cpu_only=True)


RUNTIMES: dict[str, Runtime] = {
    "eager": Runtime(eager_runner),
    "onnxruntime": _exported(onnxruntime_runner, "onnxruntime"),
    "openvino": _exported(openvino_runner, "openvino"),
}


def check_runtime(runtime: str, device: str | torch.device = "cpu") -> Runtime:
    """The Runtime named `runtime`; ConfigError or MissingDependencyError (with the pip command)
    if it cannot run here."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    spec = RUNTIMES[runtime]
    for package in spec.packages:
        if importlib.util.find_spec(package) is None:
            raise MissingDependencyError(
                f"--runtime {runtime} needs {package}: pip install lightnets[{spec.extra}]"
            )
    if spec.cpu_only and torch.device(device).type != "cpu":
        raise ConfigError(f"runtime {runtime!r} is timed on the CPU here; use --device cpu")
    return spec


def make_runner(
    runtime: str, model: nn.Module, example: Tensor, threads: int, workdir: Path
) -> Runner:
    """The runner of `runtime` for `model`, built on `example` (files go to `workdir`)."""
    return check_runtime(runtime, example.device).build(model, example, threads, workdir)
