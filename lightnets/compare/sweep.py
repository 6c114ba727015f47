"""Trials scheduled by Ray Tune: one Tune trial per compare trial, each running `run_trial`.

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
import socket
from collections.abc import Callable, Sequence
from contextlib import contextmanager
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
    by_id = {p.id: p for p in plans}

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

    resources = {"cpu": cpus_per_trial, "gpu": gpus_per_trial}
    tuner = tune.Tuner(
        tune.with_resources(_trainable, resources),
        param_space=tune.grid_search([p.to_dict() for p in plans]),
        tune_config=tune.TuneConfig(
            trial_name_creator=lambda t: t.config["id"],
            trial_dirname_creator=lambda t: t.config["id"],
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name="sweep",
            storage_path=storage,
            verbose=0,
            callbacks=[Events(on_event)],
            failure_config=tune.FailureConfig(max_failures=max_failures),
        ),
    )
    quiet = logging.getLogger("ray.tune")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # failures are reported once each through on_event
    # Tune's own SIGINT handler (off with this documented variable) turns Ctrl-C into a normal
    # return with unfinished trials, which were then reported as failures over the results files.
    # Without it Ctrl-C raises KeyboardInterrupt here as anywhere else: nothing is written, the
    # CLI says "interrupted" and exits 130, and the same command resumes the trials.
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    try:
        grid = tuner.fit()
    except Exception as err:  # the sweep itself broke (e.g. Ray's memory monitor): keep what ran
        from lightnets.compare.trials import FINISHED, trial_status

        reason = f"the sweep stopped: {' '.join(str(err).split())[:200]}"
        return {p.id: reason for p in plans if trial_status(p.run_dir) != FINISHED}
    finally:
        quiet.setLevel(level)
    failed = {}
    for result in grid:
        if result.error is not None:
            trial = (result.config or {}).get("id")
            if trial in by_id:
                failed[trial] = " ".join(str(result.error).split())[:300]
    return failed


def node_ids() -> list[str]:
    """Ids of the alive nodes of the connected cluster (for messages and tests)."""
    ray = require_ray()
    return [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
