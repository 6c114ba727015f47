"""`compare(models, data, ...)`: every model x seed trained the same way, scheduled by Ray Tune,
gathered into one table.

Order of work, one step each: every input check (model names, input size, data, seeds, training
flags, placement, output directory, Ray and its address) runs before anything is written
(make_spec, Placement, check_comparison: a Comparison); then OUT/compare.json and the trial plan
(start: finished trials reused, interrupted ones resumed), the sweep (run_trials), the costs
(gather), and the results, replaced together (write_results: results.json, results.md,
results.csv, pareto.png, curves.png).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from lightnets import plotting
from lightnets.compare import data as data_mod
from lightnets.compare import results as results_mod
from lightnets.compare import spec as spec_mod
from lightnets.compare.checks import (
    Event,
    check_img_size,
    check_output,
    check_train_args,
    default_output,
    resolve_img_size,
    resolve_models,
)
from lightnets.compare.placement import Placement
from lightnets.compare.spec import CompareSpec
from lightnets.compare.trials import (
    FINISHED,
    RESUME,
    TrialPlan,
    read_trial,
    train_argv,
    trial_id,
    trial_status,
)
from lightnets.errors import ConfigError
from lightnets.files import text_writer, write_together

# ------------------------------------------------------------------------------ the comparison


def compare(
    models: Sequence[str],
    data: str = "digits",
    *,
    output: str | os.PathLike | None = None,
    epochs: int | None = None,
    seeds: int = 1,
    recipe: str | None = None,
    img_size: int | None = None,
    train_args: Sequence[str] = (),
    images_per_class: int | None = None,
    deterministic: bool = True,
    runtime: str = "eager",
    latency: bool = True,
    latency_threads: int = 1,
    latency_time: float = 0.25,
    address: str | None = None,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    workers: int = 0,
    max_failures: int = 2,
    study: str | None = None,
    archs: Mapping[str, str | os.PathLike] | None = None,
    on_event: Event | None = None,
    runner: Callable | None = None,
) -> dict:
    """Train every model x seed with the same data, budget and recipe; return the results table.

    Args:
        models: registered names, study variant names (lightnets.compare.variants) or names of
            `archs`, {name: architecture file} (as `lightnets train --arch`).
        data: an image folder (root/train/<class>/...), a CIFAR directory or "digits".
        output: results directory (default runs/compare-<hash of the settings>); trials live in
            OUT/trials/<model>-s<seed>/, and re-running the same comparison reuses them.
        epochs, seeds, recipe, img_size, train_args, images_per_class, deterministic, study:
            what every trial trains with (CompareSpec); seeds 0 .. seeds-1 per model.
        runtime, latency, latency_threads, latency_time: how latency is measured after the sweep.
        address, cpus_per_trial, gpus_per_trial, workers, max_failures: Placement on Ray.
        on_event: called as (kind, trial id, info) for "plan", "done", "retry", "failed", "costs".
        runner: replaces Ray (tests): runner(plans, **placement) -> {trial id: error}.

    Returns: {"spec", "out", "models": one row per model, "trials": one row per finished trial,
    "failed": {trial: error}, "notes", "files"} (also written to OUT/results.json).
    """
    archs = {name: os.path.abspath(path) for name, path in (archs or {}).items()}
    spec = make_spec(models, data, seeds=seeds, epochs=epochs, recipe=recipe, img_size=img_size,
                     train_args=train_args, images_per_class=images_per_class,
                     deterministic=deterministic, study=study, archs=archs)  # fmt: skip
    placement = Placement(address, cpus_per_trial, gpus_per_trial, workers, max_failures)
    costs = dict(
        runtime=runtime, latency=latency, threads=latency_threads, min_run_time=latency_time
    )
    comparison = check_comparison(spec, output, archs, placement, costs, ray=runner is None)
    emit = on_event or (lambda kind, trial, info: None)
    # every check passed: from here on, files are written
    trials, todo = start(comparison, emit)
    failed = run_trials(comparison, todo, runner, emit)
    return write_results(comparison.out, spec, *gather(comparison, trials, failed, emit))


@dataclass(frozen=True)
class Comparison:
    """A comparison whose inputs are all checked: what `compare` runs, step by step."""

    spec: CompareSpec
    out: Path  # absolute
    archs: Mapping[str, str]  # {network name: absolute path of its architecture file}
    placement: Placement
    costs: Mapping[str, object]  # how results.model_costs measures: runtime, latency, threads...
    status: Mapping[str, str]  # {trial id: NEW, RESUME or FINISHED} before the sweep


def check_comparison(
    spec: CompareSpec, output, archs: Mapping[str, str], placement: Placement, costs, ray: bool
) -> Comparison:
    """The checks after the spec's: the latency runtime, the results directory (writable; this
    comparison's, if any), the trials of `archs`' networks, and Ray (installed, its address
    answering) when `ray` and a trial is left to run."""
    if costs["latency"]:
        from lightnets.profiling import check_runtime

        check_runtime(costs["runtime"])
    out = Path(output) if output is not None else default_output(spec)
    out = out.expanduser().absolute()
    check_output(out)
    spec_mod.check_same(out, spec)
    trials_dir = out / "trials"
    check_trained_archs(spec, trials_dir, archs)
    status = {
        trial_id(m, s): trial_status(trials_dir / trial_id(m, s))
        for m in spec.models
        for s in spec.seeds
    }
    if ray and any(v != FINISHED for v in status.values()):
        placement.check_ray()
    return Comparison(spec, out, archs, placement, costs, status)


def start(comparison: Comparison, emit: Event) -> tuple[list[TrialPlan], list[TrialPlan]]:
    """OUT/compare.json and the trials (all, and those left to run), announced as "plan"."""
    out, status = comparison.out, comparison.status
    out.mkdir(parents=True, exist_ok=True)
    spec_mod.write_spec(out, comparison.spec)
    flags = comparison.placement.train_flags()
    trials = plan_trials(comparison.spec, out, flags, comparison.archs)
    todo = [t for t in trials if status[t.id] != FINISHED]
    reused = [t.id for t in trials if status[t.id] == FINISHED]
    resumed = [t.id for t in todo if status[t.id] == RESUME]
    emit("plan", None, {"total": len(trials), "run": len(todo), "out": str(out),
                        "reused": reused, "resumed": resumed})  # fmt: skip
    return trials, todo


def run_trials(comparison: Comparison, todo: list[TrialPlan], runner, emit: Event) -> dict:
    """`todo` on Ray Tune (or `runner`); {trial id: error} of those that failed."""
    if not todo:
        return {}
    placement = comparison.placement
    kwargs = dict(storage=str(comparison.out / ".tune"), on_event=emit, **placement.ray())
    if runner is not None:
        return runner(todo, **kwargs)
    from lightnets.compare import sweep

    with sweep.ray_session(placement.address):
        return sweep.run_on_ray(todo, **kwargs)


def gather(comparison: Comparison, trials: list[TrialPlan], failed: dict[str, str], emit: Event):
    """(rows, finished trials, failed trials, notes): the finished trials read back, every other
    one failed, the models' costs measured (announced as "costs"), one row per model."""
    finished = [
        {**read_trial(t.run_dir), "model": t.model}  # a network of `archs`: its name here
        for t in trials
        if trial_status(t.run_dir) == FINISHED
    ]
    unfinished = [
        t.id for t in trials if t.id not in failed and trial_status(t.run_dir) != FINISHED
    ]
    failed = {**failed, **dict.fromkeys(unfinished, "did not finish")}
    emit("costs", None, {"models": len({t["model"] for t in finished})})
    spec = comparison.spec
    costs = results_mod.model_costs(comparison.out, finished, spec.img_size, **comparison.costs)
    rows = results_mod.model_rows(spec.models, finished, costs)
    notes = results_mod.noise_lines(rows)
    if failed:
        notes.append(f"Failed trials (see OUT/logs): {', '.join(sorted(failed))}.")
    return rows, finished, failed, notes


def make_spec(
    models: Sequence[str],
    data: str,
    *,
    seeds: int,
    epochs: int | None,
    recipe: str | None,
    img_size: int | None,
    train_args: Sequence[str],
    images_per_class: int | None,
    deterministic: bool,
    study: str | None,
    archs: Mapping[str, str] | None = None,
) -> CompareSpec:
    """The comparison's settings, every one checked (ConfigError, UnknownNameError,
    FileNotFoundError, one line each) before anything runs or is written."""
    for name, value in (
        ("--seeds", seeds),
        ("--epochs", epochs),
        ("--images-per-class", images_per_class),
    ):
        if value is None and name != "--seeds":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    train_args = check_train_args(train_args)
    names = resolve_models(models, archs)
    if data != "digits":
        data = os.path.abspath(os.path.expanduser(data))
    classes = data_mod.data_classes(data)
    if images_per_class is not None and (classes is None or data == "digits"):
        raise ConfigError("--images-per-class needs an image folder (root/train/<class>/...)")
    size = resolve_img_size(names, data, img_size, archs)
    check_img_size(names, size, classes or 10, train_args, archs)
    return CompareSpec(
        models=names,
        seeds=tuple(range(seeds)),
        data=data,
        img_size=size,
        epochs=epochs,
        recipe=recipe,
        train_args=train_args,
        images_per_class=images_per_class,
        deterministic=deterministic,
        study=study,
    )


def plan_trials(
    spec: CompareSpec, out: Path, placement: tuple[str, ...], archs: Mapping[str, str] | None = None
) -> list[TrialPlan]:
    """One TrialPlan per model x seed: its run dir, log and `lightnets train` flags (on the
    images-per-class subset, made here, when the spec asks for one)."""
    archs = archs or {}
    data = spec.data
    if spec.images_per_class is not None:
        data = str(data_mod.subset_folder(spec.data, spec.images_per_class, out / "data"))
    plans = []
    for model in spec.models:
        for seed in spec.seeds:
            i = trial_id(model, seed)
            run_dir = str(out / "trials" / i)
            fresh, resume = train_argv(
                model,
                seed,
                run_dir,
                data=data,
                img_size=spec.img_size,
                epochs=spec.epochs,
                recipe=spec.recipe,
                deterministic=spec.deterministic,
                train_args=spec.train_args,
                placement=placement,
                arch=archs.get(model),
            )
            plans.append(
                TrialPlan(i, model, seed, run_dir, str(out / "logs" / f"{i}.log"), fresh, resume)
            )
    return plans


def check_trained_archs(spec: CompareSpec, trials_dir: Path, archs: Mapping[str, str]) -> None:
    """Refuse a trial of a network of `archs` whose run dir trained another architecture (its
    arch.toml, the copy `lightnets train --arch` keeps)."""
    from lightnets.models.arch import read_arch

    for name, path in archs.items():
        wanted = read_arch(path)
        for seed in spec.seeds:
            kept = trials_dir / trial_id(name, seed) / "arch.toml"
            if kept.is_file() and read_arch(kept) != wanted:
                raise ConfigError(
                    f"{trial_id(name, seed)} in {trials_dir} trained another architecture than "
                    f"{path}; name the network differently or choose another -o"
                )


def write_results(
    out: Path, spec: CompareSpec, rows, trials, failed, notes, extra=None, texts=None
) -> dict:
    """results.json / .md / .csv, the charts and `texts` ({file name: text}: study.md), replaced
    together (files.write_together: Ctrl-C or an error leaves the previous ones); returns what
    results.json holds."""
    title = spec.study or f"{len(spec.models)} models on {Path(spec.data).name}"
    figures, note = results_mod.charts(rows, trials, title)
    notes = [*notes, note] if note and note not in notes else list(notes)
    texts = {
        "results.md": results_mod.render_results(rows, "markdown", notes=notes) + "\n",
        "results.csv": results_mod.render_results(rows, "csv") + "\n",
        **(texts or {}),
    }
    names = ["results.json", "results.md", "results.csv", *figures, *texts]
    result = {
        "spec": spec.to_dict(),
        "out": str(out),
        "models": rows,
        "trials": trials,
        "failed": failed,
        "notes": notes,
        "files": {name: str(out / name) for name in dict.fromkeys(names)},
        **(extra or {}),
    }
    writes = {"results.json": text_writer(json.dumps(result, indent=1))}
    writes.update((name, text_writer(text)) for name, text in texts.items())
    writes.update((name, partial(plotting.save_png, figure)) for name, figure in figures.items())
    write_together({out / name: write for name, write in writes.items()})
    return result
