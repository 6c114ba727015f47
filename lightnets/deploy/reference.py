"""The reference set stored with every artifact, and its re-run on another machine.

At export, a few of the inputs the artifact was checked on and the PyTorch model's fp32 logits for
them go into `<artifact>.ref.npz`, with digests of the artifact's files and of the sidecar fields
that say what it is. `check_reference` runs the artifact on those inputs wherever it is and
compares with the stored logits, by the same rule as the export check: float precisions by
relative error, int8 by top-1 agreement and logit cosine. Only numpy here.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightnets.errors import ConfigError

IMAGES = 16  # inputs kept: enough to see a broken kernel, small enough to ship beside a model
# what the sidecar says the artifact is; an edited copy of these fields is caught by the digest
IDENTITY = ("model_name", "runtime", "precision", "img_size", "in_chans", "class_names", "files")


def reference_path(artifact: str | os.PathLike) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".ref.npz")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _identity(metadata: dict) -> str:
    return json.dumps({k: metadata.get(k) for k in IDENTITY}, sort_keys=True)


def write_reference(artifact: Path, metadata: dict, inputs: np.ndarray, logits: np.ndarray) -> Path:
    """Write the reference set of `artifact` (whose files are final); returns its path."""
    from lightnets.files import atomic_write

    digests = {name: _sha256(artifact.with_name(name)) for name in metadata["files"]}
    buffer = io.BytesIO()
    np.savez(
        buffer,
        inputs=np.ascontiguousarray(inputs[:IMAGES], np.float32),
        logits=np.ascontiguousarray(logits[:IMAGES], np.float32),
        identity=np.array(_identity(metadata)),
        digests=np.array(json.dumps(digests, sort_keys=True)),
    )
    path = reference_path(artifact)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(buffer.getvalue()))
    return path


def read_reference(artifact: Path, metadata: dict) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, logits) of `artifact`'s reference set; ConfigError when it is missing, unreadable,
    another artifact's, or when the artifact's files or the sidecar changed since export."""
    path = reference_path(artifact)
    if not path.is_file():
        raise ConfigError(f"{artifact}: no reference set {path.name} beside it (re-export it)")
    try:
        with np.load(path, allow_pickle=False) as stored:
            inputs, logits = stored["inputs"], stored["logits"]
            identity, digests = str(stored["identity"]), json.loads(str(stored["digests"]))
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(f"{path}: not a lightnets reference set ({err})") from None
    if identity != _identity(metadata):
        raise ConfigError(
            f"{path}: it belongs to another artifact, or {artifact}'s sidecar was edited"
        )
    for name, digest in digests.items():
        file = artifact.with_name(name)
        if not file.is_file():
            raise ConfigError(f"{artifact}: {name} is missing")
        if _sha256(file) != digest:
            raise ConfigError(f"{file}: changed since it was exported and verified")
    return inputs, logits


@dataclass(frozen=True)
class Check:
    passed: bool
    relative_error: float | None = None
    agreement: float | None = None
    cosine: float | None = None


def compare(actual: np.ndarray, expected: np.ndarray, precision: str, limits: dict) -> Check:
    """The export check's rule on numpy arrays; `limits` holds rtol or min_agreement/min_cosine."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape or not np.isfinite(actual).all():
        return Check(False)
    if precision != "int8":
        error = float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-12))
        return Check(error <= limits["rtol"], relative_error=error)
    agreement = float((actual.argmax(1) == expected.argmax(1)).mean())
    norms = np.linalg.norm(actual, axis=1) * np.linalg.norm(expected, axis=1)
    both_zero = ~actual.any(1) & ~expected.any(1)  # a ReLU'd logit row: zero in both agrees
    cosine = np.where(both_zero, 1.0, (actual * expected).sum(1) / np.maximum(norms, 1e-12))
    cosine = float(cosine.mean())
    ok = agreement >= limits["min_agreement"] and cosine >= limits["min_cosine"]
    return Check(ok, agreement=agreement, cosine=cosine)
