"""Where the trials of a sweep run and what each one reserves: the Ray placement `compare` and
`search` take (lightnets.compare.sweep runs the trials; `lightnets train` each one)."""

from __future__ import annotations

from dataclasses import dataclass

from lightnets.errors import ConfigError


@dataclass(frozen=True)
class Placement:
    """The Ray cluster, each trial's reservation and its retries; checked when made (ConfigError
    naming the flag)."""

    address: str | None = None  # auto, HOST:PORT or ray://HOST:PORT; None: a local cluster here
    cpus_per_trial: float = 1  # CPUs Ray reserves per trial, also its torch threads
    gpus_per_trial: float = 0  # 0: trials train on the CPU
    workers: int = 0  # data-loader processes per trial
    max_failures: int = 2  # retries of a trial whose process or node dies (it resumes)

    def __post_init__(self):
        for name, value, low in (
            ("--cpus-per-trial", self.cpus_per_trial, 1e-9),
            ("--gpus-per-trial", self.gpus_per_trial, 0),
            ("--workers", self.workers, 0),
            ("--max-failures", self.max_failures, 0),
        ):
            if value < low:
                raise ConfigError(f"{name} must be {'positive' if low else '>= 0'}, got {value!r}")

    def check_ray(self) -> None:
        """MissingDependencyError without Ray; ConfigError when no cluster answers there."""
        from lightnets.compare import sweep

        sweep.require_ray()
        sweep.check_address(self.address)

    def train_flags(self) -> tuple[str, ...]:
        """The `lightnets train` flags of every trial: its threads, loader workers and device."""
        threads = str(max(1, int(self.cpus_per_trial)))
        device = "cuda" if self.gpus_per_trial else "cpu"
        return ("--threads", threads, "--workers", str(self.workers), "--device", device,
                "--no-progress")  # fmt: skip

    def ray(self) -> dict:
        """The keywords of lightnets.compare.sweep's run_on_ray and run_search_on_ray."""
        return dict(address=self.address, cpus_per_trial=self.cpus_per_trial,
                    gpus_per_trial=self.gpus_per_trial, max_failures=self.max_failures)  # fmt: skip
