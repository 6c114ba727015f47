"""Write what `lightnets inspect` shows: tables, pictures and the text summary, for one model or
several side by side (e.g. random init vs trained). Works on any nn.Module with depthwise convs."""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor, nn

from lightnets.errors import ConfigError
from lightnets.inspect.classify import classify_kernels
from lightnets.inspect.features import capture_features, default_feature_layers
from lightnets.inspect.kernels import collect_depthwise_kernels
from lightnets.inspect.similarity import similarity_matrices
from lightnets.inspect.summary import compare_lines, summary_lines
from lightnets.inspect.table import analyse, write_rows


@dataclass
class Report:
    """What a report computed: per-label layer rows, the summary lines and the files written."""

    rows: dict[str, list[dict]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "model"


def kernel_report(
    models: Mapping[str, nn.Module],
    out_dir: str | Path,
    baseline: nn.Module | None = None,
    max_kernels: int = 32,
    plots: bool = True,
) -> Report:
    """Kernel atlas, class shares, frequency view, tables and summary for each labelled model.

    One model writes layers.csv/.json, kernels.csv, atlas.png, class_shares.png, frequency.png and
    summary.txt into `out_dir`; several models prefix their tables and atlases with their label and
    share one class-share chart (side by side) and one frequency plot. `baseline` (e.g. the same
    architecture at random init) is quoted in the summary of a single model.
    """
    if not models:
        raise ConfigError("kernel_report needs at least one model")
    out = Path(out_dir)
    report = Report()
    records_of = {label: collect_depthwise_kernels(m) for label, m in models.items()}
    single = len(models) == 1
    for label, records in records_of.items():
        rows, kernel_rows = analyse(records)
        report.rows[label] = rows
        prefix = "" if single else f"{_slug(label)}_"
        report.files += [
            write_rows(rows, out / f"{prefix}layers.csv"),
            write_rows(rows, out / f"{prefix}layers.json"),
            write_rows(kernel_rows, out / f"{prefix}kernels.csv"),
        ]
        base_rows = (
            analyse(collect_depthwise_kernels(baseline))[0]
            if baseline is not None and single
            else None
        )
        report.lines += summary_lines(rows, label, base_rows)
        if plots:
            from lightnets.inspect.plots import plot_kernel_atlas

            classes = {name: classify_kernels(rec.weight) for name, rec in records.items()}
            report.files.append(
                plot_kernel_atlas(
                    records, out / f"{prefix}atlas.png", classes, max_kernels, title=label
                )
            )
    labels = list(report.rows)
    for a, b in zip(labels, labels[1:]):
        report.lines += compare_lines(report.rows[a], report.rows[b], a, b)
    if plots:
        from lightnets.inspect.plots import plot_class_shares, plot_frequency

        report.files += [
            plot_class_shares(report.rows, out / "class_shares.png"),
            plot_frequency(report.rows, out / "frequency.png"),
        ]
    summary = out / "summary.txt"
    summary.write_text("\n".join(report.lines) + "\n")
    report.files.append(summary)
    return report


def _stage_groups(model: nn.Module, names: list[str]) -> dict[str, list[str]]:
    """Feature layers grouped by stage ("stem", "stage i"), in order."""
    levels = {}
    if not (hasattr(model, "stages") and hasattr(model, "stem")):
        for rec in collect_depthwise_kernels(model).values():
            levels.setdefault(rec.parent or rec.name, f"stage {rec.stage}")
    groups: dict[str, list[str]] = {}
    for name in names:
        parts = name.split(".")
        if name in levels:
            key = levels[name]
        elif parts[0] == "stages" and len(parts) > 1:
            key = f"stage {parts[1]}"
        else:
            key = parts[0]
        groups.setdefault(key, []).append(name)
    return groups


def neighbour_lines(label: str, names: list[str], mats: Mapping[str, Tensor]) -> list[str]:
    """Median similarity of each layer with the next one, and the most similar neighbours."""
    if len(names) < 2:
        return [f"{label}: one feature layer, no neighbours to compare"]
    pairs = range(len(names) - 1)
    cka = [float(mats["cka"][i, i + 1]) for i in pairs]
    cos = [float(mats["cosine"][i, i + 1]) for i in pairs]
    cos_valid = [c for c in cos if c == c]
    top = max(pairs, key=lambda i: cka[i] if cka[i] == cka[i] else -1)
    cos_text = f"{statistics.median(cos_valid):.2f}" if cos_valid else "n/a"
    return [
        f"{label}: neighbouring layers have median linear CKA {statistics.median(cka):.2f}, "
        f"matched-channel cosine {cos_text} ({len(cos_valid)} of {len(cka)} pairs with equal "
        f"channels); most alike: {names[top]} ~ {names[top + 1]} (CKA {cka[top]:.2f})",
        f"{label}: {sum(c >= 0.9 for c in cka)} of {len(cka)} neighbouring pairs have CKA >= 0.9",
    ]


def feature_report(
    models: Mapping[str, nn.Module],
    x: Tensor,
    out_dir: str | Path,
    max_channels: int = 32,
    plots: bool = True,
) -> Report:
    """Per-stage feature-map grids and the layer-to-layer similarity of each labelled model for
    input `x`: features_<stage>.png, similarity.png, similarity.json and features_summary.txt
    (its own name, so a kernels report's summary.txt in the same folder survives)."""
    if not models:
        raise ConfigError("feature_report needs at least one model")
    out = Path(out_dir)
    report = Report()
    dump = {}
    single = len(models) == 1
    for label, model in models.items():
        names = default_feature_layers(model)
        feats = capture_features(model, x, names)
        names = list(feats)
        mats = similarity_matrices(feats)
        dump[label] = {
            "layers": names,
            **{
                k: [[None if v != v else round(v, 4) for v in row] for row in m.tolist()]
                for k, m in mats.items()
            },
        }
        report.lines += neighbour_lines(label, names, mats)
        if plots:
            from lightnets.inspect.plots import plot_feature_grid, plot_similarity

            prefix = "" if single else f"{_slug(label)}_"
            for stage, members in _stage_groups(model, names).items():
                last = members[-1]
                report.files.append(
                    plot_feature_grid(
                        feats[last],
                        out / f"{prefix}features_{_slug(stage)}.png",
                        f"{label}: {last} {tuple(feats[last].shape[1:])}",
                        max_channels,
                    )
                )
            report.files.append(
                plot_similarity(names, mats, out / f"{prefix}similarity.png", title=label)
            )
    path = out / "similarity.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dump) + "\n")
    summary = out / "features_summary.txt"
    summary.write_text("\n".join(report.lines) + "\n")
    report.files += [path, summary]
    return report
