"""Classify depthwise kernels (gaussian / edge / identity / other) and measure their spectra.

- `classify_kernels(w)`: each (k, k) kernel -> gaussian / edge / identity / other, by normalised
  cross-correlation (zero-mean cosine) against templates, with the match score.
- `low_frequency_energy(w)`: share of each kernel's energy below f/4 (zero-padded 2D FFT).

Two choices the papers leave open, made here and explained where they are coded:
1. Zero-mean cosine cannot tell an identity from an 8-neighbour Laplacian: on 3x3 kernels
   `delta - mean(delta)` is exactly `-laplacian8 / 9`. What separates them is the gain at DC (an
   identity or a blur passes constant regions, an edge detector blocks them), so each family is only
   eligible for kernels on its side of a DC-gain gate (`DC_GATE`).
2. "other" = best eligible score below the threshold that iid Gaussian noise kernels (He init) stay
   under 95% of the time (`null_threshold`; 0.77 for 3x3), and never below 0.5 (the template must
   explain at least a quarter of the kernel's variance; this floor decides from 7x7 up). Under that
   null the labels are assigned by chance with probabilities `chance_shares(k)` (at most 5% in total
   for the three families), which is what "no class above chance" is measured against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import torch
from torch import Tensor

from lightnets.errors import ConfigError
from lightnets.inspect.kernels import one_thread
from lightnets.layers.fixed import fixed_kernel, gaussian_kernel

CLASSES = ("gaussian", "edge", "identity", "other")
FAMILIES = CLASSES[:3]
SIGMAS = (0.7, 1.0, 1.5, 2.0, 3.0)  # blur templates; sigma -> inf tends to a box filter
DC_GATE = 0.5  # |H(0)| / max |H|: >= gate passes DC (blur, identity), below blocks it (edges)
NULL_LEVEL = 0.95  # "other" below the 95th percentile of the best score of noise kernels
MIN_SCORE = 0.5  # ... and never below cos = 0.5: the template explains >= 1/4 of the variance
NULL_SAMPLES = 10000
LOW_CUTOFF = 0.25  # f/4 in cycles per input pixel: the Nyquist limit after a stride-2 layer


# ---------------------------------------------------------------------------------- templates


def _gaussian_derivative(size: int, sigma: float, angle: float) -> Tensor:
    """First derivative of a Gaussian along `angle` (radians): a Sobel at the kernel's scale."""
    r = torch.arange(size, dtype=torch.float64) - size // 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    g = torch.exp(-(x**2 + y**2) / (2 * sigma**2))
    return (-(x * math.cos(angle) + y * math.sin(angle)) * g).float()


def _laplacian_of_gaussian(size: int, sigma: float) -> Tensor:
    r = torch.arange(size, dtype=torch.float64) - size // 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    rr = (x**2 + y**2) / (2 * sigma**2)
    return ((rr - 1) * torch.exp(-rr)).float()


# 3x3 Sobels along the two diagonals complete the four orientations of fixed.STENCILS' x and y
_DIAGONAL_SOBELS = {
    "sobel_d45": [[0, 1, 2], [-1, 0, 1], [-2, -1, 0]],
    "sobel_d135": [[-2, -1, 0], [-1, 0, 1], [0, 1, 2]],
}


@cache
def templates(size: int) -> dict[str, tuple[str, Tensor]]:
    """Template name -> (family, (size, size) kernel) for kernels of side `size`.

    gaussian: Gaussians at SIGMAS. edge: Sobel in 4 orientations and 4-/8-neighbour Laplacians,
    as 3x3 stencils centred in the kernel; from 5x5 up also their versions at the kernel's scale
    (Gaussian derivatives and a Laplacian of Gaussian, sigma = (size - 1) / 4). identity: a centre
    peak.
    """
    if size < 3 or size % 2 == 0:
        raise ConfigError(f"kernel size must be odd and >= 3, got {size}")
    out: dict[str, tuple[str, Tensor]] = {}
    for sigma in SIGMAS:
        out[f"gaussian_s{sigma:g}"] = ("gaussian", gaussian_kernel(size, sigma))
    for kind in ("sobel_x", "sobel_y", "laplacian4", "laplacian8"):
        out[kind] = ("edge", fixed_kernel(kind, size))
    c = size // 2
    for kind, stencil in _DIAGONAL_SOBELS.items():
        k = torch.zeros(size, size)
        k[c - 1 : c + 2, c - 1 : c + 2] = torch.tensor(stencil, dtype=torch.float32)
        out[kind] = ("edge", k)
    if size >= 5:
        sigma = (size - 1) / 4
        for deg in (0, 45, 90, 135):
            out[f"dog_{deg}_s{sigma:g}"] = (
                "edge",
                _gaussian_derivative(size, sigma, math.radians(deg)),
            )
        out[f"log_s{sigma:g}"] = ("edge", _laplacian_of_gaussian(size, sigma))
    out["identity"] = ("identity", fixed_kernel("identity", size))
    return out


# ---------------------------------------------------------------------------------- measures


def _as_stack(kernels: Tensor) -> Tensor:
    w = torch.as_tensor(kernels)
    if w.ndim == 2:
        w = w.unsqueeze(0)
    if w.ndim == 4 and w.shape[1] == 1:  # a conv weight (C, 1, k, k)
        w = w[:, 0]
    if w.ndim != 3 or w.shape[-1] != w.shape[-2]:
        raise ConfigError(
            f"kernels must be (k, k), (N, k, k) or (N, 1, k, k), got shape {tuple(w.shape)}"
        )
    return w.detach().to("cpu", torch.float64)


def _spectrum(w: Tensor, pad: int) -> tuple[Tensor, int]:
    """|H|^2 of each kernel zero-padded to pad x pad (rounded up to a multiple of 4)."""
    pad += -pad % 4  # so that f/4 falls on a bin
    # single precision: shares and gains are reported to 3 digits, and it halves the time
    spectrum = torch.fft.fft2(w.float(), s=(pad, pad))
    return spectrum.real.square() + spectrum.imag.square(), pad


@one_thread
def low_frequency_energy(
    kernels: Tensor, cutoff: float = LOW_CUTOFF, pad: int | None = None
) -> Tensor:
    """Share of each kernel's energy with both frequencies below `cutoff` cycles/pixel -> (N,).

    The default f/4 (f = 1 sample per pixel) is the band a stride-2 layer keeps without aliasing.
    The zero-padded FFT samples the continuous spectrum; bins exactly at the cutoff count half, so
    a white kernel (identity, or the expectation over iid noise) scores exactly (2 cutoff)^2 = 0.25.
    An all-zero kernel scores NaN.
    """
    if not 0.0 < cutoff <= 0.5:
        raise ConfigError(f"cutoff must be in (0, 0.5] cycles/pixel, got {cutoff!r}")
    w = _as_stack(kernels)
    power, pad = _spectrum(w, pad or max(32, 4 * w.shape[-1]))
    f = torch.fft.fftfreq(pad, dtype=torch.float64).abs()
    inside = ((f < cutoff - 1e-12).double() + 0.5 * ((f - cutoff).abs() < 1e-12).double()).float()
    weight = inside[:, None] * inside[None, :]
    total = power.sum(dim=(-2, -1))
    low = (power * weight).sum(dim=(-2, -1))
    return (low / total).float()


@one_thread
def dc_gain(kernels: Tensor) -> Tensor:
    """|H(0)| / max |H|: 1 for blurs and identities, 0 for edge detectors (zero-sum kernels).

    max |H| is taken on a 2k x 2k (at least 16 x 16) grid of frequencies, close enough for a gate.
    """
    w = _as_stack(kernels)
    power, _ = _spectrum(w, max(16, 2 * w.shape[-1]))
    peak = power.flatten(1).amax(1).sqrt()
    return (power[:, 0, 0].sqrt() / peak.clamp_min(1e-30)).float()


# ---------------------------------------------------------------------------------- classifier


@dataclass(frozen=True)
class KernelClasses:
    """Classification of N kernels of one size.

    classes: one of CLASSES per kernel. score: the winning family's score (for "other": the best
    eligible score, which is below `threshold`). family_scores: zero-mean cosine with the best
    template of each family (edge: absolute value, a sign flip is still an edge). best_template:
    per family, the template name that gave that score. dc_gain: |H(0)| / max |H| per kernel.
    """

    classes: tuple[str, ...]
    score: Tensor
    family_scores: dict[str, Tensor]
    best_template: dict[str, tuple[str, ...]]
    dc_gain: Tensor
    threshold: float

    def shares(self) -> dict[str, float]:
        n = max(len(self.classes), 1)
        return {c: sum(x == c for x in self.classes) / n for c in CLASSES}


def _zero_mean_unit(w: Tensor) -> tuple[Tensor, Tensor]:
    flat = w.flatten(1)
    centred = flat - flat.mean(1, keepdim=True)
    norm = centred.norm(dim=1, keepdim=True)
    return centred / norm.clamp_min(1e-30), norm[:, 0]


def _family_scores(w: Tensor) -> tuple[dict[str, Tensor], dict[str, list[str]]]:
    table = templates(w.shape[-1])
    names = list(table)
    bank, _ = _zero_mean_unit(torch.stack([t for _, t in table.values()]).double())
    units, norms = _zero_mean_unit(w)
    ncc = units @ bank.T  # (N, T) zero-mean cosine
    flat = w.flatten(1)
    # a constant kernel has no zero-mean part: it is a box filter, the sigma -> inf blur
    constant = norms <= 1e-9 * flat.norm(dim=1).clamp_min(1e-30)
    scores, best = {}, {}
    for family in FAMILIES:
        cols = [i for i, n in enumerate(names) if table[n][0] == family]
        part = ncc[:, cols].abs() if family == "edge" else ncc[:, cols]
        value, idx = part.max(1)
        if family == "gaussian":
            value = torch.where(constant & (flat.sum(1) > 0), torch.ones_like(value), value)
        scores[family] = value
        best[family] = [names[cols[i]] for i in idx.tolist()]
    return scores, best


def _decide(
    scores: dict[str, Tensor], gain: Tensor, positive: Tensor, threshold: float
) -> tuple[list[str], Tensor]:
    passes_dc = (gain >= DC_GATE) & positive
    blocks_dc = gain < DC_GATE
    eligible = {
        "gaussian": passes_dc,
        "identity": passes_dc,
        "edge": blocks_dc,
    }
    stacked = torch.stack(
        [torch.where(eligible[f], scores[f], torch.full_like(scores[f], -2.0)) for f in FAMILIES], 1
    )
    best, idx = stacked.max(1)
    classes = [
        FAMILIES[i] if b >= threshold else "other" for b, i in zip(best.tolist(), idx.tolist())
    ]
    return classes, best


@cache
@one_thread
def _null(size: int) -> tuple[float, dict[str, float]]:
    """Threshold and class shares for iid N(0, 1) kernels (He/Kaiming init), fixed seed."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(NULL_SAMPLES, size, size, generator=gen, dtype=torch.float64)
    scores, _ = _family_scores(w)
    gain = dc_gain(w).double()
    _, best = _decide(scores, gain, w.flatten(1).sum(1) > 0, threshold=math.inf)
    # in 9x9 noise the 95th percentile is ~0.3, a match nobody would see; hence the floor
    threshold = max(float(torch.quantile(best, NULL_LEVEL)), MIN_SCORE)
    classes, _ = _decide(scores, gain, w.flatten(1).sum(1) > 0, threshold)
    shares = {c: sum(x == c for x in classes) / NULL_SAMPLES for c in CLASSES}
    return threshold, shares


def null_threshold(size: int) -> float:
    """Score that iid Gaussian kernels of side `size` stay below with probability NULL_LEVEL
    (at least MIN_SCORE)."""
    return _null(size)[0]


def chance_shares(size: int) -> dict[str, float]:
    """Class shares of iid Gaussian kernels of side `size`: a random-init layer's chance level."""
    return dict(_null(size)[1])


@one_thread
def classify_kernels(kernels: Tensor, threshold: float | None = None) -> KernelClasses:
    """Classify (N, k, k) kernels (or one (k, k)) as gaussian / edge / identity / other.

    Each kernel is compared with every template of its size by zero-mean cosine (normalised
    cross-correlation, invariant to scale and to an added constant); a family's score is its best
    template's (edges: absolute value). Blur and identity are eligible only for kernels that pass DC
    (positive sum, |H(0)| >= DC_GATE * max |H|), edges only for kernels that block it. The best
    eligible family wins if its score reaches `threshold` (default `null_threshold(k)`), else
    "other". An all-zero kernel is "other" with score 0.
    """
    w = _as_stack(kernels)
    size = w.shape[-1]
    if threshold is None:
        threshold = null_threshold(size)
    scores, best_names = _family_scores(w)
    gain = dc_gain(w).double()
    flat = w.flatten(1)
    classes, best = _decide(scores, gain, flat.sum(1) > 0, threshold)
    zero = flat.abs().amax(1) == 0
    classes = ["other" if z else c for c, z in zip(classes, zero.tolist())]
    best = torch.where(zero, torch.zeros_like(best), best.clamp_min(0.0))
    return KernelClasses(
        classes=tuple(classes),
        score=best.float(),
        family_scores={f: s.float() for f, s in scores.items()},
        best_template={f: tuple(n) for f, n in best_names.items()},
        dc_gain=gain.float(),
        threshold=float(threshold),
    )
