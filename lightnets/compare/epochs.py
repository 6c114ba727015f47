"""A running trial's epochs reported one at a time to an early-stopping scheduler, in trial order.

ASHA ("A System for Massively Parallel Hyperparameter Tuning", Li et al., arXiv:1810.05934) stops
a trial whose score at a rung (an epoch count) is below the top 1/eta of the scores recorded at
that rung before it. Which scores were recorded before depends on the order in which results
arrive, which, with trials running side by side, is a matter of timing. So trial i reports epoch e
only once each trial that may run beside it and comes before it (`after`) has reported epoch e
or will report nothing more: then a rung holds exactly the earlier trials that reached it, and a
search replayed from its run directories stops the same trials at the same epochs. The trial's
training goes on meanwhile; only its report waits. (A Tune function trainable's report returns
once the driver has taken the result, so "reported" means "the scheduler has seen it".)

Files:
    PROGRESS/<id>.json    {"reported": epochs reported, "done": no more reports}; one PROGRESS
                          folder per run of the sweep (a killed run's must not count)
    RUN_DIR/stopped.json  {"epoch": e}: the scheduler stopped the trial after epoch e; its result
                          is its first e epochs (`mark_stopped`, by the driver)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from lightnets.files import write_text

STOPPED_FILE = "stopped.json"
WAIT_POLL_S = 0.2


def row_acc(row: dict) -> float | None:
    """A metrics row's validation accuracy: the EMA's when the run keeps one."""
    ema = row.get("ema_val_acc")
    return ema if ema is not None else row.get("val_acc")


def stopped_epoch(run_dir: str | Path) -> int | None:
    """The epoch after which a scheduler stopped the trial, or None."""
    try:
        return int(json.loads((Path(run_dir) / STOPPED_FILE).read_text())["epoch"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def mark_stopped(run_dir: str | Path, epoch: int) -> None:
    """Record that the scheduler stopped the trial after `epoch` (written by the driver, which
    learns it from the trial's last result: a trial that ran to its end reported every epoch)."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_text(Path(run_dir) / STOPPED_FILE, json.dumps({"epoch": epoch}))


def read_progress(progress_dir: str | Path, trial: str) -> dict:
    try:
        return json.loads((Path(progress_dir) / f"{trial}.json").read_text())
    except (FileNotFoundError, ValueError):
        return {"reported": 0, "done": False}


def write_progress(progress_dir: str | Path, trial: str, reported: int, done: bool) -> None:
    Path(progress_dir).mkdir(parents=True, exist_ok=True)
    state = {"reported": reported, "done": done}
    write_text(Path(progress_dir) / f"{trial}.json", json.dumps(state))


class EpochReports:
    """Reports a trial's metrics rows, one result per epoch, after the trials `after` (see the
    module docstring). Call it with the rows as they grow (`run_trial`'s `on_epoch`): it holds
    back the row of the last of `epochs` epochs, which `finish` reports once the train command
    has exited (a stop then would cut its last checkpoint short). (When the scheduler stops the
    trial, the report does not return; the driver then marks the trial done and stopped.)

    A result: {"epoch", "acc", "objective": acc x `acc_factor`, **extra}.
    """

    def __init__(
        self,
        trial: str,
        run_dir: str | Path,
        progress_dir: str | Path,
        after: tuple[str, ...],
        report: Callable[[dict], None],
        epochs: int,
        *,
        acc_factor: float = 1.0,
        extra: dict | None = None,
    ):
        self.trial, self.run_dir, self.progress_dir = trial, Path(run_dir), Path(progress_dir)
        self.after, self.report, self.epochs = tuple(after), report, epochs
        self.acc_factor, self.extra = acc_factor, dict(extra or {})
        self.reported = 0

    def __call__(self, rows: list[dict]) -> None:
        self._report(rows[: self.epochs - 1])

    def _report(self, rows: list[dict]) -> None:
        for row in rows[self.reported :]:
            epoch = self.reported + 1
            self._wait_for(epoch)
            acc = row_acc(row)
            result = {
                "epoch": epoch,
                "acc": acc,
                "objective": None if acc is None else acc * self.acc_factor,
                **self.extra,
            }
            self.report(result)
            self.reported = epoch
            write_progress(self.progress_dir, self.trial, epoch, done=False)

    def _wait_for(self, epoch: int) -> None:
        waiting = list(self.after)
        while waiting:
            waiting = [
                t
                for t in waiting
                if not (state := read_progress(self.progress_dir, t))["done"]
                and state["reported"] < epoch
            ]
            if waiting:
                time.sleep(WAIT_POLL_S)

    def finish(self, rows: list[dict]) -> None:
        """Report the rows not reported yet, then say that no more will come."""
        self._report(rows)
        write_progress(self.progress_dir, self.trial, self.reported, done=True)
