"""Where a latency is measured: a target name ("eager", "onnxruntime:fp32", "onnxruntime:int8",
any "<runtime>:<precision>" of lightnets.deploy.targets.TARGETS) and the call that is timed.

- eager: the module as built, eval mode, torch.inference_mode (`lightnets profile --runtime
  eager`'s runner, lightnets.deploy.artifacts.eager_runner).
- a deployment target: the module as `lightnets export` ships it (re-parameterized: BN folded,
  mixed convs merged), written by the target's own exporter and run by its own loader. int8 is
  calibrated on random inputs: the ranges change values, not which kernels run.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lightnets.errors import ConfigError

Call = Callable[[], object]  # one inference on a fixed input


@dataclass(frozen=True)
class LatencyTarget:
    """A runtime and precision latencies are measured on."""

    runtime: str  # "eager" or a deployment runtime
    precision: str = "fp32"

    @classmethod
    def parse(cls, name: str) -> LatencyTarget:
        """ "eager", or "<runtime>:<precision>" of a deployment target (checked, with close
        matches on a typo); a deployment runtime alone means fp32."""
        runtime, _, precision = name.partition(":")
        if runtime == "eager":
            if precision not in ("", "fp32"):
                raise ConfigError(f"target {name!r}: eager runs fp32 only")
            return cls("eager")
        from lightnets.deploy.targets import check_precision, get_target, require

        target = require(get_target(runtime))
        return cls(runtime, check_precision(target, precision or "fp32"))

    @property
    def name(self) -> str:
        return "eager" if self.runtime == "eager" else f"{self.runtime}:{self.precision}"

    def version(self) -> str | None:
        """The version of the package that runs the target (torch for eager)."""
        if self.runtime == "eager":
            return torch.__version__
        from lightnets.deploy.targets import verified_on

        return verified_on(self.runtime)["runtime_version"]

    def compile(
        self,
        module: nn.Module,
        example: Tensor,
        threads: int,
        copies: int = 1,
        inner: tuple[bool, bool] = (False, False),
    ) -> Call:
        """`module` on this target, ready to run `example` (batch and shape fixed) with
        `threads` intra-op threads; the returned call runs one inference.

        With `copies` > 1 the target holds that many copies of the module (each its own weights
        in memory) and each call runs the next one in turn, so that a copy's weights have left
        the fast caches by its next call, as a layer's have inside a network.

        `inner`: whether the module's input and output lie inside a network (a block: both; the
        stem: the output; the head: the input). onnxruntime:int8 then takes and gives uint8
        tensors there, as the network passes them on (lightnets.search.qdq).
        """
        if self.runtime == "eager":
            import copy

            from lightnets.deploy.artifacts import eager_runner

            modules = [module] + [copy.deepcopy(module) for _ in range(copies - 1)]
            runs = [eager_runner(m, example, threads, None) for m in modules]
            return _in_turn(runs, example)
        from lightnets.deploy.reparam import reparameterize
        from lightnets.deploy.targets import get_target

        target = get_target(self.runtime)
        deployed = reparameterize(module)
        calibration = [torch.randn(4, *example.shape[1:], generator=_seeded())]
        x = np.ascontiguousarray(example.numpy(), dtype=np.float32)
        with tempfile.TemporaryDirectory(prefix="lightnets-latency-") as tmp:
            path = target.export(
                deployed,
                Path(tmp) / f"part{target.suffix}",
                example,
                self.precision,
                calibration,
                {},
            )
            if (self.runtime, self.precision) == ("onnxruntime", "int8") and any(inner):
                from lightnets.search.qdq import strip_boundaries

                strip_boundaries(path, inputs=inner[0], outputs=inner[1])
                if inner[0]:  # the quantized input: any bytes time the same
                    x = np.random.default_rng(0).integers(0, 256, x.shape, dtype=np.uint8)
            # each load holds its own weights; a runtime reads the file in full, and one that
            # compiles lazily does so on the first run, while the files exist
            runs = [target.load(path, threads) for _ in range(copies)]
            for run in runs:
                run(x)
        return _in_turn(runs, x)


def _in_turn(runs: list, x) -> Call:
    if len(runs) == 1:
        run = runs[0]
        return lambda: run(x)
    turn = itertools.cycle(runs)
    return lambda: next(turn)(x)


def _seeded() -> torch.Generator:
    return torch.Generator().manual_seed(0)
