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
    remeasured_ms: float | None = None  # a second end-to-end timing, later: the noise floor

    @property
    def rel_error(self) -> float:
        return (self.predicted_ms - self.measured_ms) / self.measured_ms

    @property
    def repeat_error(self) -> float | None:
        """How far the second timing strays from the first, relative to the first."""
        if self.remeasured_ms is None:
            return None
        return (self.remeasured_ms - self.measured_ms) / self.measured_ms


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

    def repeat_errors(self) -> tuple[float, float] | None:
        """Median and max |repeat_error|: how well a timing predicts the next one."""
        errors = [abs(a.repeat_error) for a in self.archs if a.remeasured_ms is not None]
        return (statistics.median(errors), max(errors)) if errors else None


def check_predictor(
    target: str,
    img_size: int,
    n: int = 20,
    seed: int = 0,
    *,
    threads: int | None = None,
    predictor: LatencyPredictor | None = None,
    repeat: bool = False,
    **kwargs,
) -> PredictorCheck:
    """Draw `n` tables with `random.Random(seed)`, predict each and time it end to end.

    The predictor is fitted anew on its calibration networks (other networks than these: the
    check measures prediction, not the fit), which are timed in the same interleaved rounds as
    the checked ones, so that a change of machine load between the fit and the check does not
    pass for an error of the prediction. With `repeat`, all are timed a second time after the
    first, which shows how far a timing itself moves (the noise floor any prediction is judged
    against). `kwargs` go to LatencyPredictor.
    """
    predictor = predictor or LatencyPredictor(target, img_size, threads, **kwargs)
    rng = random.Random(seed)
    tables = [space.sample(rng) for _ in range(n)]
    calibration = predictor.calibration_tables()
    predictor.measure_parts(calibration + tables)  # the missing parts of all, interleaved
    measured = predictor.measure(calibration + tables)
    fit = predictor.calibrate(calibration, measured=measured[: len(calibration)])
    predicted = [predictor.predict(t) for t in tables]
    measured = measured[len(calibration) :]
    again = predictor.measure(tables) if repeat else [None] * n
    archs = [ArchCheck(*row) for row in zip(tables, predicted, measured, again)]
    return PredictorCheck(archs, fit)
