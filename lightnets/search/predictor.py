"""The latency predictor of a search (lightnets.search.latency.LatencyPredictor for its target,
image size, threads and classes): opened from the search's own table (OUT/latency) or the shared
cache, checked against the budget, kept with the search once it starts (so that a re-run
predicts exactly as before) and refitted there on networks near the budget, and its newly timed
parts shared back with the cache at the end.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from lightnets.errors import ConfigError
from lightnets.search import space
from lightnets.search.latency import LatencyPredictor, default_cache_dir
from lightnets.search.spec import SearchSpec

LATENCY_DIR = "latency"
NEAR_BUDGET = 6  # networks near the budget the search's fit is made on (besides the smallest)


def predictor_kwargs(spec: SearchSpec, classes: int) -> dict:
    """One thread: the calling thread's CPU time (clock "cpu"), which leaves out the time other
    processes hold the core, so that parts timed while trials train are not inflated by them."""
    return {"num_classes": classes, "clock": "cpu" if spec.threads == 1 else "wall"}


def open_predictor(spec: SearchSpec, out: Path, classes: int, emit) -> LatencyPredictor:
    """The search's own table (OUT/latency) when it has one, else the shared cache's; calibrated
    (networks timed end to end) when it has no fit yet."""
    kwargs = predictor_kwargs(spec, classes)
    args = (spec.target, spec.img_size, spec.threads)
    predictor = LatencyPredictor(*args, cache_dir=out / LATENCY_DIR, **kwargs)
    if not predictor.path.is_file():
        predictor = LatencyPredictor(*args, **kwargs)
    emit("predictor", None, {"target": spec.target, "cache": str(predictor.path),
                             "fitted": predictor.fit is not None})  # fmt: skip
    predictor.calibrate()
    return predictor


def check_budget(spec: SearchSpec, predictor) -> float:
    """The smallest network's predicted latency; ConfigError when the budget is below it."""
    smallest = space.smallest(space.fit_space(spec.img_size))
    ms = predictor.predict(smallest)
    if ms > spec.latency_ms:
        threads = f"{spec.threads} thread{'s' if spec.threads > 1 else ''}"
        budget = f"--latency-ms {spec.latency_ms:g}"
        if spec.latency_of is not None:
            budget = f"--latency-of {spec.latency_of} ({spec.latency_ms:.3g} ms measured)"
        raise ConfigError(
            f"{budget}: the smallest network of the search space is "
            f"predicted at {ms:.3g} ms on {spec.target} ({spec.img_size} px, {threads}); "
            "there is nothing to search below that"
        )
    return ms


def fit_near_budget(predictor, spec: SearchSpec, emit) -> None:
    """Refit the predictor's scale and intercept on networks between the smallest and the budget,
    where the search's candidates lie: the smallest network and NEAR_BUDGET random ones made
    cheaper until predicted within the budget, timed end to end. The general fit (smallest,
    MixNet-S, random networks of the whole space) is a line through mostly larger networks; at
    32 px eager it predicted 7.8-8.0 ms for candidates then measured at 10.7-13.8 ms. Done once:
    the fit is kept in OUT/latency with the budget it is for. A no-op for a predictor that
    cannot be refitted (tests)."""
    fit = getattr(predictor, "fit", None)
    if not hasattr(predictor, "calibrate") or (fit or {}).get("budget_ms") == spec.latency_ms:
        return
    fitted = space.fit_space(spec.img_size)
    rng = random.Random(f"near-budget/{spec.seed}")
    tables = [space.smallest(fitted)]
    for _ in range(10 * NEAR_BUDGET):  # a tight budget makes many of them the same network
        if len(tables) > NEAR_BUDGET:
            break
        table = space.sample(rng, fitted)
        while table is not None and predictor.predict(table) > spec.latency_ms:
            table = space.cheapen(table, rng, fitted)
        if table is not None and table not in tables:
            tables.append(table)
    emit("refit", None, {"networks": len(tables)})
    predictor.calibrate(tables, force=True)
    predictor.fits[predictor.statistic]["budget_ms"] = spec.latency_ms
    predictor.save()


def keep_table(predictor, out: Path) -> object:
    """The predictor with its table in OUT/latency (copied there from the shared cache)."""
    path = getattr(predictor, "path", None)
    if path is None or path.parent == out / LATENCY_DIR:
        return predictor
    predictor.save()
    (out / LATENCY_DIR).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, out / LATENCY_DIR / path.name)
    kept = LatencyPredictor(
        predictor.target.name,
        predictor.img_size,
        predictor.threads,
        cache_dir=out / LATENCY_DIR,
        num_classes=predictor.num_classes,
        clock=predictor.clock,
    )
    return kept


def share_table(predictor) -> None:
    """Add the parts the search timed to the shared cache (the next search need not time them
    again); the shared cache's own figures and fit are kept."""
    path = getattr(predictor, "path", None)
    if path is None or path.parent == default_cache_dir():
        return
    shared = LatencyPredictor(
        predictor.target.name,
        predictor.img_size,
        predictor.threads,
        num_classes=predictor.num_classes,
        clock=predictor.clock,
    )
    missing = {k: v for k, v in predictor.parts_ms.items() if k not in shared.parts_ms}
    if missing:
        shared.parts_ms.update(missing)
        shared.fits = shared.fits or predictor.fits
        shared.save()
