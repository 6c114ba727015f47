"""`search(data, target=..., latency_ms=..., trials=...)`: a latency-aware architecture search
over MixNet-style tables on the user's data and target (MixConv, arXiv:1907.09595, Sec. 4, with
regularized evolution in place of MnasNet's reinforcement learning).

Order of work: every input check (numbers, training flags, data, image size, target, output
directory and its spec, Ray and its address) runs before anything is timed or written; then the
latency predictor (lightnets.search.predictor: timed on this machine, or read from its cache) and
the budget check against the smallest network of the space; then OUT/search.json, the trials on
Ray Tune (proposed by the evolution through a Tune Searcher, stopped early by ASHA), and what the
search hands back (lightnets.search.handback).

Files in OUT: search.json, latency/ (the predictor's table, kept with the search so that a re-run
predicts exactly as before), candidates/<id>.toml, candidates.json, trials/<id>/ (run dirs),
logs/<id>.log, then measured.json, front.json, front.md, front.png, best.toml and compare/.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from lightnets.compare import data as data_mod
from lightnets.compare.checks import OWNED, check_output, check_train_args, resolve_img_size
from lightnets.compare.comparison import check_placement
from lightnets.errors import ConfigError
from lightnets.search import space
from lightnets.search.evolution import RegularizedEvolution
from lightnets.search.predictor import (
    check_budget,
    fit_near_budget,
    keep_table,
    open_predictor,
    share_table,
)
from lightnets.search.runner import LatencyTarget
from lightnets.search.spec import OBJECTIVES, SearchSpec, check_same, read_spec, write_spec
from lightnets.search.trials import SearchTrials

# `lightnets train` flags the search sets itself: flag -> what to use instead
SEARCH_OWNED = {
    **{k: v for k, v in OWNED.items() if k not in ("--model", "--arch", "--recipe")},
    "--model": "(the search trains its own candidates)",
    "--arch": "(the search writes each candidate's file)",
    "--data": "DATA",
    "--seed": "--seed",
    "--small-input": "--img-size (the stride-1 stem up to 64 px)",
    "--no-small-input": "--img-size (the stride-1 stem up to 64 px)",
}

Event = Callable[[str, "str | None", dict], None]


def search(
    data: str,
    *,
    target: str,
    latency_ms: float | None = None,
    trials: int,
    output: str | os.PathLike,
    img_size: int | None = None,
    threads: int = 1,
    epochs: int = 10,
    images_per_class: int | None = None,
    seeds: int = 1,
    seed: int = 0,
    population: int = 10,
    sample_size: int = 3,
    objective: str = "accuracy",
    mnas_w: float = -0.07,
    early_stop: bool = True,
    grace_epochs: int | None = None,
    reduction_factor: int = 2,
    max_concurrent: int | None = None,
    latency_of: str | None = None,
    train_args: Sequence[str] = (),
    deterministic: bool = True,
    closing_compare: bool = True,
    address: str | None = None,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    workers: int = 0,
    max_failures: int = 2,
    on_event: Event | None = None,
    predictor=None,
    runner: Callable | None = None,
    compare_runner: Callable | None = None,
) -> dict:
    """Search MixNet-style networks within `latency_ms` (predicted on `target`) on `data`.

    Args:
        data: an image folder (root/train/<class>/...), a CIFAR directory or "digits".
        target: "eager" or "<runtime>:<precision>" of a deployment target.
        latency_ms: the budget, ms per image at batch 1 on the target with `threads` threads.
        latency_of: instead of `latency_ms`, a zoo model whose latency on the target, measured
            at the start (and kept in search.json), is the budget.
        trials: candidates trained (one `lightnets train` run each, `epochs` epochs, seed `seed`).
        output: results directory; re-running the same search there resumes it.
        population, sample_size: regularized evolution's P and S (lightnets.search.evolution).
        objective, mnas_w: "accuracy", or "mnas": acc x (latency / budget)^mnas_w.
        early_stop, grace_epochs, reduction_factor: ASHA (Tune's AsyncHyperBandScheduler), its
            first rung (default epochs // 3) and eta.
        max_concurrent: trials at once (default: the saved spec's, else this machine's CPUs /
            cpus_per_trial); also the evolution's lag, so part of the spec.
        seeds, closing_compare: the closing `compare` of the winner and the zoo within budget.
        address, cpus_per_trial, gpus_per_trial, workers, max_failures: Ray, as in compare.
        on_event: called as (kind, trial id, info); see lightnets.commands.search.
        predictor: replaces the LatencyPredictor (tests): an object with predict(table) -> ms.
        runner, compare_runner: replace Ray (tests): runner(proposer, **sweep kwargs) ->
            {trial: error}; compare_runner is compare's `runner`.

    Returns: what OUT/front.json holds, plus "compare" when the closing comparison ran.
    """
    from lightnets.search import handback

    emit = on_event or (lambda kind, trial, info: None)
    out = Path(output).expanduser().absolute()
    check_placement(cpus_per_trial, gpus_per_trial, workers, max_failures)
    spec, classes = make_spec(
        data, out, img_size=img_size, target=target, latency_ms=latency_ms, threads=threads,
        epochs=epochs, trials=trials, seed=seed, population=population, sample_size=sample_size,
        objective=objective, mnas_w=mnas_w, early_stop=early_stop, grace_epochs=grace_epochs,
        reduction_factor=reduction_factor, max_concurrent=max_concurrent,
        images_per_class=images_per_class, train_args=train_args, deterministic=deterministic,
        seeds=seeds, cpus_per_trial=cpus_per_trial, latency_of=latency_of,
    )  # fmt: skip
    if runner is None and all_over(spec, out):
        runner = replay  # every trial is over: no Ray for them (the closing compare checks its own)
    if runner is None:
        from lightnets.compare import sweep

        sweep.require_ray()
        sweep.check_address(address)
    spec, predictor = checked_predictor(spec, out, classes, predictor, emit)

    # every check passed: from here on, files are written
    predictor = begin(spec, out, predictor, emit)
    placement = trial_placement(cpus_per_trial, gpus_per_trial, workers)
    proposer = start_trials(spec, out, predictor, placement, emit)
    ray_kwargs = dict(address=address, cpus_per_trial=cpus_per_trial,
                      gpus_per_trial=gpus_per_trial, max_failures=max_failures)  # fmt: skip
    failed = run_trials(proposer, spec, out, runner, emit, **ray_kwargs)
    share_table(predictor)
    if proposer.error is not None:
        raise proposer.error
    rows = handback.candidate_rows(spec, out, proposer.evolution.candidates)
    result = handback.hand_back(spec, out, rows, failed, classes, emit)
    if closing_compare and result["best"] is not None:
        result["compare"] = handback.closing_compare(
            spec, out, result["best"], classes, emit, compare_runner, workers=workers, **ray_kwargs
        )
    return result


def checked_predictor(
    spec: SearchSpec, out: Path, classes: int, predictor, emit: Event
) -> tuple[SearchSpec, object]:
    """(spec with its budget, predictor): the budget of --latency-of measured, the predictor
    opened (timed when nothing is cached), the budget checked against the smallest network."""
    if spec.latency_ms is None:
        spec = measure_budget(spec, classes, emit)
    if predictor is None:
        predictor = open_predictor(spec, out, classes, emit)
    check_budget(spec, predictor)
    return spec, predictor


def begin(spec: SearchSpec, out: Path, predictor, emit: Event) -> object:
    """OUT/search.json, and the predictor the search goes by: its table kept in OUT/latency and
    refitted near the budget; the budget checked again with that fit."""
    out.mkdir(parents=True, exist_ok=True)
    write_spec(out, spec)
    predictor = keep_table(predictor, out)
    fit_near_budget(predictor, spec, emit)
    smallest_ms = check_budget(spec, predictor)
    emit("budget", None, {"smallest_ms": smallest_ms, "budget_ms": spec.latency_ms})
    return predictor


def _positive(name: str, value, optional: bool = False, minimum: int = 1) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(f"{name} must be {what}, got {value!r}")


def check_numbers(*, trials, epochs, threads, population, sample_size, seeds, seed,
                  reduction_factor, images_per_class, grace_epochs, max_concurrent, latency_ms,
                  objective, mnas_w) -> None:  # fmt: skip
    """Every number of a search, one ConfigError naming the flag."""
    for name, value in (("--trials", trials), ("--epochs", epochs), ("--threads", threads),
                        ("--population", population), ("--sample-size", sample_size),
                        ("--seeds", seeds)):  # fmt: skip
        _positive(name, value)
    _positive("--seed", seed, minimum=0)
    _positive("--reduction-factor", reduction_factor, minimum=2)
    for name, value in (
        ("--images-per-class", images_per_class),
        ("--grace-epochs", grace_epochs),
        ("--max-concurrent", max_concurrent),
    ):
        _positive(name, value, optional=True)
    if sample_size > population:
        raise ConfigError(
            f"--sample-size {sample_size} is larger than --population {population}: the "
            "tournament draws from the population"
        )
    if latency_ms is None:
        return
    if isinstance(latency_ms, bool) or not isinstance(latency_ms, (int, float)):
        raise ConfigError(f"--latency-ms must be a number, got {latency_ms!r}")
    if not 0 < latency_ms < math.inf:
        raise ConfigError(f"--latency-ms must be a positive number of ms, got {latency_ms!r}")
    if objective not in OBJECTIVES:
        raise ConfigError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if not -math.inf < mnas_w <= 0:
        raise ConfigError(f"--mnas-w must be <= 0 (MnasNet: -0.07), got {mnas_w!r}")


def make_spec(
    data: str,
    out: Path,
    *,
    img_size,
    target,
    images_per_class,
    train_args,
    cpus_per_trial,
    max_concurrent,
    grace_epochs,
    latency_of=None,
    **numbers,
) -> tuple[SearchSpec, int]:
    """The search's settings, every one checked before anything is timed or written (ConfigError,
    UnknownNameError, MissingDependencyError, FileNotFoundError: one line each), and the data's
    number of classes. A different search saved in `out` is refused here."""
    check_numbers(images_per_class=images_per_class, grace_epochs=grace_epochs,
                  max_concurrent=max_concurrent, **{k: v for k, v in numbers.items()
                  if k not in ("early_stop", "deterministic")})  # fmt: skip
    if (numbers["latency_ms"] is None) == (latency_of is None):
        raise ConfigError("give the budget as --latency-ms MS or --latency-of MODEL (one of them)")
    train_args = check_train_args(train_args, "search", SEARCH_OWNED)
    if data != "digits":
        data = os.path.abspath(os.path.expanduser(data))
    classes = data_mod.data_classes(data, "DATA")
    if images_per_class is not None and (classes is None or data == "digits"):
        raise ConfigError("--images-per-class needs an image folder (root/train/<class>/...)")
    size = resolve_img_size(["mixnet_s"], data, img_size)
    space.fit_space(size)  # the image size leaves every row a kernel
    target = LatencyTarget.parse(target).name
    check_output(out)
    saved = read_spec(out)
    if max_concurrent is None:
        max_concurrent = saved.max_concurrent if saved else _default_concurrency(cpus_per_trial)
    if grace_epochs is None:
        grace_epochs = max(1, numbers["epochs"] // 3)
    latency_ms = numbers.pop("latency_ms")
    if latency_of is not None:
        from lightnets.registry import resolve_name

        latency_of = resolve_name(latency_of)  # UnknownNameError with close matches
        same = saved is not None and saved.latency_of == latency_of
        latency_ms = saved.latency_ms if same else None  # None: measured once the checks pass
    spec = SearchSpec(data=data, img_size=size, target=target, max_concurrent=max_concurrent,
                      grace_epochs=grace_epochs, images_per_class=images_per_class,
                      train_args=train_args, latency_of=latency_of,
                      latency_ms=None if latency_ms is None else float(latency_ms),
                      mnas_w=float(numbers.pop("mnas_w")), **numbers)  # fmt: skip
    check_same(out, spec)
    return spec, classes or 10


def measure_budget(spec: SearchSpec, classes: int, emit: Event) -> SearchSpec:
    """`spec` with the budget of --latency-of: that model's latency on the target, measured as
    the candidates' will be (lightnets.search.measure)."""
    import dataclasses

    from lightnets.search.measure import measure_latencies, zoo_maker

    maker = zoo_maker(spec.latency_of, spec.img_size, classes)
    ms = measure_latencies({spec.latency_of: maker}, spec.target, spec.img_size, spec.threads)
    if ms[spec.latency_of] is None:
        raise ConfigError(f"--latency-of {spec.latency_of}: {spec.target} cannot run it")
    emit("measured", spec.latency_of, {"latency_ms": ms[spec.latency_of]})
    return dataclasses.replace(spec, latency_ms=ms[spec.latency_of])


def _default_concurrency(cpus_per_trial: float) -> int:
    from lightnets.profiling.timing import default_threads

    return max(1, int(default_threads() // cpus_per_trial))


# ------------------------------------------------------------------------------ the trials


def trial_placement(cpus_per_trial: float, gpus_per_trial: float, workers: int) -> list[str]:
    """`lightnets train` flags of where every trial runs: `cpus_per_trial` torch threads."""
    placement = ["--threads", str(max(1, int(cpus_per_trial))), "--workers", str(workers)]
    return [*placement, "--device", "cuda" if gpus_per_trial else "cpu", "--no-progress"]


def start_trials(spec: SearchSpec, out: Path, predictor, placement, emit: Event) -> SearchTrials:
    """The evolution and the proposer the Tune Searcher asks, with this run's progress folder."""
    evolution = RegularizedEvolution(
        predictor.predict,
        spec.latency_ms,
        seed=spec.seed,
        population=spec.population,
        sample_size=spec.sample_size,
        lag=spec.max_concurrent,
        space=space.fit_space(spec.img_size),
    )
    data = spec.data
    if spec.images_per_class is not None:
        data = str(data_mod.subset_folder(spec.data, spec.images_per_class, out / "data"))
    progress_root = out / ".progress"
    shutil.rmtree(progress_root, ignore_errors=True)  # a killed run's reports must not count
    progress = progress_root / f"{os.getpid()}-{time.time_ns()}"
    emit(
        "start",
        None,
        {"trials": spec.trials, "out": str(out), "finished": _trained(out, spec.epochs)},
    )
    return SearchTrials(spec, out, evolution, data, placement, progress, emit)


def _trained(out: Path, epochs: int) -> int:
    """Trials of an earlier run that are over (finished, or stopped by the scheduler)."""
    from lightnets.search.trials import trial_result

    trials = out / "trials"
    if not trials.is_dir():
        return 0
    dirs = [d for d in trials.iterdir() if d.is_dir()]
    return sum(trial_result(d, epochs)["status"] != "unfinished" for d in dirs)


def all_over(spec: SearchSpec, out: Path) -> bool:
    """Whether every trial of the search has its candidate file and is over (finished, or
    stopped by the scheduler)."""
    from lightnets.search.trials import candidate_id, trial_result

    ids = [candidate_id(i) for i in range(spec.trials)]
    return all(
        (out / "candidates" / f"{i}.toml").is_file()
        and trial_result(out / "trials" / i, spec.epochs)["status"] != "unfinished"
        for i in ids
    )


def replay(proposer, **kwargs) -> dict:
    """The runner of a search whose trials are all over: each trial's result, read from its run
    directory, handed to the proposer in trial order, as Tune would hand it."""
    from lightnets.search.trials import trial_result

    while not proposer.finished:
        config = proposer.next_config()
        if config is None:  # the proposer failed (its error is raised by the search)
            break
        result = trial_result(config["plan"]["run_dir"], proposer.spec.epochs)
        acc = result["acc"]
        score = None if acc is None else acc * config["report"]["acc_factor"]
        proposer.record(config["id"], {"epoch": result["epochs"], "objective": score}, False)
    return {}


def run_trials(proposer, spec: SearchSpec, out: Path, runner, emit: Event, **placement) -> dict:
    """The trials on Ray Tune (or `runner`); {trial: error} of those that failed."""
    early = None
    if spec.early_stop and spec.grace_epochs < spec.epochs:  # else no rung before the end
        early = {"max_t": spec.epochs, "grace_period": spec.grace_epochs,
                 "reduction_factor": spec.reduction_factor}  # fmt: skip
    kwargs = dict(trials=spec.trials, storage=str(out / ".tune"),
                  max_concurrent=spec.max_concurrent, early_stop=early, on_event=emit,
                  **placement)  # fmt: skip
    if runner is not None:
        return runner(proposer, **kwargs)
    from lightnets.compare import sweep

    with sweep.ray_session(placement.get("address")):
        return sweep.run_search_on_ray(proposer, **kwargs)
