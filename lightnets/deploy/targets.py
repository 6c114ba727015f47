"""Deployment targets: the one list of runtimes, what precisions each exports, which packages it
needs, and how an artifact on disk is recognised and run.

`TARGETS` is the registry every command derives from: `export --runtime`, `deploy --runtimes`,
`profile --runtime` (eager plus every target, `TIMED_RUNTIMES`) and `eval --model` (by file
suffix). A target's module (`Target.module`) defines

    export(model, path, example, precision, calibration, metadata) -> Path
        write the artifact for `model` (eval mode; re-parameterized first where the target says
        so) at `path`; `example` is an NCHW float32 batch of the input size; `calibration` an
        iterable of NCHW float32 batches for int8, else None; `metadata` goes into the file where
        the format allows. Returns the artifact's path.

and its loader (lightnets.deploy.loaders) runs the file: NCHW float32 array in, logits out.
Only the standard library and numpy here, so that `lightnets verify` runs without torch.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightnets.errors import ConfigError, MissingDependencyError, UnknownNameError

PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@dataclass(frozen=True)
class Target:
    runtime: str  # "onnxruntime", "openvino", "executorch", "litert", "ncnn", "torchscript"
    packages: tuple[str, ...]  # import names that must be installed; the last runs the file
    extra: str  # pip extra that installs them
    precisions: tuple[str, ...]  # subset of PRECISIONS
    suffix: str  # artifact file suffix
    reparameterize: bool  # export the re-parameterized model (BN folded, mixed convs merged)
    module: str  # defines export(...), see the module docstring

    def export(self, model, path, example, precision, calibration, metadata) -> Path:
        return importlib.import_module(self.module).export(
            model, Path(path), example, precision, calibration, metadata
        )

    def load(self, path: str | os.PathLike, threads: int | None = None):
        from lightnets.deploy.loaders import LOADERS

        return LOADERS[self.runtime](Path(path), threads)


FLOAT_INT8 = ("fp32", "fp16", "int8")
FP32_INT8 = ("fp32", "int8")  # ExecuTorch: XNNPACK fp32, PT2E int8
FP32_FP16 = ("fp32", "fp16")  # ncnn: its int8 tools are not on PyPI
ONNX = ("onnx", "onnxruntime")  # exporter, runtime
LITERT = ("litert_torch", "ai_edge_litert")  # converter, interpreter
NCNN = ".ncnn.param"  # with its weights in .ncnn.bin

# Re-parameterize: XNNPACK (ExecuTorch, LiteRT) folds BN itself and runs MixConv's split depthwise
# convs faster than one zero-padded merged conv (docs/deploy.md, "Re-parameterization"); the
# others gain from the merged graph.
# fmt: off
TARGETS: dict[str, Target] = {r[0]: Target(*r[:6], "lightnets.deploy." + r[6]) for r in (
    # runtime      packages          extra         precisions  suffix     reparam module
    ("onnxruntime", ONNX,             "onnx",       FLOAT_INT8, ".onnx",   True,  "onnx"),
    ("openvino",    ("openvino",),    "openvino",   PRECISIONS, ".xml",    True,  "openvino"),
    ("executorch",  ("executorch",),  "executorch", FP32_INT8,  ".pte",    False, "executorch"),
    ("litert",      LITERT,           "litert",     FLOAT_INT8, ".tflite", False, "litert"),
    ("ncnn",        ("pnnx", "ncnn"), "ncnn",       FP32_FP16,  NCNN,      True,  "ncnn"),
    ("torchscript", (),               "",           ("fp32",),  ".pt",     True,  "torchscript"),
)}
# fmt: on
DEPLOY_RUNTIMES = tuple(r for r in TARGETS if r != "torchscript")  # what `deploy` tries by default
TIMED_RUNTIMES = ("eager", *TARGETS)  # what `profile --runtime` and `compare` can time


def _unknown(kind: str, value: str, known: Iterable[str]) -> UnknownNameError:
    known = list(known)
    close = difflib.get_close_matches(value, known, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return UnknownNameError(f"unknown {kind} {value!r}{hint} (known: {', '.join(known)})")


def get_target(runtime: str) -> Target:
    """The Target named `runtime`; UnknownNameError with close matches otherwise."""
    if runtime not in TARGETS:
        raise _unknown("runtime", runtime, TARGETS)
    return TARGETS[runtime]


def check_precision_name(precision: str) -> str:
    """`precision` if it is one of PRECISIONS; UnknownNameError with close matches otherwise."""
    if precision not in PRECISIONS:
        raise _unknown("precision", precision, PRECISIONS)
    return precision


def check_precision(target: Target, precision: str) -> str:
    """`precision` if `target` exports it; UnknownNameError (a typo) or ConfigError (a real
    precision this runtime does not offer) otherwise."""
    check_precision_name(precision)
    if precision not in target.precisions:
        raise ConfigError(
            f"{target.runtime} exports {', '.join(target.precisions)}, not {precision}"
        )
    return precision


def missing_packages(target: Target, to_run: bool = False) -> list[str]:
    """The packages `target` needs that are not installed: to export, or (`to_run`) to run."""
    needed = target.packages[-1:] if to_run else target.packages
    return [p for p in needed if importlib.util.find_spec(p) is None]


def missing(target: Target) -> str | None:
    """None when every package of `target` is installed, else the pip command that installs them."""
    return f"pip install lightnets[{target.extra}]" if missing_packages(target) else None


def require(target: Target, to_run: bool = False) -> Target:
    """`target`, or MissingDependencyError naming the missing packages (to export it, or only
    to run its files) and the pip command."""
    absent = missing_packages(target, to_run)
    if absent:
        raise MissingDependencyError(
            f"{target.runtime} needs {', '.join(absent)}: {missing(target)}"
        )
    return target


# ------------------------------------------------------------------ artifacts on disk


def target_for_artifact(path: str | os.PathLike) -> Target:
    """The target that wrote `path`: the sidecar's "runtime", else the file suffix."""
    from lightnets.deploy.sidecar import read_sidecar, sidecar_path

    path = Path(path)
    if sidecar_path(path).is_file():
        runtime = read_sidecar(path).get("runtime")
        if runtime:
            return get_target(runtime)
    for target in sorted(TARGETS.values(), key=lambda t: -len(t.suffix)):  # .ncnn.param first
        if path.name.endswith(target.suffix):
            return target
    suffixes = ", ".join(t.suffix for t in TARGETS.values())
    raise ConfigError(f"{path}: not an artifact lightnets can run (suffixes: {suffixes})")


# what evaluating an artifact needs from its metadata: the model, its preprocessing, its classes
EVAL_METADATA = ("model_name", "img_size", "crop_pct", "mean", "std", "class_names")


def read_artifact_metadata(path: str | os.PathLike) -> dict:
    """An artifact's sidecar; for an ONNX file exported before sidecars existed, its
    metadata_props. ConfigError when it lacks one of EVAL_METADATA."""
    from lightnets.deploy.sidecar import read_sidecar, sidecar_path

    path = Path(path)
    if sidecar_path(path).is_file() or path.suffix != ".onnx":
        meta = read_sidecar(path)
    else:
        meta = embedded_metadata(path, "onnxruntime")
        if "input_size" in meta:  # (in_chans, img_size), as files of those versions wrote it
            meta["in_chans"], meta["img_size"] = meta["input_size"][0], meta["input_size"][1]
    missing = [k for k in EVAL_METADATA if k not in meta]
    if missing:
        raise ConfigError(f"--model {path}: its metadata lacks {', '.join(missing)}")
    return meta


def is_artifact(path: str | os.PathLike) -> bool:
    """True when `path` is an existing file with a sidecar or a known artifact suffix."""
    from lightnets.deploy.sidecar import sidecar_path

    path = Path(path)
    if not path.is_file():
        return False
    return sidecar_path(path).is_file() or any(
        path.name.endswith(t.suffix) for t in TARGETS.values()
    )


def verified_on(runtime: str) -> dict:
    """What checked an artifact: this CPU's instruction-set class and the runtime's version (int8
    and bf16 results depend on both)."""
    from importlib.metadata import PackageNotFoundError, version

    from lightnets.cpu_class import cpu_class

    package = {"litert": "ai-edge-litert", "torchscript": "torch"}.get(runtime, runtime)
    try:
        runtime_version = version(package)
    except PackageNotFoundError:
        runtime_version = None
    return {"cpu_class": cpu_class(), "runtime": runtime, "runtime_version": runtime_version}


# leading bytes by which a runtime's file is recognised before its runtime reads it: ExecuTorch
# aborts the process (C++ terminate) on a file that is not a program, so it is never handed one
FILE_IDENTIFIERS = {"executorch": (4, b"ET"), "litert": (4, b"TFL")}


def load_artifact(target: Target, path: Path, shape: tuple[int, ...], threads: int | None = None):
    """`target.load(path)`, run once on zeros of `shape` (a runtime that compiles lazily fails
    here, not in the middle of an evaluation); ConfigError naming the file when it cannot."""
    path = Path(path)
    offset, magic = FILE_IDENTIFIERS.get(target.runtime, (0, b""))
    with open(path, "rb") as file:
        head = file.read(offset + len(magic))
    if head[offset:] != magic:
        raise ConfigError(f"{path}: not a {target.runtime} file (no {magic.decode()} identifier)")
    try:
        run = target.load(path, threads)
        run(np.zeros(shape, np.float32))
    except (ConfigError, MissingDependencyError):
        raise
    except Exception as err:  # each runtime raises its own types for a corrupt file
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        raise ConfigError(f"{path}: {target.runtime} cannot run it ({reason})") from None
    return run


def embedded_metadata(path: Path, runtime: str) -> dict:
    """The metadata a format keeps inside the file (ONNX metadata_props, OpenVINO rt_info); {}
    for formats without room for it."""
    from lightnets.deploy import loaders
    from lightnets.deploy.sidecar import json_or_text

    if runtime == "onnxruntime":
        return {k: json_or_text(v) for k, v in loaders.read_onnx_metadata(path).items()}
    if runtime == "openvino":
        return loaders.ir_metadata(path)
    return {}
