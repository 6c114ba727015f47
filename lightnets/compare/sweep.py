"""Trials scheduled by Ray Tune: one Tune trial per compare trial, each running `run_trial`;
and a search's trials, proposed one by one by a Tune Searcher and stopped early by Tune's ASHA
scheduler (`run_search_on_ray`).

Without an address Ray starts a local cluster in this process (and stops it afterwards);
`address="auto"`, "HOST:PORT" or "ray://HOST:PORT" joins a running cluster, whose nodes must see
the results directory at the same path (a shared file system) and have lightnets installed. Each
trial reserves `cpus_per_trial` CPUs (also its torch threads) and `gpus_per_trial` GPUs. A trial
whose process or node dies is retried up to `max_failures` times (Tune's FailureConfig); the retry
resumes from the run directory's last checkpoint, so no Tune checkpoint is needed.

Ray is optional (`pip install lightnets[sweep]`) and imported only here, inside functions.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from lightnets.errors import ConfigError, MissingDependencyError

ADDRESS_TIMEOUT_S = 3.0


def require_ray():
    try:
        import ray
        from ray import tune  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "lightnets compare schedules its trials with Ray Tune: pip install lightnets[sweep]"
        ) from None
    return ray


def check_address(address: str | None, timeout: float = ADDRESS_TIMEOUT_S) -> None:
    """Fail fast, naming the address, when no Ray cluster answers there. `None` (start a local
    cluster) and "auto" (ray finds the local one) are checked by ray.init itself."""
    if address in (None, "auto", "local"):
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    if parts.scheme != "ray" or not parts.hostname or parts.port is None:
        raise ConfigError(f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=timeout):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ConfigError(
            f"--address {address}: no Ray cluster answers there ({reason}, {timeout:g} s)"
        ) from None


@contextmanager
def ray_session(address: str | None, num_cpus: int | None = None):
    """ray.init (a local cluster when `address` is None), shut down afterwards if we started it."""
    ray = require_ray()
    check_address(address)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's verbose=0 then prints nothing
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no CSV/TensorBoard files
    if ray.is_initialized():
        yield ray
        return
    kwargs = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address is None:
        kwargs.update(include_dashboard=False, num_cpus=num_cpus)
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as err:
        raise ConfigError(f"--address {address}: {' '.join(str(err).split())}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _trainable(config: dict) -> None:
    """Tune's function trainable: run one trial and report its result once."""
    import ray
    from ray import tune

    from lightnets.compare.trials import TrialPlan, run_trial

    plan = TrialPlan(**{k: tuple(v) if k.endswith("argv") else v for k, v in config.items()})
    result = run_trial(plan, node=ray.get_runtime_context().get_node_id())
    tune.report({k: v for k, v in result.items() if not k.startswith("curve_")})


def _events(on_event: Callable[[str, str, dict], None] | None):
    """A Tune callback forwarding trial events to `on_event` (kind, trial id, info)."""
    from ray import tune

    class Events(tune.Callback):
        """Forwards trial events to `on_event`. Tune pickles its callbacks with the experiment
        state: the process-local function is left out of the pickle (and out of the class's
        closure, which cloudpickle would pickle too)."""

        def __init__(self, forward):
            self.forward = forward

        def __getstate__(self):
            return {"forward": None}

        def _emit(self, kind: str, trial, info: dict) -> None:
            if self.forward is not None:
                self.forward(kind, trial.config["id"], info)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._emit("done", trial, dict(trial.last_result or {}))

        def on_trial_recover(self, iteration, trials, trial, **info):
            self._emit("retry", trial, {"failures": trial.num_failures})

        def on_trial_error(self, iteration, trials, trial, **info):
            self._emit("failed", trial, {"failures": trial.num_failures})

    return Events(on_event)


def _fit(tuner):
    """tuner.fit() with Tune's own Ctrl-C handling and failure logging off: (result grid, None),
    or (None, why) when the sweep itself broke (e.g. Ray's memory monitor)."""
    quiet = logging.getLogger("ray.tune")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # failures are reported once each through on_event
    # Tune's own SIGINT handler (off with this documented variable) turns Ctrl-C into a normal
    # return with unfinished trials, which were then reported as failures over the results files.
    # Without it Ctrl-C raises KeyboardInterrupt here as anywhere else: nothing is written, the
    # CLI says "interrupted" and exits 130, and the same command resumes the trials.
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    try:
        return tuner.fit(), None
    except Exception as err:
        return None, f"the sweep stopped: {' '.join(str(err).split())[:200]}"
    finally:
        quiet.setLevel(level)


def _failures(grid, known) -> dict[str, str]:
    failed = {}
    for result in grid:
        if result.error is not None:
            trial = (result.config or {}).get("id")
            if trial in known:
                failed[trial] = " ".join(str(result.error).split())[:300]
    return failed


def _run_config(name: str, storage: str, on_event, max_failures: int):
    from ray import tune

    return tune.RunConfig(
        name=name,
        storage_path=storage,
        verbose=0,
        callbacks=[_events(on_event)],
        failure_config=tune.FailureConfig(max_failures=max_failures),
    )


def run_on_ray(
    plans: Sequence,
    *,
    storage: str,
    address: str | None = None,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    max_failures: int = 2,
    on_event: Callable[[str, str, dict], None] | None = None,
) -> dict[str, str]:
    """Run every TrialPlan on Ray Tune; returns {trial id: error text} for the trials that
    failed `max_failures` + 1 times (empty when all finished). `on_event(kind, id, info)` is
    called in this process as trials finish ("done"), fail and are retried ("retry") or give up
    ("failed")."""
    require_ray()
    from ray import tune

    if not plans:
        return {}
    resources = {"cpu": cpus_per_trial, "gpu": gpus_per_trial}
    tuner = tune.Tuner(
        tune.with_resources(_trainable, resources),
        param_space=tune.grid_search([p.to_dict() for p in plans]),
        tune_config=tune.TuneConfig(
            trial_name_creator=lambda t: t.config["id"],
            trial_dirname_creator=lambda t: t.config["id"],
            reuse_actors=True,
        ),
        run_config=_run_config("sweep", storage, on_event, max_failures),
    )
    grid, broke = _fit(tuner)
    if broke is not None:  # keep what ran
        from lightnets.compare.trials import FINISHED, trial_status

        return {p.id: broke for p in plans if trial_status(p.run_dir) != FINISHED}
    return _failures(grid, {p.id for p in plans})


# ------------------------------------------------------------------------------ searches

METRIC = "objective"  # what a search trial reports per epoch (lightnets.compare.epochs)


def _reported_trainable(config: dict) -> None:
    """Tune's function trainable of a search trial: run it and report every epoch, in trial
    order (EpochReports). A trial the scheduler stopped earlier (its stopped.json) only reports
    the epochs it had then. When the scheduler stops it now, `tune.report` raises SystemExit
    in this thread, which stops the train command (run_trial)."""
    import ray
    from ray import tune

    from lightnets.compare.epochs import EpochReports, stopped_epoch
    from lightnets.compare.trials import TrialPlan, read_json, run_trial

    plan = TrialPlan(
        **{k: tuple(v) if k.endswith("argv") else v for k, v in config["plan"].items()}
    )
    spec = config["report"]
    reports = EpochReports(
        plan.id,
        plan.run_dir,
        spec["progress"],
        tuple(spec["after"]),
        tune.report,
        spec["epochs"],
        acc_factor=spec["acc_factor"],
        extra={"id": plan.id},
    )
    stopped = stopped_epoch(plan.run_dir)
    if stopped is None:
        run_trial(plan, node=ray.get_runtime_context().get_node_id(), on_epoch=reports)
    rows = read_json(Path(plan.run_dir) / "metrics.json", [])
    reports.finish(rows if stopped is None else rows[:stopped])


def _searcher(proposer):
    """A Tune Searcher over `proposer`: an object with `next_config()` (a trial's config, or
    None while it waits for results), `finished` and `record(trial id, last result, error)`."""
    from ray.tune.search import Searcher

    class ProposalSearcher(Searcher):
        """Tune asks for a trial (`suggest`) whenever it has room for one; the proposer's answer
        may be None (not yet: Tune asks again later). Its state lives in the search's results
        directory, not in Tune's experiment checkpoints: `save` writes an empty state."""

        def __init__(self, proposer):
            super().__init__()
            self.proposer, self.ids = proposer, {}

        def __getstate__(self):
            return {k: v for k, v in self.__dict__.items() if k != "proposer"}

        def suggest(self, trial_id: str):
            if self.proposer.finished:
                return Searcher.FINISHED
            config = self.proposer.next_config()
            if config is not None:
                self.ids[trial_id] = config["id"]
            return config

        def on_trial_complete(self, trial_id: str, result=None, error: bool = False):
            self.proposer.record(self.ids.get(trial_id), result, error)

        def save(self, checkpoint_path: str):
            with open(checkpoint_path, "wb") as f:
                pickle.dump({}, f)

        def restore(self, checkpoint_path: str):
            pass

    return ProposalSearcher(proposer)


def run_search_on_ray(
    proposer,
    *,
    trials: int,
    storage: str,
    address: str | None = None,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    max_concurrent: int = 1,
    max_failures: int = 2,
    early_stop: dict | None = None,
    on_event: Callable[[str, str, dict], None] | None = None,
) -> dict[str, str]:
    """Run `trials` trials proposed one by one by `proposer` (see `_searcher`) on Ray Tune, at
    most `max_concurrent` at a time, each reporting its score ("objective") every epoch.
    `early_stop` ({"max_t", "grace_period", "reduction_factor"}, in epochs): Tune's ASHA
    scheduler stops weak trials at its rungs; None: every trial trains to the end. Returns
    {trial id: error} for trials that failed `max_failures` + 1 times ({"sweep": why} when the
    sweep itself broke)."""
    require_ray()
    from ray import tune
    from ray.tune.schedulers import AsyncHyperBandScheduler

    scheduler = None
    if early_stop is not None:
        scheduler = AsyncHyperBandScheduler(
            time_attr="epoch", brackets=1, stop_last_trials=False, **early_stop
        )
    resources = {"cpu": cpus_per_trial, "gpu": gpus_per_trial}
    tuner = tune.Tuner(
        tune.with_resources(_reported_trainable, resources),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="max",
            search_alg=_searcher(proposer),
            scheduler=scheduler,
            num_samples=trials,
            max_concurrent_trials=max_concurrent,
            trial_name_creator=lambda t: t.config["id"],
            trial_dirname_creator=lambda t: t.config["id"],
            # Tune keeps a finished trial's actor for the next trial without stopping it; a
            # trial ASHA stopped would then go on training until the actor is reused, which the
            # searcher's wait for older results can put off. So each trial gets its own actor,
            # stopped (its train command with it) when the trial is.
            reuse_actors=False,
        ),
        run_config=_run_config("search", storage, on_event, max_failures),
    )
    grid, broke = _fit(tuner)
    if broke is not None:
        return {"sweep": broke}
    return _failures(grid, set(proposer.ids()))


def node_ids() -> list[str]:
    """Ids of the alive nodes of the connected cluster (for messages and tests)."""
    ray = require_ray()
    return [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
