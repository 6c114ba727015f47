"""One trial = one `lightnets train` run directory, OUT/trials/<model>-s<seed>/.

A trial is finished when its metrics hold every epoch its config asks for; a re-run reuses it. A
trial with a checkpoint but fewer epochs resumes (`lightnets train --resume`, bit-identical on CPU
with `--deterministic`); one without a checkpoint starts over. The train command runs in its own
process (`python -m lightnets train`, with TRIAL_PARENT_ENV naming the process that started it:
`enter_trial`), which is stopped (SIGTERM: it checkpoints) when that process dies, so a lost Ray
worker leaves no orphan training into the same directory; a lock file held by both makes a retry
wait until a dying attempt has exited. Only
the run-dir files (config.json, classes.json, metrics.json, last/) and the train flags are
relied on.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from lightnets import rundir
from lightnets.files import write_text
from lightnets.rundir import has_checkpoint  # noqa: F401  (moved there; re-exported)

FINISHED, RESUME, NEW = "finished", "resume", "new"
TRIAL_FILE = "trial.json"  # written into the run dir when the train command has exited with 0
# set for the train process of a trial: the pid of the process that started it (`enter_trial`)
TRIAL_PARENT_ENV = "LIGHTNETS_TRIAL_PARENT"
LOCK_WAIT_S = 120.0
POLL_S = 0.5  # how often a running trial's metrics are read when its epochs are reported


def trial_id(model: str, seed: int) -> str:
    return f"{model}-s{seed}"


@dataclass(frozen=True)
class TrialPlan:
    """Everything a worker needs to run one trial; plain data, so Ray can ship it."""

    id: str
    model: str
    seed: int
    run_dir: str
    log: str
    fresh_argv: tuple[str, ...]  # lightnets train flags of a new run
    resume_argv: tuple[str, ...]  # lightnets train flags that continue it

    def to_dict(self) -> dict:
        return asdict(self)


def read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, ValueError):
        return default


def trial_status(run_dir: str | Path) -> str:
    """FINISHED (every epoch in metrics.json), RESUME (a checkpoint to continue) or NEW."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / rundir.CONFIG)
    if not config or not rundir.has_checkpoint(run_dir):
        return NEW
    rows = read_json(run_dir / rundir.METRICS, [])
    return FINISHED if len(rows) >= config.get("epochs", 0) else RESUME


def train_argv(
    model: str,
    seed: int,
    run_dir: str,
    *,
    data: str,
    img_size: int,
    epochs: int | None,
    recipe: str | None,
    deterministic: bool,
    train_args: tuple[str, ...],
    placement: tuple[str, ...],
    arch: str | None = None,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(fresh, resume) `lightnets train` flags of one trial. The settings come first and the
    user's flags after them (argparse: the last one wins); `placement` (threads, workers, device,
    progress) may differ between attempts, which `--resume` allows. `arch`: an architecture file,
    trained as `--model mixnet_custom --arch FILE` (the run dir keeps a copy for `--resume`)."""
    if arch is not None:
        model = "mixnet_custom"
    fresh = ["--model", model, "--data", data, "--img-size", str(img_size), "--seed", str(seed)]
    fresh += ["--run-dir", run_dir]
    if arch is not None:
        fresh += ["--arch", arch]
    if epochs is not None:
        fresh += ["--epochs", str(epochs)]
    if recipe is not None:
        fresh += ["--recipe", recipe]
    if deterministic:
        fresh.append("--deterministic")
    resume = ["--resume", run_dir, *placement]
    if epochs is not None:
        resume += ["--epochs", str(epochs)]
    return (*fresh, *placement, *train_args), tuple(resume)


# ------------------------------------------------------------------------------ running one


class TrialFailed(RuntimeError):
    """The train command of a trial exited with an error (the scheduler retries it)."""


def _lock(path: Path, wait_s: float) -> int:
    """An exclusive flock on `path`, waiting up to `wait_s` for an earlier attempt to die."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise TrialFailed(f"{path}: another attempt still runs this trial") from None
            time.sleep(0.5)


def run_trial(
    plan: TrialPlan,
    node: str | None = None,
    lock_wait_s: float = LOCK_WAIT_S,
    on_epoch: Callable[[list[dict]], None] | None = None,
) -> dict:
    """Run (or continue) one trial to its last epoch; returns its result (see `read_trial`).

    `on_epoch(rows)` is called with the run's metrics.json rows each time they grow while the
    train command runs (every POLL_S), and once more when it has exited. Whatever it raises
    (an early-stopping scheduler's stop) stops the train command (SIGTERM: it checkpoints) and
    is raised on."""
    run_dir = Path(plan.run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    fd = _lock(run_dir.parent / f".{plan.id}.lock", lock_wait_s)
    try:
        status = trial_status(run_dir)
        if status == FINISHED:
            return read_trial(run_dir)
        if status == NEW and run_dir.exists():
            shutil.rmtree(run_dir)  # an attempt that died before its first checkpoint
        argv = plan.resume_argv if status == RESUME else plan.fresh_argv
        start = time.time()
        Path(plan.log).parent.mkdir(parents=True, exist_ok=True)
        with open(plan.log, "a") as log:
            log.write(
                f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} node {node}: lightnets train "
                f"{' '.join(argv)}\n"
            )
            log.flush()
            env = {**os.environ, TRIAL_PARENT_ENV: str(os.getpid())}
            proc = subprocess.Popen(
                [sys.executable, "-m", "lightnets", "train", *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                pass_fds=(fd,),  # the lock lives as long as the training process
            )
            pid_file = run_dir.parent / f".{plan.id}.pid"
            write_text(pid_file, str(proc.pid))
            try:
                rc = _wait(proc, run_dir, on_epoch)
            finally:
                pid_file.unlink(missing_ok=True)
        if rc != 0:
            tail = " | ".join(Path(plan.log).read_text().strip().splitlines()[-2:])
            raise TrialFailed(f"{plan.id}: lightnets train exited with {rc}: {tail}")
        previous = read_json(run_dir / TRIAL_FILE, {})
        info = {
            "id": plan.id,
            "node": node,
            "attempts": previous.get("attempts", 0) + 1,
            "resumed": status == RESUME or previous.get("resumed", False),
            "wall_s": previous.get("wall_s", 0.0) + time.time() - start,
        }
        write_text(run_dir / TRIAL_FILE, json.dumps(info, indent=1))
        return read_trial(run_dir)
    finally:
        os.close(fd)


def _wait(proc: subprocess.Popen, run_dir: Path, on_epoch) -> int:
    """The train command's exit status, calling `on_epoch` as its metrics grow. When anything is
    raised meanwhile, the command is stopped (SIGTERM: it checkpoints and exits in its own time,
    holding the trial's lock until then) and reaped in the background: a scheduler that stops a
    trial gives its thread a few seconds to end."""
    if on_epoch is None:
        return proc.wait()
    seen = -1
    try:
        while True:
            try:
                proc.wait(timeout=POLL_S)
                done = True
            except subprocess.TimeoutExpired:
                done = False
            rows = read_json(run_dir / "metrics.json", [])
            if len(rows) != seen or done:
                seen = len(rows)
                on_epoch(rows)
            if done:
                return proc.returncode
    except BaseException:
        if proc.poll() is None:
            proc.terminate()
            threading.Thread(target=proc.wait, daemon=True).start()
        raise


# ------------------------------------------------------------------------------ inside one


def enter_trial(argv: list[str]) -> None:
    """Make this process (`lightnets train ARGV` started by `run_trial`) a trial: on Linux it
    gets SIGTERM when the process that started it dies (`lightnets train` then checkpoints and
    exits), and the study network it trains (lightnets.compare.variants) is registered, so
    `--model mobilenet_v1_mixk9_exp_w050` and the `--resume` of such a run work."""
    from lightnets.compare.variants import ensure_registered

    _die_with_parent(os.environ.get(TRIAL_PARENT_ENV))
    model = _trial_model(argv)
    if model:
        ensure_registered(model)


def _die_with_parent(parent: str | None) -> None:
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):  # the parent died before prctl took effect
        os._exit(128 + signal.SIGTERM)


def _trial_model(argv: list[str]) -> str | None:
    """The model a trial's train flags name: --model, or the config of the run --resume names."""
    for flag in ("--model", "--resume"):
        if flag in argv[:-1]:
            value = argv[argv.index(flag) + 1]
            if flag == "--model":
                return value
            return read_json(Path(value) / rundir.CONFIG, {}).get("model")
    return None


# ------------------------------------------------------------------------------ reading one


def read_trial(run_dir: str | Path) -> dict:
    """A finished trial as plain data: model, seed, accuracy (final epoch; the EMA's when the run
    kept one), best accuracy, curves, and where and how it ran."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / rundir.CONFIG, {})
    rows = read_json(run_dir / rundir.METRICS, [])
    info = read_json(run_dir / TRIAL_FILE, {})
    key = "ema_val_acc" if rows and rows[-1].get("ema_val_acc") is not None else "val_acc"
    accs = [r.get(key) for r in rows]
    done = [a for a in accs if a is not None]
    return {
        "id": info.get("id", run_dir.name),
        "model": config.get("model"),
        "seed": config.get("seed"),
        "acc": done[-1] if done else None,
        "best_acc": max(done) if done else None,
        "acc_key": key,
        "epochs": len(rows),
        "train_s": sum(r.get("epoch_s", 0.0) for r in rows),
        "node": info.get("node"),
        "attempts": info.get("attempts"),
        "resumed": info.get("resumed"),
        "wall_s": info.get("wall_s"),
        "run_dir": str(run_dir),
        "curve_acc": accs,
        "curve_loss": [r.get("train_loss") for r in rows],
    }
