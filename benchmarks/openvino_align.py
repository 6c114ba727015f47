"""OpenVINO int8 with grouped convs made dense (align_channels, what `lightnets export --runtime
openvino --precision int8` does) against the plain graph: batch-1 latency, interleaved rounds.

    python benchmarks/openvino_align.py --model mixnet_s --size 224 --threads 2 --rounds 7

Both graphs are quantized by NNCF on the same random calibration batches; the figure is the
cost of alignment on this CPU (the fix is for AMX CPUs, where the plain graph miscomputes).
Prints min and median ms per graph and the ratio; ONEDNN_MAX_CPU_ISA selects a lower CPU class.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import lightnets
from lightnets.cpu_class import cpu_class
from lightnets.deploy import openvino as ovd
from lightnets.deploy import reparameterize, sidecar
from lightnets.deploy.loaders import load_openvino


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mixnet_s")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--runs", type=int, default=20, help="inferences per round and graph")
    args = p.parse_args()
    torch.manual_seed(0)
    model = reparameterize(lightnets.create_model(args.model).eval())
    g = torch.Generator().manual_seed(0)
    calibration = [torch.randn(4, 3, args.size, args.size, generator=g) for _ in range(4)]
    example = calibration[0][:2]
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, align in (("plain", False), ("aligned", True)):
            path = Path(tmp) / f"{name}.xml"
            meta = {"precision": "int8", "quantize": {"align": align}}
            ovd.export(model, path, example, "int8", calibration, meta)
            sidecar.write_sidecar(path, {"runtime": "openvino", "precision": "int8"})
            runs[name] = load_openvino(path, args.threads)
        x = np.random.default_rng(0).standard_normal((1, 3, args.size, args.size), np.float32)
        times = {name: [] for name in runs}
        for run in runs.values():
            for _ in range(5):
                run(x)  # warm-up
        for _ in range(args.rounds):
            for name, run in runs.items():
                start = time.perf_counter()
                for _ in range(args.runs):
                    run(x)
                times[name].append(1e3 * (time.perf_counter() - start) / args.runs)
    print(f"{args.model}, {args.size} px, {args.threads} threads, OpenVINO int8, {cpu_class()}")
    for name, t in times.items():
        print(f"  {name:8s} min {min(t):.2f} ms  median {statistics.median(t):.2f} ms")
    ratio_min = min(times["aligned"]) / min(times["plain"])
    ratio_median = statistics.median(times["aligned"]) / statistics.median(times["plain"])
    print(f"  aligned / plain: {ratio_min:.2f}x min, {ratio_median:.2f}x median")


if __name__ == "__main__":
    main()
