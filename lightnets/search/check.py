"""How well the latency predictor does: random networks of the space, predicted and measured
end to end on the same target (`check_predictor`)."""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass

from lightnets.search import space
from lightnets.search.latency import LatencyPredictor


@dataclass(frozen=True)
class ArchCheck:
    """One network: predicted and measured latency (ms) and the relative error of the prediction."""

    table: tuple
    predicted_ms: float
    measured_ms: float

    @property
    def rel_error(self) -> float:
        return (self.predicted_ms - self.measured_ms) / self.measured_ms


@dataclass(frozen=True)
class PredictorCheck:
    archs: list[ArchCheck]
    fit: dict

    @property
    def median_abs_error(self) -> float:
        return statistics.median(abs(a.rel_error) for a in self.archs)

    @property
    def max_abs_error(self) -> float:
        return max(abs(a.rel_error) for a in self.archs)


def check_predictor(
    target: str,
    img_size: int,
    n: int = 20,
    seed: int = 0,
    *,
    threads: int | None = None,
    predictor: LatencyPredictor | None = None,
    **kwargs,
) -> PredictorCheck:
    """Draw `n` tables with `random.Random(seed)`, predict each and time it end to end.

    The predictor is calibrated (or its cached fit used) before the check, on networks other than
    these: the check measures prediction, not the fit. `kwargs` go to LatencyPredictor.
    """
    predictor = predictor or LatencyPredictor(target, img_size, threads, **kwargs)
    fit = predictor.calibrate()
    rng = random.Random(seed)
    tables = [space.sample(rng) for _ in range(n)]
    predictor.measure_parts(tables)  # all parts in one interleaved timing
    predicted = [predictor.predict(t) for t in tables]
    measured = predictor.measure(tables)
    archs = [ArchCheck(t, p, m) for t, p, m in zip(tables, predicted, measured)]
    return PredictorCheck(archs, fit)
