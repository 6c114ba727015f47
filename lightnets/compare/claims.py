"""What every study shares: scales (width, input size, budget, seeds), the evidence a finished
comparison gives, and claims with their verdicts (supports / contradicts / inconclusive)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lightnets import rundir
from lightnets._deprecation import renamed_attribute
from lightnets.compare import stats
from lightnets.compare.stats import INCONCLUSIVE, Summary

MIXCONV, VGNET = "MixConv arXiv:1907.09595", "VGNet arXiv:2207.10318"


@dataclass(frozen=True)
class Scale:
    """How big a study runs; explicit compare options override these."""

    epochs: int
    seeds: int
    img_size: int
    images_per_class: int | None  # None: every image
    width: float  # width multiplier of the MobileNet study networks
    kernel_sizes: tuple[int, ...]  # of the MixConv studies
    every_model: bool  # False: only the networks each claim needs once (tiny)
    recipe_mixconv: str | None = None  # the MixConv studies' recipe (VGNet's is not reproduced)

    kernels = renamed_attribute("kernel_sizes")


#                 epochs seeds img  per-class width  kernel_sizes          every  recipe
SCALES = {
    "tiny":  Scale(1,    1,    32,  16,       0.35,  (3, 5, 7),            False),
    "small": Scale(15,   3,    32,  None,     0.5,   (3, 5, 7, 9),         True),
    "paper": Scale(350,  3,    224, None,     1.0,   (3, 5, 7, 9, 11, 13), True,  "mixnet"),
}  # fmt: skip


# ------------------------------------------------------------------------------ helpers


class Evidence:
    """Per-seed accuracy and exact costs of a finished comparison, by model."""

    def __init__(self, result: dict):
        self.trials = result["trials"]
        self.rows = {r["model"]: r for r in result["models"]}
        self.chance = _chance_level(self.trials)

    def acc(self, model: str) -> Summary:
        return stats.summarize([t["acc"] for t in self.trials if t["model"] == model])

    def cost(self, model: str, key: str) -> float | None:
        return self.rows.get(model, {}).get(key)

    def has(self, *models: str) -> bool:
        return all(self.acc(m).n for m in models)

    def near_chance(self, model: str) -> bool:
        """True when `model` has not learned enough to speak for its architecture: its mean top-1
        is above chance (100 / classes) by no more than twice its seed spread, or 2 points."""
        if self.chance is None:
            return False
        acc = self.acc(model)
        return acc.mean - self.chance <= max(2 * (acc.std or 0.0), CHANCE_MARGIN)


# points above chance a network must reach before its accuracy counts as evidence
CHANCE_MARGIN = 2.0


def _chance_level(trials: Sequence[dict]) -> float | None:
    """100 / classes, from a trial's classes.json; None when no trial's can be read."""
    for trial in trials:
        try:
            classes = json.loads((Path(trial["run_dir"]) / rundir.CLASSES).read_text())
        except (KeyError, OSError, ValueError):
            continue
        if isinstance(classes, list) and classes:
            return 100.0 / len(classes)
    return None


def claim(text: str, source: str, verdict: str, evidence: str) -> dict:
    return {"claim": text, "source": source, "verdict": verdict, "evidence": evidence}


def _higher(ev: Evidence, a: str, b: str) -> tuple[str, str]:
    """(verdict, evidence) for "a more accurate than b"."""
    if not ev.has(a, b):
        return INCONCLUSIVE, f"{a} or {b} has no finished trial"
    if ev.near_chance(a) or ev.near_chance(b):
        return INCONCLUSIVE, (
            f"{a} {ev.acc(a).text()} vs {b} {ev.acc(b).text()} %: near chance "
            f"({ev.chance:.1f}%), nothing learned to compare"
        )
    verdict, d = stats.higher_verdict(ev.acc(a), ev.acc(b))
    return verdict, f"{a} {ev.acc(a).text()} vs {b} {ev.acc(b).text()} %: {d.text(' pts')}"


def _fewer(ev: Evidence, a: str, b: str, key: str = "macs_m") -> tuple[str, str]:
    """(verdict, evidence) for "a costs less than b" in an exact count."""
    x, y = ev.cost(a, key), ev.cost(b, key)
    if x is None or y is None:
        return INCONCLUSIVE, f"no {key} for {a} or {b}"
    unit = {"macs_m": "M MACs", "params_m": "M params"}[key]
    return stats.exact_verdict(x < y), f"{a} {x:.2f} vs {b} {y:.2f} {unit}"


def _combined(text: str, source: str, parts: Sequence[tuple[str, str]], note: str = "") -> dict:
    verdict = stats.combine([v for v, _ in parts])
    evidence = "; ".join(f"[{v}] {e}" for v, e in parts)
    if note and verdict == INCONCLUSIVE:
        evidence += f" ({note})"
    return claim(text, source, verdict, evidence)


NOISE_NOTE = "within noise or one seed: consistent with the claim, not evidence for it"
