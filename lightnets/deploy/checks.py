"""The export check: an artifact run on the inputs it was checked on, against the PyTorch model.

One rule for every runtime: float precisions by relative error within `FLOAT_RTOL`, int8 by top-1
agreement and logit cosine on the calibration images (`INT8_MIN_AGREEMENT`, `INT8_MIN_COSINE`).
`lightnets.deploy.reference` applies the same rule without torch when `lightnets verify` re-runs
an artifact elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from lightnets.deploy.loaders import run_in_batches
from lightnets.deploy.reference import judge_int8
from lightnets.deploy.reference import logit_cosine as reference_cosine
from lightnets.errors import ConfigError

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


def relative_error(actual, expected) -> float:
    """max |actual - expected| / max |expected|: scale-free, and robust to near-zero entries."""
    actual, expected = torch.as_tensor(actual).double(), torch.as_tensor(expected).double()
    return ((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-12)).item()


@dataclass(frozen=True)
class Verification:
    precision: str
    images: int
    relative_error: float | None = None  # float precisions
    agreement: float | None = None  # int8: top-1 agreement with fp32 on the calibration images
    cosine: float | None = None  # int8: mean cosine similarity of the logits
    confident: int | None = None  # int8: images whose fp32 margin is above int8's logit error
    confident_agreement: float | None = None  # int8: agreement on those
    note: str | None = None  # int8: why top-1 agreement was not the judge

    def summary(self) -> str:
        if self.relative_error is not None:
            limit = FLOAT_RTOL[self.precision]
            return f"relative error {self.relative_error:.1e} <= {limit:.0e} vs PyTorch fp32"
        met = self.agreement >= INT8_MIN_AGREEMENT
        met = f" (>= {100 * INT8_MIN_AGREEMENT:.0f}%)" if met else ""
        summary = (
            f"top-1 agreement {100 * self.agreement:.1f}%{met}, "
            f"logit cosine {self.cosine:.4f} (>= {INT8_MIN_COSINE}) vs fp32 on {self.images} "
            "calibration images"
        )
        return summary + (f"; {self.note}" if self.note else "")

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, record: dict) -> Verification:
        """A sidecar's "verification" read back; the keys that are not fields (the machine
        targets.verified_on adds) are left out."""
        return cls(**{k: v for k, v in record.items() if k in cls.__dataclass_fields__})


def run_batches(run: Callable[[np.ndarray], np.ndarray], batches: Iterable[Tensor],
                batch: int | None) -> Tensor:  # fmt: skip
    """`run` over `batches` (torch), cut into parts of `batch` (None: as they come); one tensor."""
    outs = [run_in_batches(run, x.detach().float().cpu().numpy(), batch) for x in batches]
    return torch.from_numpy(np.concatenate(outs))


def logit_cosine(actual: Tensor, expected: Tensor) -> Tensor:
    """Per-row cosine similarity (lightnets.deploy.reference.logit_cosine), as a tensor."""
    return torch.from_numpy(reference_cosine(actual.numpy(), expected.numpy())).float()


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
    labelled: Callable[[Callable, int | None], tuple[bool, str]] | None = None,
) -> Verification:
    """Run `run` (an artifact's load()) on `inputs` and compare with `reference` in fp32.

    Raises ConfigError (one line) below the thresholds; the artifact is left for inspection.
    An embedding model (`classifier` False) is held to the cosine only: the index of its largest
    output means nothing. `labelled(run, batch)`, where the caller has labelled images, judges
    an int8 artifact the agreement rule refuses but whose logits keep the cosine: (accepted,
    what it measured), e.g. the top-1 drop on those images (lightnets deploy --max-drop).
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
        return _verify_float(actual, expected, precision, rtol, name)
    check = judge_int8(actual.numpy(), expected.numpy(), min_agreement, min_cosine, classifier)
    on_labels = None
    if not check.passed and labelled is not None and check.cosine >= min_cosine:
        accepted, on_labels = labelled(run, batch)
        if accepted:
            return Verification(precision, n, agreement=check.agreement, cosine=check.cosine,
                                confident=check.confident, note=on_labels)  # fmt: skip
    if not check.passed:
        raise ConfigError(_int8_refusal(check, n, name, min_agreement, min_cosine, on_labels))
    return Verification(precision, n, agreement=check.agreement, cosine=check.cosine,
                        confident=check.confident, confident_agreement=check.confident_agreement,
                        note=check.note)  # fmt: skip


def _verify_float(actual: Tensor, expected: Tensor, precision: str, rtol: float | None,
                  name: str) -> Verification:  # fmt: skip
    """A float artifact's check: relative error within `rtol` (default FLOAT_RTOL)."""
    error = relative_error(actual, expected)
    limit = FLOAT_RTOL[precision] if rtol is None else rtol
    if error > limit:
        raise ConfigError(
            f"{name} ({precision}) differs from PyTorch: relative error {error:.2e} > {limit:.0e}"
        )
    return Verification(precision, expected.shape[0], relative_error=error)


def _int8_refusal(check, n: int, name: str, min_agreement: float, min_cosine: float,
                  on_labels: str | None) -> str:  # fmt: skip
    """Why an int8 artifact is refused: what it measured against what it needed, and what to try."""
    confident = (
        f", {100 * check.confident_agreement:.1f}% on the {check.confident} confident ones"
        if check.note and check.confident_agreement is not None
        else ""
    )
    return (
        f"{name} (int8) strays from fp32 on {n} calibration images: top-1 agreement "
        f"{100 * check.agreement:.1f}%{confident} (need {100 * min_agreement:.0f}%), logit "
        f"cosine {check.cosine:.4f} (need {min_cosine})"
        + (f"; {on_labels}" if on_labels else "")
        + "; keep more layers in float (--keep-float) or calibrate on more images"
    )


class ArtifactModule(nn.Module):
    """An artifact's load() function as a module (torch batch in, logits out), so that code
    written for PyTorch models (lightnets.evaluation) runs it unchanged."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], batch: int | None = None):
        super().__init__()
        self.run, self.batch = run, batch

    def forward(self, x: Tensor) -> Tensor:
        return run_batches(self.run, [x.detach().float().cpu()], self.batch)
