"""What makes two runs of `lightnets search` the same search, stored as OUT/search.json.

A search's candidates are a function of its settings (data, image size, target, budget, seed,
evolution and early-stopping parameters, training flags) and of the results of its earlier
trials; a re-run with the same settings replays the finished trials, resumes the interrupted ones
and goes on. One with different settings is refused before anything is written. The number of
trials may grow (the search goes on where it stopped) and the closing comparison's seeds may
change: neither changes a candidate.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from lightnets.compare.spec import load_spec, refuse_unless_same
from lightnets.files import write_text

SPEC_FILE = "search.json"
FORMAT_VERSION = 1
OBJECTIVES = ("accuracy", "mnas")


@dataclass(frozen=True)
class SearchSpec:
    """One search: candidates proposed by regularized evolution within a latency budget, each
    trained by `lightnets train` with the same settings."""

    data: str  # absolute path, or "digits"
    img_size: int  # of training and latency (None given: 224; 32 for digits)
    target: str  # LatencyTarget name: "eager", "onnxruntime:int8", ...
    latency_ms: float | None  # the budget, predicted latency on the target (None: not measured yet)
    threads: int  # threads of the latency predictions and measurements
    epochs: int  # per trial
    trials: int  # candidates trained, one `lightnets train` run each
    seed: int = 0  # of the candidates and of every trial's training
    population: int = 10  # regularized evolution's P
    sample_size: int = 3  # and its S, the tournament size
    objective: str = "accuracy"  # "mnas": acc x (latency / budget)^mnas_w
    mnas_w: float = -0.07
    early_stop: bool = True  # ASHA (Tune's AsyncHyperBandScheduler)
    grace_epochs: int = 1  # ASHA's first rung (None given: epochs // 3)
    reduction_factor: int = 2  # ASHA's eta
    max_concurrent: int = 1  # trials at once, the evolution's lag (None given: the saved spec's,
    #                          else this machine's CPUs / cpus_per_trial)
    images_per_class: int | None = None  # train on a symlinked subset of the image folder
    train_args: tuple[str, ...] = ()  # further `lightnets train` flags, as given
    deterministic: bool = True  # --deterministic for every trial
    seeds: int = 1  # seeds of the closing comparison
    latency_of: str | None = None  # the budget is this zoo model's latency, measured at the start

    SAME = (
        "data",
        "img_size",
        "target",
        "latency_of",
        "latency_ms",
        "threads",
        "epochs",
        "seed",
        "population",
        "sample_size",
        "objective",
        "mnas_w",
        "early_stop",
        "grace_epochs",
        "reduction_factor",
        "max_concurrent",
        "images_per_class",
        "train_args",
        "deterministic",
    )

    def to_dict(self) -> dict:
        return {"version": FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, values: dict) -> SearchSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {
            k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names
        }
        return cls(**kwargs)

    def acc_factor(self, latency_ms: float) -> float:
        """The objective over the accuracy at `latency_ms`: 1 for "accuracy"; MnasNet's soft
        constraint (Tan et al., arXiv:1807.11626, Eq. 2, w = -0.07) for "mnas"."""
        if self.objective == "accuracy":
            return 1.0
        return (latency_ms / self.latency_ms) ** self.mnas_w


def spec_path(out: str | Path) -> Path:
    return Path(out) / SPEC_FILE


def read_spec(out: str | Path) -> SearchSpec | None:
    return load_spec(spec_path(out), SearchSpec, "search")


def check_same(out: str | Path, spec: SearchSpec) -> None:
    """Refuse a results directory made by another search (ConfigError naming the first settings
    that differ), or one with trials but no spec."""
    refuse_unless_same(out, read_spec(out), spec, SPEC_FILE, "a different search",
                       "its candidates would not be this search's")  # fmt: skip


def write_spec(out: str | Path, spec: SearchSpec) -> None:
    write_text(spec_path(out), json.dumps(spec.to_dict(), indent=1))
