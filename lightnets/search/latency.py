"""Latency on the target, predicted: a per-part latency table and a fit to whole networks.

A network of the search space is cut into parts (lightnets.search.parts: stem, each MBConv
block, head). Each distinct part is timed once, alone, on the target (lightnets.search.runner)
at batch 1, as it runs inside a network: its weights out of the core's caches (COLD_BYTES) and,
for int8, uint8 tensors at its boundaries (lightnets.search.qdq). A network is predicted as

    predicted_ms = scale * sum(part_ms - call_ms) + intercept_ms

where call_ms is the runtime's cost of one call of a trivial model (each part timed alone is a
call; inside the network it is not), and `scale` and `intercept_ms` are fitted by least squares
to a few networks timed end to end (`calibrate`): the network's own call, and on average what
timing parts alone still gets wrong.

The table is cached as JSON, one file per key: CPU class (lightnets.cpu_class), target and its
version, threads, image size, stem stride, batch, clock and METHOD. Folder: `cache_dir`
argument, else $LIGHTNETS_LATENCY_CACHE, else ~/.cache/lightnets/latency.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from pathlib import Path

import torch
from torch import nn

from lightnets.errors import ConfigError
from lightnets.search import space
from lightnets.search.parts import Part, network_parts
from lightnets.search.runner import LatencyTarget
from lightnets.search.timing import (
    CHUNK,
    MIN_RUN_TIME,
    ROUNDS,
    Timing,
    clock_timer,
    time_modules,
)

CACHE_ENV = "LIGHTNETS_LATENCY_CACHE"
# networks timed end to end for the fit: smallest, MixNet-S and this many random ones. Not
# `largest`: its 34 MB of fp32 weights outgrow a 32 MB L3 and run at DRAM speed, unlike the
# 10-24 MB of 40 random tables, and as one far point it would set the scale alone.
CALIBRATION_SAMPLES = 6
# networks compiled and interleaved together (a 224 px fp32 network holds ~100 MB): the more
# share the rounds, the less a change of machine load between them shows as a difference
NETWORK_CHUNK = 32
# A part timed alone in a loop finds its weights in the core's L2 cache; inside a network the
# other layers have pushed them out. So a part whose weights outweigh its activations runs as
# copies in turn, enough that the copies outgrow a core's L2 (1-2 MiB on current x86 and ARM
# cores). Each copy has its own activation buffers too, which the network does not (the runtime
# reuses them from layer to layer, warm), so a part with more activations than weights runs as
# one. Measured (ORT, 1 thread, a busy machine): MixNet-S at 32 px fp32, where weights dominate,
# parts summed to 60% of the network timed alone, 91% as copies; a sampled network at 224 px
# int8 (timed at 16.2 and 18.0 ms) summed to 16.4 ms alone, 19.2 ms all as copies and 16.7 ms
# with copies of the weight-heavy parts only.
COLD_BYTES = 4 * 2**20
MAX_COPIES = 16
STATISTICS = ("min", "median")
VALUE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}  # weights and activations
METHOD = 3  # how parts are timed (3: 5 rounds); a cached table of another method is timed again
CALL = "call"  # the table's entry for one call of a trivial model: the runtime's overhead


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "lightnets" / "latency")


def fit_line(x: list[float], y: list[float]) -> tuple[float, float]:
    """Least-squares (scale, intercept) of y = scale * x + intercept; intercept only (scale 1)
    when the x do not spread."""
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    if n < 3 or sxx <= 1e-12 * max(mx * mx, 1e-12):
        return 1.0, my - mx
    scale = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx
    return scale, my - scale * mx


class LatencyPredictor:
    """Predicted latency (ms, batch 1) of tables of the search space on one target.

    Args:
        target: "eager", "onnxruntime:fp32", "onnxruntime:int8", ... (LatencyTarget.parse).
        img_size: input side; `small_input` (stride-1 stem) defaults to space.small_input_for.
        threads: intra-op threads (default: the cores this process may use).
        cache_dir: folder of the cached tables (see the module docstring).
        rounds, min_run_time: interleaved rounds and seconds per round of each timing.
        statistic: "min" (default) or "median" over the rounds, for parts and networks alike.
            Other processes sharing the cores only ever add time, so the fastest round is the
            steadier figure (docs/search.md, "How good the latency predictor is").
        clock: "wall" or "cpu" (lightnets.search.timing.CLOCKS; "cpu" with 1 thread only).
    """

    def __init__(
        self,
        target: str,
        img_size: int,
        threads: int | None = None,
        *,
        num_classes: int = 1000,
        small_input: bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        rounds: int = ROUNDS,
        min_run_time: float = MIN_RUN_TIME,
        statistic: str = "min",
        clock: str = "wall",
    ):
        from lightnets.profiling.timing import default_threads

        self.target = LatencyTarget.parse(target)
        self.img_size, self.num_classes = img_size, num_classes
        self.small_input = space.small_input_for(img_size) if small_input is None else small_input
        self.threads = threads or default_threads()
        self.rounds, self.min_run_time = rounds, min_run_time
        if statistic not in STATISTICS:
            raise ConfigError(
                f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}"
            )
        self.statistic = statistic
        clock_timer(clock, self.threads)  # checked here, before anything is timed
        self.clock = clock
        self.path = Path(cache_dir or default_cache_dir()) / f"{_digest(self.key)}.json"
        self.parts_ms: dict[str, dict] = {}
        self.fits: dict[str, dict] = {}  # statistic -> fit
        self._load()

    @property
    def key(self) -> dict:
        """What the cached latencies depend on; a change of any value is another table."""
        from lightnets.cpu_class import cpu_class

        return {
            "cpu_class": cpu_class(),
            "target": self.target.name,
            "version": self.target.version(),
            "threads": self.threads,
            "img_size": self.img_size,
            "stem_stride": 1 if self.small_input else 2,
            "batch": 1,
            "clock": self.clock,
            "method": METHOD,
        }

    def _load(self) -> None:
        if not self.path.is_file():
            return
        try:
            data = json.loads(self.path.read_text())
        except json.JSONDecodeError:
            return  # a damaged cache is re-measured, and rewritten whole
        if data.get("key") == self.key:  # a digest collision would be another key: ignore it
            self.parts_ms, self.fits = data.get("parts", {}), data.get("fits", {})

    def save(self) -> None:
        from lightnets.files import write_text

        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"key": self.key, "fits": self.fits, "parts": self.parts_ms}
        write_text(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")

    @property
    def fit(self) -> dict | None:
        """scale, intercept_ms and the networks they were fitted on, for this statistic."""
        return self.fits.get(self.statistic)

    # ---------------------------------------------------------------- parts

    def parts(self, table) -> list[Part]:
        return network_parts(
            table, self.img_size, num_classes=self.num_classes, small_input=self.small_input
        )

    def measure_parts(self, tables) -> int:
        """Time the distinct parts of `tables` that the cache lacks, save; how many were timed."""
        missing = {} if CALL in self.parts_ms else {CALL: None}
        for table in tables:
            for part in self.parts(table):
                if part.key not in self.parts_ms:
                    missing[part.key] = part
        if missing:
            items = [
                (k, lambda p=p: self._cold(p) if p else _trivial()) for k, p in missing.items()
            ]
            timings = self._time(items)
            self.parts_ms.update({k: t.to_dict() for k, t in timings.items()})
            self.save()
        return len(missing)

    def sum_ms(self, table) -> float:
        """The sum of the latencies of the table's parts (timed first where missing), each less
        the runtime's cost of one call (CALL): inside the network the parts are no calls."""
        self.measure_parts([table])
        stat = f"{self.statistic}_ms"
        call = self.parts_ms[CALL][stat]
        return sum(self.parts_ms[p.key][stat] - call for p in self.parts(table))

    # ---------------------------------------------------------------- networks

    def measure(self, tables) -> list[float]:
        """End-to-end latency (ms, the statistic's) of each table's network, interleaved rounds."""
        items = [(str(i), lambda t=t: self._network(t)) for i, t in enumerate(tables)]
        timings = self._time(items, chunk=NETWORK_CHUNK)
        return [getattr(timings[str(i)], f"{self.statistic}_ms") for i in range(len(tables))]

    def _time(self, items, chunk: int = CHUNK) -> dict[str, Timing]:
        return time_modules(
            self.target,
            items,
            self.threads,
            rounds=self.rounds,
            min_run_time=self.min_run_time,
            clock=self.clock,
            chunk=chunk,
        )

    def _network(self, table):
        model = space.build_network(
            table,
            img_size=self.img_size,
            num_classes=self.num_classes,
            small_input=self.small_input,
        ).eval()
        return model, self.parts(table)[0].example(), 1, (False, False)

    def _cold(self, part: Part):
        """(module, example, copies, inner): copies as COLD_BYTES says, and the part's
        boundaries inside the network where they are."""
        module = part.build()
        weights = sum(p.numel() for p in module.parameters())
        copies = math.ceil(
            COLD_BYTES / ((weights + part.values()) * VALUE_BYTES[self.target.precision])
        )
        copies = max(1, min(MAX_COPIES, copies)) if weights >= part.values() else 1
        inner = (part.kind != "stem", part.kind != "head")
        return module, part.example(), copies, inner

    def calibrate(self, tables=None, *, measured=None, force: bool = False) -> dict:
        """Fit scale and intercept to end-to-end timings of `tables` (default:
        `calibration_tables()`), and cache the fit. `measured`: their timings, when the caller
        has them (check_predictor times them with its own networks). A cached fit is kept unless
        `force` or `tables` is given."""
        if self.fit is not None and tables is None and not force:
            return self.fit
        tables = self.calibration_tables() if tables is None else tables
        sums = [self.sum_ms(t) for t in tables]
        measured = self.measure(tables) if measured is None else list(measured)
        scale, intercept = fit_line(sums, measured)
        self.fits[self.statistic] = {
            "scale": scale,
            "intercept_ms": intercept,
            "networks": len(tables),
            "sum_ms": sums,
            "measured_ms": measured,
        }
        self.save()
        return self.fit

    @staticmethod
    def calibration_tables() -> list:
        """smallest, MixNet-S and CALIBRATION_SAMPLES random tables (their own seed)."""
        from lightnets.models.mixnet import MIXNET_S

        rng = random.Random("calibration")  # not the seeds a check draws from
        return [space.smallest(), MIXNET_S] + [
            space.sample(rng) for _ in range(CALIBRATION_SAMPLES)
        ]

    def predict(self, table) -> float:
        """Predicted latency (ms) of `table`'s network; calibrates first when no fit is cached."""
        if self.fit is None:
            self.calibrate()
        return self.fit["scale"] * self.sum_ms(table) + self.fit["intercept_ms"]


def _trivial():
    """A model that does next to nothing, for the cost of one call: a 1x1 conv on one value."""
    return nn.Conv2d(1, 1, 1).eval(), torch.zeros(1, 1, 1, 1), 1, (False, False)


def _digest(key: dict) -> str:
    text = json.dumps(key, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
