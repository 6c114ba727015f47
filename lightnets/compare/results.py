"""From finished trials to the comparison: per-model cost (parameters, MACs, latency), accuracy as
mean ± std over seeds with the per-seed values, every model against the best ("within noise"
when the difference is no larger than the seeds' spread), the table in every format, and the
charts (accuracy vs latency with error bars; overlaid training curves; matplotlib, through
lightnets.plotting, inside the functions that draw).

Costs are measured once per model in the process that runs the comparison, after the sweep
(latency on a quiet machine, not beside running trials), on the architecture each trial trained
(its config.json and classes.json), and cached in OUT/costs.json.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

from lightnets.compare import stats
from lightnets.errors import MissingDependencyError
from lightnets.files import write_text
from lightnets.plotting import require_matplotlib
from lightnets.tables import Column, render

COSTS_FILE = "costs.json"

# fmt: off
#         key            header       spec    note
COLUMNS = (
    Column("model",      "model"),
    Column("params_m",   "params M",  ".3f",  "params M: learned parameters, millions."),
    Column("macs_m",     "MACs M",    ".1f",
           "MACs M: multiply-accumulates per image at the compared input size (convolutions "
           "and matrix products, the papers' convention)."),
    Column("latency_ms", "ms",        ".2f",
           "ms: median latency of one image (batch 1) on the machine that ran the comparison."),
    Column("acc_mean",   "acc %",     ".2f",
           "acc %: top-1 on the validation split after the last epoch (the EMA's when the run "
           "kept one), mean over seeds."),
    Column("acc_std",    "±",         ".2f",  "±: sample standard deviation over seeds."),
    Column("seeds",      "n",         "d"),
    Column("acc_seeds",  "per seed"),
    Column("vs_best",    "vs best",   "",
           "vs best: difference to the most accurate model; 'within noise' when it is no larger "
           "than sqrt(s1^2 + s2^2) of the two models' spreads, which is not a ranking."),
)
# fmt: on


# ------------------------------------------------------------------------------ costs


def measure_cost(
    trial: dict,
    img_size: int,
    runtime: str = "eager",
    threads: int = 1,
    min_run_time: float = 0.25,
    latency: bool = True,
) -> dict:
    """Parameters, MACs and latency of the network a trial trained (built from its run dir's
    config.json and classes.json at random init: the weights do not change the cost)."""
    import torch

    from lightnets.compare.variants import trial_model
    from lightnets.profiling import count_macs, count_params, make_runner, measure_latency

    model = trial_model(trial["run_dir"])
    x = torch.randn(1, model.in_chans, img_size, img_size)
    params = count_params(model).learned
    macs = count_macs(model, x).macs
    cost = {"params_m": params / 1e6, "macs_m": macs / 1e6, "params": params, "macs": macs}
    if latency:
        with tempfile.TemporaryDirectory(prefix="lightnets-compare-") as workdir:
            run = make_runner(runtime, model, x, threads, Path(workdir))
            timed = measure_latency(run, x, threads=threads, min_run_time=min_run_time)
        cost.update(latency_ms=timed.median_s * 1e3, latency_iqr_ms=timed.iqr_s * 1e3)
        cost.update(runtime=runtime, threads=threads)
    return cost


def model_costs(
    out: Path,
    trials: Sequence[dict],
    img_size: int,
    *,
    runtime: str = "eager",
    threads: int = 1,
    min_run_time: float = 0.25,
    latency: bool = True,
) -> dict[str, dict]:
    """{model: cost} for the models of `trials`, reusing OUT/costs.json entries measured under the
    same conditions."""
    path = out / COSTS_FILE
    try:
        cache = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        cache = {}
    costs = {}
    for trial in trials:
        model = trial["model"]
        if model in costs:
            continue
        key = f"{model}@{img_size}:{runtime if latency else 'none'}:{threads}"
        if key not in cache:
            cache[key] = measure_cost(
                trial, img_size, runtime, threads, min_run_time=min_run_time, latency=latency
            )
            write_text(path, json.dumps(cache, indent=1))
        costs[model] = cache[key]
    return costs


# ------------------------------------------------------------------------------ the table


def model_rows(models: Sequence[str], trials: Sequence[dict], costs: dict[str, dict]) -> list[dict]:
    """One row per model: cost, accuracy mean ± std, per-seed values, and the comparison with
    the most accurate model. Models without a finished trial get empty accuracy cells."""
    rows = []
    for model in models:
        mine = sorted((t for t in trials if t["model"] == model), key=lambda t: t["seed"])
        accs = stats.summarize([t["acc"] for t in mine if t["acc"] is not None])
        row = {"model": model, **costs.get(model, {})}
        row.update(
            acc_mean=accs.mean,
            acc_std=accs.std,
            seeds=accs.n,
            acc_seeds=" / ".join(f"{a:.2f}" for a in accs.values) or None,
        )
        for t in mine:
            row[f"acc_seed{t['seed']}"] = t["acc"]
        row["_summary"] = accs
        rows.append(row)
    ranked = [r for r in rows if r["seeds"]]
    if ranked:
        best = max(ranked, key=lambda r: r["acc_mean"])
        for row in ranked:
            if row is best:
                row["vs_best"] = "best"
                continue
            d = stats.difference(row["_summary"], best["_summary"])
            row["vs_best"] = f"{d.delta:+.2f} {d.outcome}"
            row["vs_best_delta"], row["vs_best_noise"] = d.delta, d.noise
            row["vs_best_outcome"] = d.outcome
    for row in rows:
        row.pop("_summary")
    return rows


def noise_lines(rows: Sequence[dict]) -> list[str]:
    """Plain sentences: which models are within noise of the best, which are below it."""
    ranked = [r for r in rows if r.get("vs_best")]
    if len(ranked) < 2:
        return []
    best = next(r for r in ranked if r["vs_best"] == "best")
    tied = [r["model"] for r in ranked if r.get("vs_best_outcome") == stats.WITHIN_NOISE]
    unknown = [r["model"] for r in ranked if r.get("vs_best_outcome") == stats.NO_SPREAD]
    lines = []
    if unknown:
        lines.append(
            f"Not ranked: one seed gives no spread to judge differences by ({', '.join(unknown)} "
            f"vs {best['model']}); run --seeds 2 or more."
        )
    if tied:
        lines.append(
            f"Within noise of the most accurate ({best['model']}): {', '.join(tied)} - no "
            "ranking among them."
        )
    return lines


def render_results(rows: Sequence[dict], fmt: str, *, notes: Sequence[str] = (), extra=None):
    return render(rows, COLUMNS, fmt, notes=notes, json_key="models", json_extra=extra)


# ------------------------------------------------------------------------------ charts


def charts(rows: Sequence[dict], trials: Sequence[dict], title: str = ""):
    """({file name: matplotlib Figure}, note): pareto.png when a model has both accuracy and
    latency, curves.png when a trial has a curve; no figure and a note saying why when matplotlib
    is missing (the tables are written anyway). Figures without pyplot: no display, and the
    user's pyplot state is left alone."""
    points = {
        "pareto.png": [r for r in rows if r.get("acc_mean") is not None and r.get("latency_ms")],
        "curves.png": [t for t in trials if t.get("curve_acc")],
    }
    draw = {"pareto.png": pareto_figure, "curves.png": curves_figure}
    wanted = {name: chosen for name, chosen in points.items() if chosen}
    if not wanted:
        return {}, None
    try:
        require_matplotlib(f"drawing {' and '.join(wanted)}")
    except MissingDependencyError as err:
        return {}, f"No charts: {err}."
    return {name: draw[name](chosen, title) for name, chosen in wanted.items()}, None


def _front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points nothing beats on both latency (lower) and accuracy (higher), by latency."""
    front, best = [], -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def pareto_figure(rows: Sequence[dict], title: str = ""):
    """Accuracy (mean, error bar ± std) against latency (median, error bar ± IQR / 2) of `rows`
    (each with both), the front through the means dashed."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for r in rows:
        ax.errorbar(
            r["latency_ms"],
            r["acc_mean"],
            xerr=(r.get("latency_iqr_ms") or 0) / 2,
            yerr=r.get("acc_std") or 0,
            fmt="o",
            capsize=3,
        )
        ax.annotate(
            r["model"],
            (r["latency_ms"], r["acc_mean"]),
            xytext=(4, 4),
            textcoords="offset points",
            fontsize=8,
        )
    front = _front([(r["latency_ms"], r["acc_mean"]) for r in rows])
    ax.plot(*zip(*front), "--", color="grey", linewidth=1, label="front (means)")
    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel(f"latency, ms per image ({rows[0].get('runtime', 'eager')}, batch 1)")
    ax.set_ylabel("val top-1 %, mean ± std over seeds")
    ax.set_title(title or "accuracy vs latency")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def curves_figure(trials: Sequence[dict], title: str = ""):
    """Training loss and validation accuracy per epoch of `trials` (each with a curve), one colour
    per model, one line per seed."""
    from matplotlib import rcParams
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 4))
    loss_ax, acc_ax = fig.subplots(1, 2)
    models = list(dict.fromkeys(t["model"] for t in trials))
    colours = rcParams["axes.prop_cycle"].by_key()["color"]
    for t in trials:
        colour = colours[models.index(t["model"]) % len(colours)]
        label = (
            t["model"]
            if t["seed"] == min(u["seed"] for u in trials if u["model"] == t["model"])
            else None
        )
        epochs = range(1, len(t["curve_acc"]) + 1)
        loss_ax.plot(epochs, t["curve_loss"], color=colour, alpha=0.8, marker=".", label=label)
        acc_ax.plot(epochs, t["curve_acc"], color=colour, alpha=0.8, marker=".", label=label)
    loss_ax.set(xlabel="epoch", ylabel="train loss", title="training loss")
    acc_ax.set(xlabel="epoch", ylabel="val top-1 %", title="validation accuracy")
    acc_ax.legend(fontsize=7)
    for ax in (loss_ax, acc_ax):
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
