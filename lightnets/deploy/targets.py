"""Deployment targets: which runtime runs which precision, which package it needs, and the
metadata every exported artifact carries.

A target is one runtime. Its module (`Target.module`) defines two functions:

    export(model, path, example, precision, calibration, metadata) -> Path
        write the artifact for `model` (eval mode, already re-parameterized) at `path`;
        `example` is an NCHW float32 batch of the input size; `calibration` an iterable of
        NCHW float32 batches (preprocessed images) for int8, else None; `metadata` goes into the
        file where the format allows. Returns the artifact's path.
    load(path, threads=None) -> Callable[[np.ndarray], np.ndarray]
        a function from an NCHW float32 batch to the logits.

The metadata is ALSO written to a sidecar `<artifact>.json` for every runtime (`write_sidecar`,
`read_sidecar`), so that `lightnets eval --model ARTIFACT` can feed any artifact the same
preprocessing as the PyTorch eval without parsing each format. Its keys: model_name, runtime,
precision, img_size, crop_pct, mean, std, in_chans, channel_order ("RGB", or "L" for one grey
channel), class_names, batch (None: dynamic batch axis; an int: the only batch the artifact
runs), plus what the exporter adds (verification figures, keep_float, companion files).

`verify_artifact` checks an artifact against the PyTorch model, by one rule for every runtime:
float precisions by relative error within `FLOAT_RTOL`, int8 by top-1 agreement and output
cosine similarity on the calibration images (`INT8_MIN_AGREEMENT`, `INT8_MIN_COSINE`).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lightnets.errors import ConfigError, MissingDependencyError, UnknownNameError

PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@dataclass(frozen=True)
class Target:
    runtime: str  # "onnxruntime", "openvino", "executorch", "litert", "ncnn", "torchscript"
    packages: tuple[str, ...]  # import names that must be installed
    extra: str  # pip extra that installs them
    precisions: tuple[str, ...]  # subset of PRECISIONS
    suffix: str  # artifact file suffix
    module: str  # defines export(...) and load(...), see the module docstring

    def export(
        self,
        model: nn.Module,
        path: str | os.PathLike,
        example: Tensor,
        precision: str,
        calibration: Iterable[Tensor] | None,
        metadata: dict,
    ) -> Path:
        return importlib.import_module(self.module).export(
            model, Path(path), example, precision, calibration, metadata
        )

    def load(self, path: str | os.PathLike, threads: int | None = None):
        return importlib.import_module(self.module).load(Path(path), threads)


FLOAT_INT8 = ("fp32", "fp16", "int8")
FP32_INT8 = ("fp32", "int8")  # ExecuTorch: XNNPACK fp32, PT2E int8
FP32_FP16 = ("fp32", "fp16")  # ncnn: its int8 tools are not on PyPI
LITERT = ("litert_torch", "ai_edge_litert")  # converter, interpreter

# fmt: off
TARGETS: dict[str, Target] = {r[0]: Target(*r[:5], "lightnets.deploy." + r[5]) for r in (
    # runtime      import names             pip extra     precisions  suffix         module
    ("onnxruntime", ("onnx", "onnxruntime"), "onnx",       FLOAT_INT8, ".onnx",       "onnx"),
    ("openvino",    ("openvino",),           "openvino",   PRECISIONS, ".xml",        "openvino"),
    ("executorch",  ("executorch",),         "executorch", FP32_INT8,  ".pte",        "executorch"),
    ("litert",      LITERT,                  "litert",     FLOAT_INT8, ".tflite",     "litert"),
    ("ncnn",        ("pnnx", "ncnn"),        "ncnn",       FP32_FP16,  ".ncnn.param", "ncnn"),
    ("torchscript", (),                      "",           ("fp32",),  ".pt",        "torchscript"),
)}
# fmt: on


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


def missing_packages(target: Target) -> list[str]:
    return [p for p in target.packages if importlib.util.find_spec(p) is None]


def missing(target: Target) -> str | None:
    """None when every package of `target` is installed, else the pip command that installs them."""
    return f"pip install lightnets[{target.extra}]" if missing_packages(target) else None


def require(target: Target) -> Target:
    """`target`, or MissingDependencyError naming the missing packages and the pip command."""
    absent = missing_packages(target)
    if absent:
        raise MissingDependencyError(
            f"{target.runtime} needs {', '.join(absent)}: {missing(target)}"
        )
    return target


# ------------------------------------------------------------------ artifacts and sidecars


def sidecar_path(artifact: str | os.PathLike) -> Path:
    """`model.onnx` -> `model.onnx.json`."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def write_sidecar(artifact: str | os.PathLike, metadata: dict) -> Path:
    from lightnets.files import write_text

    path = sidecar_path(artifact)
    write_text(path, json.dumps(metadata, indent=1) + "\n")
    return path


def read_sidecar(artifact: str | os.PathLike) -> dict:
    """The metadata written beside `artifact`; ConfigError when it is missing or not JSON."""
    path = sidecar_path(artifact)
    if not path.is_file():
        raise ConfigError(
            f"{artifact}: no {path.name} beside it (export it with `lightnets export` to get the "
            "preprocessing it needs)"
        )
    try:
        metadata = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(metadata, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return metadata


def target_for_artifact(path: str | os.PathLike) -> Target:
    """The target that wrote `path`: the sidecar's "runtime", else the file suffix."""
    path = Path(path)
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        runtime = read_sidecar(path).get("runtime")
        if runtime:
            return get_target(runtime)
    for target in sorted(TARGETS.values(), key=lambda t: -len(t.suffix)):  # .ncnn.param first
        if path.name.endswith(target.suffix):
            return target
    suffixes = ", ".join(t.suffix for t in TARGETS.values())
    raise ConfigError(f"{path}: not an artifact lightnets can run (suffixes: {suffixes})")


def is_artifact(path: str | os.PathLike) -> bool:
    """True when `path` is an existing file with a sidecar or a known artifact suffix."""
    path = Path(path)
    if not path.is_file():
        return False
    return sidecar_path(path).is_file() or any(
        path.name.endswith(t.suffix) for t in TARGETS.values()
    )


def check_input_size(loaded) -> int:
    """The image size `loaded` will be exported at; ConfigError when the network cannot run it
    (checked before any export starts)."""
    import lightnets

    size = loaded.preprocessing.img_size
    min_input = getattr(loaded.model, "min_input", lightnets.model_card(loaded.name).min_input)
    if size < min_input:
        raise ConfigError(f"--img-size {size}: {loaded.name} needs at least {min_input} px")
    return size


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


def artifact_metadata(loaded, runtime: str, precision: str, **extra) -> dict:
    """The sidecar / in-file metadata of an export of `loaded` (a checkpoints.LoadedModel)."""
    import lightnets

    pre = loaded.preprocessing
    return {
        "model_name": loaded.name,
        "runtime": runtime,
        "precision": precision,
        "img_size": pre.img_size,
        "crop_pct": pre.crop_pct,
        "mean": list(pre.mean),
        "std": list(pre.std),
        "in_chans": loaded.in_chans,
        "channel_order": "L" if loaded.in_chans == 1 else "RGB",
        "class_names": list(loaded.class_names),
        "batch": None,
        "lightnets_version": lightnets.__version__,
        **extra,
    }


# ------------------------------------------------------------------ verification

# largest relative error (max |a - b| / max |b|) of a float artifact vs PyTorch fp32. fp16 keeps
# ~3 significant digits per op and bf16 ~2; measured: fp16 5e-4 (random-weight MixNet-S) to 1.1e-2
# (a briefly trained MobileNetV2-0.35 on Gaussian noise input), bf16 8x that. The limits leave
# about 3x room above the worst seen.
FLOAT_RTOL = {"fp32": 1e-4, "fp16": 3e-2, "bf16": 1e-1}
# int8 is judged by what it changes for a user: on the calibration images, the share of images
# whose top-1 class is that of the fp32 model, and the mean cosine of the logit vectors. The
# cosine is the backstop for a broken kernel (u8 x s8 saturation took it to 0.65); correctly
# quantized models measured 0.92-0.999 (few classes: a short logit vector turns more).
INT8_MIN_AGREEMENT = 0.9
INT8_MIN_COSINE = 0.9


@dataclass(frozen=True)
class Verification:
    precision: str
    images: int
    relative_error: float | None = None  # float precisions
    agreement: float | None = None  # int8: top-1 agreement with fp32 on the calibration images
    cosine: float | None = None  # int8: mean cosine similarity of the logits

    def summary(self) -> str:
        if self.relative_error is not None:
            limit = FLOAT_RTOL[self.precision]
            return f"relative error {self.relative_error:.1e} <= {limit:.0e} vs PyTorch fp32"
        return (
            f"top-1 agreement {100 * self.agreement:.1f}% (>= {100 * INT8_MIN_AGREEMENT:.0f}%), "
            f"logit cosine {self.cosine:.4f} (>= {INT8_MIN_COSINE}) vs fp32 on {self.images} "
            "calibration images"
        )

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def run_batches(
    run: Callable[[np.ndarray], np.ndarray], batches: Iterable[Tensor], batch: int | None
):
    """`run` over `batches`, cut into batches of `batch` (None: as they come); one tensor."""
    outs = []
    for x in batches:
        parts = [x] if batch is None else list(torch.split(x, batch))
        for part in parts:
            if batch is not None and part.shape[0] < batch:  # a fixed-batch artifact: pad
                pad = part[-1:].expand(batch - part.shape[0], *part.shape[1:])
                out = np.asarray(run(torch.cat([part, pad]).numpy()))[: part.shape[0]]
            else:
                out = np.asarray(run(part.contiguous().numpy()))
            outs.append(torch.from_numpy(np.array(out, dtype=np.float32)))
    return torch.cat(outs)


def logit_cosine(actual: Tensor, expected: Tensor) -> Tensor:
    """Per-row cosine similarity, 1 where both rows are all zero: a network whose logits pass a
    ReLU (SqueezeNet's classifier) outputs zeros for some inputs, and int8 matching that exactly
    is agreement, not the 0 the plain formula gives."""
    cosine = torch.nn.functional.cosine_similarity(actual, expected, dim=1)
    both_zero = (actual == 0).all(1) & (expected == 0).all(1)
    return torch.where(both_zero, torch.ones_like(cosine), cosine)


def verify_artifact(
    run: Callable[[np.ndarray], np.ndarray],
    reference: nn.Module,
    precision: str,
    inputs: list[Tensor],
    batch: int | None = None,
    *,
    rtol: float | None = None,
    min_agreement: float = INT8_MIN_AGREEMENT,
    min_cosine: float = INT8_MIN_COSINE,
    name: str = "artifact",
    classifier: bool = True,
) -> Verification:
    """Run `run` (an artifact's load()) on `inputs` and compare with `reference` in fp32.

    Raises ConfigError (one line) below the thresholds; the artifact is left for inspection.
    An embedding model (`classifier` False) is held to the cosine only: the index of its largest
    output means nothing.
    """
    with torch.no_grad():
        expected = torch.cat([reference.eval()(x) for x in inputs]).float()
    actual = run_batches(run, inputs, batch)
    if actual.shape != expected.shape:
        raise ConfigError(
            f"{name} output shape {tuple(actual.shape)} != PyTorch {tuple(expected.shape)}"
        )
    if not torch.isfinite(actual).all():
        raise ConfigError(f"{name} returns non-finite values")
    n = expected.shape[0]
    if precision != "int8":
        from lightnets.deploy.onnx import relative_error

        error = relative_error(actual, expected)
        limit = FLOAT_RTOL[precision] if rtol is None else rtol
        if error > limit:
            raise ConfigError(
                f"{name} ({precision}) differs from PyTorch: relative error {error:.2e} > "
                f"{limit:.0e}"
            )
        return Verification(precision, n, relative_error=error)
    agreement = (actual.argmax(1) == expected.argmax(1)).float().mean().item()
    cosine = logit_cosine(actual, expected).mean().item()
    if (classifier and agreement < min_agreement) or cosine < min_cosine:
        raise ConfigError(
            f"{name} (int8) strays from fp32 on {n} calibration images: top-1 agreement "
            f"{100 * agreement:.1f}% (need {100 * min_agreement:.0f}%), logit cosine {cosine:.4f} "
            f"(need {min_cosine}); keep more layers in float (--keep-float) or calibrate on more "
            "images"
        )
    return Verification(precision, n, agreement=agreement, cosine=cosine)


# ------------------------------------------------------------------ export, verified


def artifact_files(artifact: str | os.PathLike) -> list[Path]:
    """The files a deployment ships: the artifact and its weights file beside it when the format
    has one (OpenVINO's model.xml -> model.bin, ncnn's model.ncnn.param -> model.ncnn.bin)."""
    artifact = Path(artifact)
    weights = artifact.with_suffix(".bin")
    return [artifact, weights] if weights.is_file() and weights != artifact else [artifact]


def export_verified(
    loaded,
    runtime: str,
    precision: str,
    path: str | os.PathLike,
    *,
    deployed: nn.Module | None = None,
    calibration: list[Tensor] | None = None,
    keep_float: Iterable[str] = (),
    quantize: dict | None = None,
    rtol: float | None = None,
    min_agreement: float = INT8_MIN_AGREEMENT,
    min_cosine: float = INT8_MIN_COSINE,
    extra: dict | None = None,
) -> dict:
    """Export `loaded` (a checkpoints.LoadedModel) for `runtime` in `precision` at `path`, load
    it back, check it against the PyTorch model (`verify_artifact`) and write the sidecar.

    `deployed` is the module to export (default: `reparameterize(loaded.model)`: BN folded, mixed
    convs merged); the reference is always `loaded.model`. Returns the sidecar's metadata.
    """
    target = require(get_target(runtime))
    check_precision(target, precision)
    keep_float = list(keep_float)
    if keep_float and precision != "int8":
        raise ConfigError("--keep-float only applies to --precision int8")
    if precision == "int8" and not calibration:
        raise ConfigError("int8 needs calibration images: pass --calibrate DIR")
    if deployed is None:
        from lightnets.deploy.reparam import reparameterize

        deployed = reparameterize(loaded.model)
    size = loaded.preprocessing.img_size
    example = torch.randn(
        2, loaded.in_chans, size, size, generator=torch.Generator().manual_seed(0)
    )
    metadata = artifact_metadata(
        loaded,
        runtime,
        precision,
        reparameterized=bool(getattr(deployed, "reparam_report", None)),
        **({"keep_float": keep_float} if precision == "int8" else {}),
        **({"quantize": dict(quantize)} if quantize else {}),
        **(extra or {}),
    )
    final = Path(path)
    # written and checked under a staging name: a rejected artifact never replaces a good one
    path = Path(target.export(deployed, staged(final, target, "partial"), example, precision,
                              calibration, metadata))  # fmt: skip
    if sidecar_path(path).is_file():  # an exporter may have written its own additions
        metadata = {**metadata, **read_sidecar(path)}
        sidecar_path(path).unlink()
    try:
        verification = _verify_export(loaded, target, path, final.name, precision, calibration,
                                      metadata, rtol, min_agreement, min_cosine)  # fmt: skip
    except Exception as err:
        rejected = staged(final, target, "rejected")
        move_artifact(path, rejected)
        if isinstance(err, ConfigError):
            raise ConfigError(f"{err}; the rejected artifact is kept as {rejected}") from None
        raise
    move_artifact(path, final)
    metadata["verification"] = {**verification.to_dict(), **verified_on(target.runtime)}
    metadata["files"] = [p.name for p in artifact_files(final)]
    if "companion_files" in metadata:
        metadata["companion_files"] = metadata["files"][1:]
    limits = (
        {"min_agreement": min_agreement, "min_cosine": min_cosine}
        if precision == "int8"
        else {"rtol": FLOAT_RTOL[precision] if rtol is None else rtol}
    )
    inputs = list(calibration) if precision == "int8" else _float_inputs(loaded)
    attach_reference(loaded, final, metadata, inputs, limits)
    return metadata


def attach_reference(loaded, artifact: Path, metadata: dict, inputs, limits: dict) -> None:
    """Store the reference set beside `artifact` (lightnets.deploy.reference) and write the
    sidecar that names it; `metadata` must be otherwise final."""
    from lightnets.deploy.reference import IMAGES, reference_path, write_reference

    x = torch.cat(list(inputs))[:IMAGES]
    with torch.no_grad():
        logits = loaded.model.eval()(x).float()
    metadata["reference"] = {
        "file": reference_path(artifact).name,
        "images": x.shape[0],
        "limits": limits,
    }
    write_reference(artifact, metadata, x.numpy(), logits.numpy())
    write_sidecar(artifact, metadata)


def _float_inputs(loaded) -> list[Tensor]:
    """The random batches (1 and 3 images) float artifacts are checked on."""
    size = loaded.preprocessing.img_size
    g = torch.Generator().manual_seed(1)
    return [torch.randn(b, loaded.in_chans, size, size, generator=g) for b in (1, 3)]


def staged(path: Path, target: Target, tag: str) -> Path:
    """`m.xml` -> `m.<tag>.xml` beside it (same folder: the final move is a rename)."""
    name = path.name
    stem = name[: -len(target.suffix)] if name.endswith(target.suffix) else path.stem
    return path.with_name(f"{stem}.{tag}{target.suffix}")


def move_artifact(source: Path, destination: Path) -> None:
    """Rename an artifact and its weights file; the weights first, so that the artifact never
    names a weights file that is not there yet."""
    files = artifact_files(source)
    for file in reversed(files[1:]):
        os.replace(file, destination.with_suffix(file.suffix))
    os.replace(files[0], destination)


def _verify_export(loaded, target, path, name, precision, calibration, metadata, rtol,
                   min_agreement, min_cosine) -> Verification:  # fmt: skip
    run = target.load(path)
    inputs = list(calibration) if precision == "int8" else _float_inputs(loaded)
    verification = verify_artifact(
        run,
        loaded.model,
        precision,
        inputs,
        metadata.get("batch"),
        rtol=rtol,
        min_agreement=min_agreement,
        min_cosine=min_cosine,
        name=f"{target.runtime} {name}",
        classifier=not getattr(loaded.model, "card", None) or not loaded.model.card.embedding_dim,
    )
    return verification


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
    if runtime == "onnxruntime":
        from lightnets.deploy.onnx import read_metadata

        raw = read_metadata(path)
        return {k: json_or_text(v) for k, v in raw.items()}
    if runtime == "openvino":
        import openvino

        from lightnets.deploy.openvino import _ir_metadata

        return _ir_metadata(openvino.Core(), path)
    return {}


def json_or_text(value: str):
    """A metadata value: JSON where it parses, else the text itself."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


class ArtifactModule(nn.Module):
    """An artifact's load() function as a module (torch batch in, logits out), so that code
    written for PyTorch models (lightnets.train.evaluate) runs it unchanged."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], batch: int | None = None):
        super().__init__()
        self.run, self.batch = run, batch

    def forward(self, x: Tensor) -> Tensor:
        return run_batches(self.run, [x.detach().float().cpu()], self.batch)
