"""The reference set stored with every artifact, and its re-run on another machine.

At export, a few of the inputs the artifact was checked on, the PyTorch model's fp32 logits for
them and the artifact's own outputs on the exporting machine go into `<artifact>.ref.npz`, with
digests of the artifact's files and of the sidecar fields that say what it is. `check_reference`
compares the artifact's outputs here with the fp32 logits by the export check's rule (float
precisions by relative error, int8 by top-1 agreement and logit cosine) and with its outputs on
the exporting machine. Only numpy here.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

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


class Reference(NamedTuple):
    inputs: np.ndarray
    logits: np.ndarray  # the PyTorch model's, fp32
    exported: np.ndarray | None  # the artifact's own, on the machine that exported it


def write_reference(artifact: Path, metadata: dict, inputs: np.ndarray, logits: np.ndarray,
                    exported: np.ndarray | None = None) -> Path:  # fmt: skip
    """Write the reference set of `artifact` (whose files are final); returns its path."""
    from lightnets.files import atomic_write

    digests = {name: _sha256(artifact.with_name(name)) for name in metadata["files"]}
    own = {} if exported is None else {"exported": np.ascontiguousarray(exported[:IMAGES], "f")}
    buffer = io.BytesIO()
    np.savez(
        buffer,
        inputs=np.ascontiguousarray(inputs[:IMAGES], np.float32),
        logits=np.ascontiguousarray(logits[:IMAGES], np.float32),
        **own,
        identity=np.array(_identity(metadata)),
        digests=np.array(json.dumps(digests, sort_keys=True)),
    )
    path = reference_path(artifact)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(buffer.getvalue()))
    return path


def read_reference(artifact: Path, metadata: dict) -> Reference:
    """`artifact`'s reference set; ConfigError when it is missing, unreadable, another
    artifact's, or when the artifact's files or the sidecar changed since export."""
    path = reference_path(artifact)
    if not path.is_file():
        raise ConfigError(f"{artifact}: no reference set {path.name} beside it (re-export it)")
    try:
        with np.load(path, allow_pickle=False) as stored:
            inputs, logits = stored["inputs"], stored["logits"]
            exported = stored["exported"] if "exported" in stored.files else None
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
    return Reference(inputs, logits, exported)


# int8 is judged by what it changes for a user. Top-1 agreement with fp32 says that only where
# fp32's top-1 margin is larger than int8's typical logit error: on an undertrained model whose
# logits are nearly tied, int8 noise flips ties without changing what the model knows (a 2-epoch
# MixNet-S measured 66-75% agreement on every runtime, and no option moved it). So agreement
# counts on the confident images (margin above TIE_FACTOR x the median logit error) where those
# are too few to trust the plain share. Below MIN_CONFIDENT of them the model is too undertrained
# for top-1 to judge int8: the cosine decides and the note says to judge it on labelled images.
TIE_FACTOR = 2.0
MIN_CONFIDENT = 8


@dataclass(frozen=True)
class Int8Check:
    passed: bool
    agreement: float  # top-1 agreement with fp32 on every image
    cosine: float  # mean cosine similarity of the logit rows
    confident: int  # images whose fp32 top-1 margin is above int8's typical error
    confident_agreement: float | None  # agreement on those
    note: str | None = None  # why top-1 agreement was not the judge


def logit_cosine(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Per-row cosine similarity, 1 where both rows are all zero: a network whose logits pass a
    ReLU (SqueezeNet's classifier) outputs zeros for some inputs, and int8 matching that exactly
    is agreement, not the 0 the plain formula gives."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    norms = np.linalg.norm(actual, axis=1) * np.linalg.norm(expected, axis=1)
    both_zero = ~actual.any(1) & ~expected.any(1)
    return np.where(both_zero, 1.0, (actual * expected).sum(1) / np.maximum(norms, 1e-12))


def judge_int8(actual, expected, min_agreement: float, min_cosine: float,
               classifier: bool = True) -> Int8Check:  # fmt: skip
    """int8 logits `actual` against fp32 `expected` (rows are images): cosine >= `min_cosine`, and
    for a classifier top-1 agreement >= `min_agreement` on every image, or on the confident ones
    when most are near ties (see TIE_FACTOR)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    agrees = actual.argmax(1) == expected.argmax(1)
    agreement, cosine = float(agrees.mean()), float(logit_cosine(actual, expected).mean())
    top2 = np.sort(expected, axis=1)[:, -2:] if expected.shape[1] > 1 else None
    margin = top2[:, 1] - top2[:, 0] if top2 is not None else np.full(len(expected), np.inf)
    noise = float(np.median(np.abs(actual - expected).max(1)))
    sure = margin > TIE_FACTOR * noise
    confident = int(sure.sum())
    confident_agreement = float(agrees[sure].mean()) if confident else None
    top1_ok, note = agreement >= min_agreement, None
    if classifier and not top1_ok and confident < len(expected) / 2:
        if confident >= MIN_CONFIDENT:
            top1_ok = confident_agreement >= min_agreement
            note = (
                f"{len(expected) - confident} of {len(expected)} images are near ties in fp32 "
                f"(top-1 margin within {TIE_FACTOR:g}x int8's median logit error {noise:.3g}): "
                f"agreement judged on the {confident} confident ones"
            )
        else:
            top1_ok = True
            note = (
                f"too undertrained for top-1 agreement to judge int8: {confident} of "
                f"{len(expected)} images have an fp32 top-1 margin above int8's logit error; "
                "judged by the logit cosine, check the accuracy on labelled images (lightnets "
                "deploy --data)"
            )
    passed = (top1_ok or not classifier) and cosine >= min_cosine
    return Int8Check(passed, agreement, cosine, confident, confident_agreement, note)


# An int8 file reproduces its export-time outputs when its top-1 matches them on min_agreement of
# the reference inputs and its logits keep this cosine with them: then the export check's verdict
# (on every calibration image, here 16 of them) holds on this machine. The same machine gives
# 1.0000; ARM's XNNPACK and MLAS kernels against x86's gave 1.0000 for every int8 file measured.
SAME_AS_EXPORT_COSINE = 0.999


@dataclass(frozen=True)
class Check:
    passed: bool
    relative_error: float | None = None
    agreement: float | None = None
    cosine: float | None = None
    note: str | None = None
    same_as_export: float | None = None  # top-1 (int8) share equal to the exporting machine's
    cosine_vs_export: float | None = None
    export_agreement: float | None = None  # the exporting machine's agreement on these inputs


def compare(actual: np.ndarray, expected: np.ndarray, precision: str, limits: dict) -> Check:
    """The export check's rule on numpy arrays; `limits` holds rtol or min_agreement/min_cosine."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape or not np.isfinite(actual).all():
        return Check(False)
    if precision != "int8":
        error = float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-12))
        return Check(error <= limits["rtol"], relative_error=error)
    int8 = judge_int8(actual, expected, limits["min_agreement"], limits["min_cosine"],
                      limits.get("classifier", True))  # fmt: skip
    return Check(int8.passed, agreement=int8.agreement, cosine=int8.cosine, note=int8.note)


def check_reference(
    actual: np.ndarray, reference: Reference, precision: str, limits: dict
) -> Check:
    """The artifact's outputs here on its reference inputs, against the fp32 logits (the export
    check's rule) and against its own outputs on the exporting machine.

    On 16 images one flipped near-tie moves int8's agreement by 6 points, so an int8 file that
    passed the export check on every calibration image can miss 90% here on the same machine.
    It passes when it reproduces its export-time outputs (SAME_AS_EXPORT_COSINE): what was
    verified at export then holds on this CPU. Not also the cosine with fp32 on these 16: a
    SqueezeNet at chance level passed the export check's cosine on its 200 calibration images
    and kept 0.875 on its 16 reference inputs, on x86 and on ARM alike, bit for bit.
    """
    check = compare(actual, reference.logits, precision, limits)
    exported, unusable = reference.exported, check.cosine is None and check.relative_error is None
    if exported is None or unusable:  # an older reference set, or a wrong shape / non-finite
        return check
    actual, exported = np.asarray(actual, np.float64), np.asarray(exported, np.float64)
    same = float((actual.argmax(1) == exported.argmax(1)).mean())
    cosine = float(logit_cosine(actual, exported).mean())
    figures = {"same_as_export": same, "cosine_vs_export": cosine}
    if precision == "int8":
        export = compare(exported, reference.logits, precision, limits)
        figures["export_agreement"] = export.agreement
        classifier = limits.get("classifier", True)
        reproduces = cosine >= SAME_AS_EXPORT_COSINE and (same >= limits["min_agreement"]
                                                          or not classifier)  # fmt: skip
        if not check.passed and reproduces:
            note = (
                "reproduces the exporting machine's outputs; its agreement with fp32 was judged "
                "at export, on every calibration image"
            )
            return Check(True, agreement=check.agreement, cosine=check.cosine, note=note,
                         **figures)  # fmt: skip
    return Check(**{**check.__dict__, **figures})
