"""The closing text of `lightnets inspect`: class shares per stage and the low-pass share of strided
layers, optionally beside a baseline (random init, or another checkpoint)."""

from __future__ import annotations

from collections.abc import Sequence

from lightnets.inspect.classify import CLASSES

WORDS = {
    "gaussian": "blur-like",
    "edge": "edge-like",
    "identity": "identity-like",
    "other": "other",
}
WHITE = 0.25  # low-frequency share of a white kernel, = expectation for iid random weights


def _weighted(rows: Sequence[dict], key: str) -> float:
    n = sum(r["channels"] for r in rows)
    return sum(r[key] * r["channels"] for r in rows) / n if n else float("nan")


def _groups(rows: Sequence[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["stage_label"], []).append(row)
    return groups


def class_shares(rows: Sequence[dict]) -> dict[str, float]:
    """Share of each class over all kernels of `rows` (each layer weighted by its channels)."""
    return {c: _weighted(rows, c) for c in CLASSES}


def low_freq_by_stride(rows: Sequence[dict]) -> dict[str, float]:
    """Mean share of energy below f/4 over the kernels of strided and of non-strided layers."""
    return {
        "strided": _weighted([r for r in rows if r["stride"] > 1], "low_freq"),
        "non_strided": _weighted([r for r in rows if r["stride"] == 1], "low_freq"),
    }


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.0f}%"


def summary_lines(
    rows: Sequence[dict],
    name: str = "model",
    baseline: Sequence[dict] | None = None,
    baseline_name: str = "random init",
) -> list[str]:
    """Short text: totals, one line per stage, the strided/non-strided low-frequency shares."""
    kernels = sum(r["channels"] for r in rows)
    fixed = sum(r["channels"] for r in rows if r["fixed"])
    sizes = sorted({r["kernel_size"] for r in rows})
    total = class_shares(rows)
    chance = {c: _weighted(rows, f"chance_{c}") for c in CLASSES[:3]}
    lines = [
        f"{name}: {len(rows)} depthwise layers, {kernels} kernels (k = "
        f"{', '.join(map(str, sizes))}{f'; {fixed} fixed' if fixed else ''}); "
        + ", ".join(f"{_pct(total[c])} {WORDS[c]}" for c in CLASSES)
        + " (chance: "
        + ", ".join(f"{_pct(chance[c])} {c}" for c in CLASSES[:3])
        + ")"
    ]
    for label, group in _groups(rows).items():
        shares = class_shares(group)
        ranked = sorted(CLASSES[:3], key=lambda c: -shares[c])
        lines.append(
            f"{label}: "
            + ", ".join(f"{_pct(shares[c])} {WORDS[c]}" for c in ranked)
            + f" ({sum(r['channels'] for r in group)} kernels in {len(group)} layers)"
        )
    low = low_freq_by_stride(rows)
    ref = low_freq_by_stride(baseline) if baseline is not None else None
    ref_text = (
        f"{baseline_name}: {_pct(ref['strided'])}"
        if ref is not None
        else f"white noise: {_pct(WHITE)}"
    )
    if low["strided"] == low["strided"]:
        lines.append(
            f"strided layers keep {_pct(low['strided'])} of energy below f/4 "
            f"({ref_text}); non-strided {_pct(low['non_strided'])}"
        )
    else:
        lines.append(
            f"no strided depthwise layer; non-strided layers keep "
            f"{_pct(low['non_strided'])} of energy below f/4 (white noise: 25%)"
        )
    return lines


def compare_lines(
    rows_a: Sequence[dict], rows_b: Sequence[dict], label_a: str, label_b: str
) -> list[str]:
    """Per stage and overall: each class share and the low-frequency shares, A -> B."""
    lines = [f"{label_a} -> {label_b}"]
    groups_a, groups_b = _groups(rows_a), _groups(rows_b)
    labels = list(groups_a) + [g for g in groups_b if g not in groups_a]
    for label in [*labels, "all"]:
        a = rows_a if label == "all" else groups_a.get(label, [])
        b = rows_b if label == "all" else groups_b.get(label, [])
        sa, sb = class_shares(a), class_shares(b)
        lines.append(
            f"{label}: " + ", ".join(f"{c} {_pct(sa[c])} -> {_pct(sb[c])}" for c in CLASSES)
        )
    la, lb = low_freq_by_stride(rows_a), low_freq_by_stride(rows_b)
    lines.append(
        f"energy below f/4: strided {_pct(la['strided'])} -> {_pct(lb['strided'])}, "
        f"non-strided {_pct(la['non_strided'])} -> {_pct(lb['non_strided'])}"
    )
    return lines
