"""Export, verified: an artifact written for one target and precision under a staging name,
run back and checked against the PyTorch model (lightnets.deploy.checks), kept only when it
passes, with its sidecar (lightnets.deploy.sidecar) and reference set (lightnets.deploy.reference).
Also the runners `profile --runtime` times: the same exporters at fp32.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import Tensor, nn

from lightnets._deprecation import renamed_function
from lightnets.deploy.checks import (
    FLOAT_RTOL,
    INT8_MIN_AGREEMENT,
    INT8_MIN_COSINE,
    Verification,
    relative_error,
    run_batches,
    verify_artifact,
)
from lightnets.deploy.sidecar import artifact_files, read_sidecar, sidecar_path, write_sidecar
from lightnets.deploy.targets import (
    TIMED_RUNTIMES,
    Target,
    check_precision,
    get_target,
    require,
    verified_on,
)
from lightnets.errors import ConfigError
from lightnets.preprocess import image_mode


def check_img_size(loaded) -> int:
    """The image size `loaded` will be exported at; ConfigError when the network cannot run it
    (checked before any export starts)."""
    import lightnets

    size = loaded.preprocessing.img_size
    min_input = getattr(loaded.model, "min_input", lightnets.model_card(loaded.name).min_input)
    if size < min_input:
        raise ConfigError(f"--img-size {size}: {loaded.name} needs at least {min_input} px")
    return size


check_input_size = renamed_function(check_img_size, "check_input_size")


def artifact_metadata(loaded, runtime: str, precision: str, **extra) -> dict:
    """The sidecar / in-file metadata of an export of `loaded` (a checkpoints.LoadedModel)."""
    import lightnets

    pre = loaded.preprocessing
    return {
        "model_name": loaded.name,
        "runtime": runtime,
        "precision": precision,
        **pre.to_dict(),  # img_size, crop_pct, mean, std: Preprocessing.from_dict reads them back
        "in_chans": loaded.in_chans,
        "channel_order": image_mode(loaded.in_chans),
        "class_names": list(loaded.class_names),
        "batch": None,
        "lightnets_version": lightnets.__version__,
        **extra,
    }


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
    labelled: Callable | None = None,
) -> dict:
    """Export `loaded` (a checkpoints.LoadedModel) for `runtime` in `precision` at `path`, load
    it back, check it against the PyTorch model (`verify_artifact`) and write the sidecar.

    `deployed` is the module to export (default: `reparameterize(loaded.model)`: BN folded, mixed
    convs merged); the reference is always `loaded.model`. `labelled`: a judge on labelled
    images for an int8 artifact the agreement rule refuses (checks.verify_artifact). Returns the
    sidecar's metadata.
    """
    target = require(get_target(runtime))
    keep_float = _checked_options(target, precision, keep_float, calibration)
    deployed = _module_to_export(loaded, target, deployed)
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
    path, metadata = _export_staged(loaded, target, deployed, final, precision, calibration,
                                    metadata)  # fmt: skip
    try:
        verification, exported = _verify_export(loaded, target, path, final.name, precision,
                                                calibration, metadata, rtol, min_agreement,
                                                min_cosine, labelled)  # fmt: skip
    except Exception as err:  # whatever failed: set the artifact aside, then re-raise
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
    limits = _limits(loaded, precision, rtol, min_agreement, min_cosine)
    inputs = list(calibration) if precision == "int8" else _float_inputs(loaded)
    attach_reference(loaded, final, metadata, inputs, limits, exported)
    return metadata


def _export_staged(loaded, target: Target, deployed: nn.Module, final: Path, precision: str,
                   calibration, metadata: dict) -> tuple[Path, dict]:  # fmt: skip
    """The artifact written under a staging name beside `final` (checked there, a rejected
    artifact never replaces a good one), and `metadata` with what its exporter added."""
    size = loaded.preprocessing.img_size
    example = torch.randn(
        2, loaded.in_chans, size, size, generator=torch.Generator().manual_seed(0)
    )
    path = Path(target.export(deployed, staged(final, target, "partial"), example, precision,
                              calibration, metadata))  # fmt: skip
    if sidecar_path(path).is_file():  # an exporter may have written its own additions
        metadata = {**metadata, **read_sidecar(path)}
        sidecar_path(path).unlink()
    return path, metadata


def _limits(loaded, precision: str, rtol, min_agreement: float, min_cosine: float) -> dict:
    """The thresholds the export was checked against, stored with the reference set."""
    if precision == "int8":
        return {
            "min_agreement": min_agreement,
            "min_cosine": min_cosine,
            "classifier": _classifier(loaded),
        }
    return {"rtol": FLOAT_RTOL[precision] if rtol is None else rtol}


def _checked_options(target: Target, precision: str, keep_float: Iterable[str],
                     calibration) -> list[str]:  # fmt: skip
    """The --keep-float kinds, once the precision, kinds and calibration images fit together."""
    check_precision(target, precision)
    keep_float = list(keep_float)
    if keep_float and precision != "int8":
        raise ConfigError("--keep-float only applies to --precision int8")
    if precision == "int8" and not calibration:
        raise ConfigError("int8 needs calibration images: pass --calibrate DIR")
    return keep_float


def _module_to_export(loaded, target: Target, deployed: nn.Module | None) -> nn.Module:
    """`deployed`; by default the model re-parameterized where the target gains from it."""
    if deployed is not None:
        return deployed
    if target.reparameterize:
        from lightnets.deploy.reparam import reparameterize

        return reparameterize(loaded.model)
    return loaded.model


def attach_reference(loaded, artifact: Path, metadata: dict, inputs, limits: dict,
                     exported: Tensor | None = None) -> None:  # fmt: skip
    """Store the reference set beside `artifact` (lightnets.deploy.reference) and write the
    sidecar that names it; `metadata` must be otherwise final. `exported`: the artifact's own
    outputs on the first reference inputs, as this machine computes them."""
    from lightnets.deploy.reference import IMAGES, reference_path, write_reference

    x = torch.cat(list(inputs))[:IMAGES]
    with torch.no_grad():
        logits = loaded.model.eval()(x).float()
    metadata["reference"] = {
        "file": reference_path(artifact).name,
        "images": x.shape[0],
        "limits": limits,
    }
    write_reference(artifact, metadata, x.numpy(), logits.numpy(),
                    None if exported is None else exported.numpy())  # fmt: skip
    write_sidecar(artifact, metadata)


def _classifier(loaded) -> bool:
    """False for an embedding model (MobileFaceNet): the index of its largest output means
    nothing, so its int8 check is the cosine alone."""
    card = getattr(loaded.model, "card", None)
    return not card or not card.embedding_dim


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
                   min_agreement, min_cosine, labelled) -> tuple[Verification, Tensor]:  # fmt: skip
    """The export check, and the artifact's outputs on the reference inputs (the first IMAGES
    of the checked ones) for the reference set."""
    from lightnets.deploy.reference import IMAGES

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
        classifier=_classifier(loaded),
        labelled=labelled,
    )
    first = torch.cat(inputs)[:IMAGES]
    return verification, run_batches(run, [first], metadata.get("batch"))


# ------------------------------------------------------------------ runners that profile times

Runner = Callable[[Tensor], object]
PARITY_RTOL = FLOAT_RTOL["fp32"]


def eager_runner(model: nn.Module, example: Tensor, threads: int, workdir: Path | None) -> Runner:
    """Plain PyTorch, eval mode, under torch.inference_mode."""
    model.eval()

    def run(x: Tensor):
        with torch.inference_mode():
            return model(x)

    return run


def check_runtime(runtime: str, device: str | torch.device = "cpu") -> Target | None:
    """The Target `runtime` times (None for eager), checked to run here before any model is
    built: UnknownNameError, MissingDependencyError (with the pip command) or ConfigError."""
    if runtime == "eager":
        return None
    if runtime not in TIMED_RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(TIMED_RUNTIMES)}, got {runtime!r}")
    target = require(get_target(runtime))
    if torch.device(device).type != "cpu":
        raise ConfigError(f"runtime {runtime!r} is timed on the CPU here; use --device cpu")
    return target


def make_runner(
    runtime: str, model: nn.Module, example: Tensor, threads: int, workdir: Path | None
) -> Runner:
    """`model` as `runtime` runs it: eager, or exported in fp32 to `workdir` and loaded with
    `threads` threads. An export must match PyTorch on `example` before it is timed, so a timing
    is always of a graph that computes the model."""
    target = check_runtime(runtime, example.device)
    if target is None:
        return eager_runner(model, example, threads, workdir)
    model = model.eval()
    metadata = {"runtime": runtime, "precision": "fp32", "batch": None}
    path = target.export(model, Path(workdir) / f"model{target.suffix}", example.cpu(), "fp32",
                         None, metadata)  # fmt: skip
    run = target.load(path, threads)
    with torch.no_grad():
        error = relative_error(run_batches(run, [example], None), model(example))
    if error > PARITY_RTOL:
        raise ConfigError(
            f"{runtime} output differs from PyTorch: relative error {error:.2e} > {PARITY_RTOL:.0e}"
        )
    return lambda x: run(x.detach().cpu().numpy())
