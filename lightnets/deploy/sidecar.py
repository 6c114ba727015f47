"""The sidecar `<artifact>.json` every exported artifact carries, and the files an artifact is.

One schema for every runtime, written by `lightnets.deploy.export.artifact_metadata`: model_name,
runtime, precision, img_size, crop_pct, mean, std, in_chans, channel_order ("RGB", or "L" for one
grey channel), class_names, batch (None: dynamic batch axis; an int: the only batch it runs),
lightnets_version, reparameterized, files (the artifact and its weights file), verification (the
export check's figures, the CPU class and runtime version that ran it) and reference (the
reference set `lightnets verify` re-runs), plus what an exporter adds (quantization, keep_float).
Only the standard library here: `lightnets verify` reads it without torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lightnets.errors import ConfigError


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


def json_or_text(value: str):
    """A metadata value: JSON where it parses, else the text itself."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def artifact_files(artifact: str | os.PathLike) -> list[Path]:
    """The files a deployment ships: the artifact and its weights file beside it when the format
    has one (OpenVINO's model.xml -> model.bin, ncnn's model.ncnn.param -> model.ncnn.bin)."""
    artifact = Path(artifact)
    weights = artifact.with_suffix(".bin")
    return [artifact, weights] if weights.is_file() and weights != artifact else [artifact]
