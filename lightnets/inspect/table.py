"""Per-layer and per-kernel statistics of depthwise kernels, and writing them as CSV and JSON."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from lightnets.errors import ConfigError
from lightnets.inspect.classify import (
    CLASSES,
    chance_shares,
    classify_kernels,
    low_frequency_energy,
)
from lightnets.inspect.kernels import DepthwiseKernels, one_thread


def stage_label(record: DepthwiseKernels) -> str:
    root = record.name.split(".")[0]
    return root if root in ("stem", "head") else f"stage {record.stage}"


@one_thread
def analyse(records: Mapping[str, DepthwiseKernels]) -> tuple[list[dict], list[dict]]:
    """(layer rows, kernel rows) for the records of `collect_depthwise_kernels`.

    A layer row: name, stage, kernel size, stride, channels, fixed, the share of each class, the
    chance share of each class for that kernel size, the mean match score and the mean share of
    energy below f/4. A kernel row: layer, channel, class, score, best template of that class,
    low-frequency share, DC gain.
    """
    layers, kernels = [], []
    for depth, (name, rec) in enumerate(records.items()):
        result = classify_kernels(rec.weight)
        low = low_frequency_energy(rec.weight)
        chance = chance_shares(rec.kernel_size)
        shares = result.shares()
        row = {
            "depth": depth,
            "layer": name,
            "stage": rec.stage,
            "stage_label": stage_label(rec),
            "kernel_size": rec.kernel_size,
            "stride": rec.stride,
            "dilation": rec.dilation,
            "channels": rec.channels,
            "fixed": rec.fixed,
            "mixconv": rec.parent or "",
        }
        row.update({c: round(shares[c], 4) for c in CLASSES})
        row.update({f"chance_{c}": round(chance[c], 4) for c in CLASSES[:3]})
        row.update(
            {
                "mean_score": round(float(result.score.mean()), 4),
                "threshold": round(result.threshold, 4),
                "low_freq": round(float(low.nanmean()), 4),
            }
        )
        layers.append(row)
        for ch, cls in enumerate(result.classes):
            family = (
                cls
                if cls != "other"
                else max(result.family_scores, key=lambda f: result.family_scores[f][ch])
            )
            kernels.append(
                {
                    "layer": name,
                    "channel": ch,
                    "class": cls,
                    "score": round(float(result.score[ch]), 4),
                    "template": result.best_template[family][ch],
                    "low_freq": round(float(low[ch]), 4),
                    "dc_gain": round(float(result.dc_gain[ch]), 4),
                }
            )
    return layers, kernels


def write_rows(rows: Sequence[dict], path: str | Path) -> Path:
    """Write `rows` as CSV (.csv) or JSON (.json) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps(list(rows), indent=1) + "\n")
    elif path.suffix == ".csv":
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
            writer.writeheader()
            writer.writerows(rows)
    else:
        raise ConfigError(f"table path must end in .csv or .json, got {str(path)!r}")
    return path
