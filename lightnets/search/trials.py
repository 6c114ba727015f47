"""A search's trials: candidate i (id c0000, c0001, ...) is the architecture file
OUT/candidates/<id>.toml, trained by one `lightnets train --arch` run in OUT/trials/<id>/
(lightnets.compare.trials: the same run directories, resume and retries as a comparison).

`SearchTrials` is what the Tune Searcher asks (lightnets.compare.sweep.run_search_on_ray): the
next trial's config, from the evolution's next candidate, and the end of each trial, whose score
goes back to the evolution. A candidate proposed again on a re-run must equal its file: if the
code or the latency table changed under a search, it says so instead of mixing two searches.

A trial's result is read from its run directory: every epoch its config asks for, or the first e
when the scheduler stopped it after epoch e (lightnets.compare.epochs).
"""

from __future__ import annotations

import json
from pathlib import Path

from lightnets.compare.epochs import mark_stopped, row_acc, stopped_epoch, write_progress
from lightnets.compare.trials import TrialPlan, read_json, train_argv
from lightnets.errors import ConfigError, LightnetsError
from lightnets.files import write_text
from lightnets.models.arch import Architecture, read_arch, write_arch
from lightnets.search.space import HEAD, STEM
from lightnets.search.spec import SearchSpec

CANDIDATES_FILE = "candidates.json"  # one row per proposed candidate: parent, predicted ms


def candidate_id(index: int) -> str:
    return f"c{index:04d}"


def candidate_index(trial: str) -> int:
    return int(trial[1:])


def architecture(table) -> Architecture:
    """A table of the space as a file-ready architecture: MixNet-S's stem, head and dropout."""
    return Architecture(tuple(table), stem=STEM, head=HEAD, drop_rate=0.2)


def trial_result(run_dir: str | Path, epochs: int) -> dict:
    """A trial as plain data: "finished" (all `epochs`), "stopped" (by the scheduler), or
    "unfinished"; its accuracy after the epochs that count, and the epochs."""
    rows = read_json(Path(run_dir) / "metrics.json", [])
    stopped = stopped_epoch(run_dir)
    if stopped is not None and stopped < epochs:
        status, rows = "stopped", rows[:stopped]
    else:
        status, rows = ("finished" if len(rows) >= epochs else "unfinished"), rows[:epochs]
    acc = row_acc(rows[-1]) if rows and status != "unfinished" else None
    return {"status": status, "acc": acc, "epochs": len(rows)}


def trial_plan(spec: SearchSpec, out: Path, trial: str, data: str, placement) -> TrialPlan:
    """Trial `trial` of the search in `out`: `lightnets train --arch OUT/candidates/<id>.toml` in
    OUT/trials/<id>/ on `data`, with the spec's seed, size, epochs and training flags and the
    `placement` flags (threads, workers, device, progress); its output goes to OUT/logs/<id>.log."""
    run_dir = str(Path(out) / "trials" / trial)
    fresh, resume = train_argv(
        "mixnet_custom",
        spec.seed,
        run_dir,
        data=data,
        img_size=spec.img_size,
        epochs=spec.epochs,
        recipe=None,
        deterministic=spec.deterministic,
        train_args=spec.train_args,
        placement=tuple(placement),
        arch=str(Path(out) / "candidates" / f"{trial}.toml"),
    )
    log = str(Path(out) / "logs" / f"{trial}.log")
    return TrialPlan(trial, "mixnet_custom", spec.seed, run_dir, log, fresh, resume)


class SearchTrials:
    """The proposer of a search (see the module docstring).

    Args:
        spec: the search's settings.
        out: the results directory.
        evolution: a RegularizedEvolution (lag = spec.max_concurrent).
        data: what every trial trains on (the images-per-class subset, when there is one).
        placement: `lightnets train` flags of where it runs (threads, device, progress).
        progress: this run's progress folder (lightnets.compare.epochs).
        on_event: called as (kind, trial id, info) with "propose".
    """

    def __init__(self, spec: SearchSpec, out: Path, evolution, data: str, placement, progress,
                 on_event=None):  # fmt: skip
        self.spec, self.out, self.evolution = spec, Path(out), evolution
        self.data, self.placement, self.progress = data, tuple(placement), Path(progress)
        self.emit = on_event or (lambda kind, trial, info: None)
        self.error: LightnetsError | None = None  # raised by the search after the sweep
        self.rows: list[dict] = []

    @property
    def finished(self) -> bool:
        return self.error is not None or len(self.evolution.candidates) >= self.spec.trials

    def ids(self) -> list[str]:
        return [candidate_id(c.index) for c in self.evolution.candidates]

    def next_config(self) -> dict | None:
        """The next trial's config for Tune, or None while the evolution waits for scores."""
        try:
            candidate = self.evolution.propose()
            if candidate is None:
                return None
            return self._config(candidate)
        except LightnetsError as err:  # Tune would only log it; the search raises it later
            self.error = err
            return None

    def _config(self, candidate) -> dict:
        i, spec = candidate.index, self.spec
        trial = candidate_id(i)
        arch_file = self.out / "candidates" / f"{trial}.toml"
        self._write_candidate(arch_file, candidate)
        plan = trial_plan(spec, self.out, trial, self.data, self.placement)
        after = [candidate_id(j) for j in range(max(0, i - spec.max_concurrent + 1), i)]
        self.emit("propose", trial, {"predicted_ms": candidate.predicted_ms,
                                     "parent": _parent(candidate)})  # fmt: skip
        return {
            "id": trial,
            "plan": plan.to_dict(),
            "report": {
                "progress": str(self.progress),
                "after": after,
                "epochs": spec.epochs,
                "acc_factor": spec.acc_factor(candidate.predicted_ms),
            },
        }

    def _write_candidate(self, path: Path, candidate) -> None:
        arch = architecture(candidate.table)
        if path.is_file():
            if read_arch(path) != arch:
                raise ConfigError(
                    f"{path}: the search proposes another network as {path.stem} now (did the "
                    "code or OUT/latency change?); continue it with the version that began it, "
                    "or choose another -o"
                )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_arch(arch, path)
        row = {"id": path.stem, "predicted_ms": candidate.predicted_ms,
               "parent": _parent(candidate), "population": [candidate_id(j) for j in
                                                           candidate.population]}  # fmt: skip
        self.rows.append(row)
        write_text(self.out / CANDIDATES_FILE, json.dumps(self.rows, indent=1))

    def record(self, trial: str | None, result: dict | None, error: bool) -> None:
        """The end of a trial (Tune's on_trial_complete): its score (None when it failed) to the
        evolution. Its progress says done, so that no later trial waits for its reports; one
        that ended before its last epoch without an error was stopped by the scheduler."""
        if trial is None:
            return
        epoch = (result or {}).get("epoch") or 0
        if not error and 0 < epoch < self.spec.epochs:
            mark_stopped(self.out / "trials" / trial, epoch)
        write_progress(self.progress, trial, epoch, done=True)
        score = None if error or not result else result.get("objective")
        self.evolution.record(candidate_index(trial), score)


def _parent(candidate) -> str | None:
    return None if candidate.parent is None else candidate_id(candidate.parent)
