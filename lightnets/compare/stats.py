"""Mean and spread over seeds, and the rules that turn them into words: "within noise" instead of a
ranking, and a paper's claim supported, contradicted or inconclusive.

The spread of one model is the sample standard deviation of its per-seed values (n - 1 in the
denominator). The noise of a difference between two models is sqrt(s_a^2 + s_b^2), the standard
deviation of the difference between one run of each: a difference of means no larger than that is
"within noise". With a single seed there is no spread to compare against, so nothing is ranked.
Exact quantities (parameters, MACs) have no noise: a claim about them holds or does not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

SUPPORTS, CONTRADICTS, INCONCLUSIVE = "supports", "contradicts", "inconclusive"
VERDICTS = (SUPPORTS, CONTRADICTS, INCONCLUSIVE)
HIGHER, LOWER, WITHIN_NOISE, NO_SPREAD = "higher", "lower", "within noise", "no spread (1 seed)"


@dataclass(frozen=True)
class Summary:
    """Per-seed values of one quantity: mean, sample std (None below two values)."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return sum(self.values) / self.n if self.values else None

    @property
    def std(self) -> float | None:
        if self.n < 2:
            return None
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (self.n - 1))

    def text(self, spec: str = ".2f") -> str:
        if not self.values:
            return "-"
        std = "" if self.std is None else f" ± {self.std:{spec}}"
        return f"{self.mean:{spec}}{std}"


def summarize(values: Sequence[float]) -> Summary:
    return Summary(tuple(float(v) for v in values))


def noise(a: Summary, b: Summary) -> float | None:
    """sqrt(s_a^2 + s_b^2), or None when either side has fewer than two seeds."""
    if a.std is None or b.std is None:
        return None
    return math.hypot(a.std, b.std)


@dataclass(frozen=True)
class Difference:
    """mean(a) - mean(b), the noise it is judged against, and the outcome in words."""

    delta: float
    noise: float | None
    outcome: str  # HIGHER, LOWER, WITHIN_NOISE or NO_SPREAD

    def text(self, unit: str = "") -> str:
        noise = "" if self.noise is None else f", noise {self.noise:.2f}{unit}"
        return f"{self.delta:+.2f}{unit}{noise}: {self.outcome}"


def difference(a: Summary, b: Summary) -> Difference:
    """a vs b: HIGHER or LOWER only when |mean(a) - mean(b)| exceeds the noise."""
    if not a.values or not b.values:
        raise ValueError("difference of an empty summary")
    delta = a.mean - b.mean
    spread = noise(a, b)
    if spread is None:
        outcome = NO_SPREAD
    elif abs(delta) <= spread:
        outcome = WITHIN_NOISE
    else:
        outcome = HIGHER if delta > 0 else LOWER
    return Difference(delta, spread, outcome)


# ---------------------------------------------------------------------------------- verdicts


def higher_verdict(a: Summary, b: Summary) -> tuple[str, Difference]:
    """The claim "a is higher than b": supported beyond noise, contradicted beyond noise (b
    higher), inconclusive within noise or without a spread."""
    d = difference(a, b)
    verdict = {HIGHER: SUPPORTS, LOWER: CONTRADICTS}.get(d.outcome, INCONCLUSIVE)
    return verdict, d


def exact_verdict(holds: bool) -> str:
    """A claim about an exact quantity (parameters, MACs): it holds or it does not."""
    return SUPPORTS if holds else CONTRADICTS


def combine(verdicts: Sequence[str]) -> str:
    """A claim made of parts: contradicted if any part is, supported only if every part is."""
    if not verdicts:
        return INCONCLUSIVE
    if CONTRADICTS in verdicts:
        return CONTRADICTS
    return SUPPORTS if all(v == SUPPORTS for v in verdicts) else INCONCLUSIVE


def peak_verdict(series: Sequence[Summary]) -> tuple[str, int]:
    """The claim "the values rise, then fall" along `series` (e.g. accuracy over kernel sizes).

    Returns (verdict, index of the highest mean). Supported when the highest mean lies inside the
    series and beats both ends beyond noise; contradicted when it lies at an end and beats every
    inner point beyond noise (a monotone trend); otherwise inconclusive.
    """
    if len(series) < 3:
        raise ValueError("a rise and a fall need at least three points")
    best = max(range(len(series)), key=lambda i: series[i].mean)
    last = len(series) - 1
    if 0 < best < last:
        ends = [difference(series[best], series[i]).outcome for i in (0, last)]
        return (SUPPORTS if ends == [HIGHER, HIGHER] else INCONCLUSIVE), best
    inner = [difference(series[best], series[i]).outcome for i in range(1, last)]
    return (CONTRADICTS if all(o == HIGHER for o in inner) else INCONCLUSIVE), best
