"""How well the search's latency predictor (lightnets.search.latency) predicts whole networks:
random tables of the MixNet-S search space, predicted from the per-part table and timed end to
end on the same target, threads and image size.

    python benchmarks/latency_predictor.py --target onnxruntime:int8 --img-size 224 --n 20

The part table and the fit are cached (--cache-dir, default ~/.cache/lightnets/latency): a second
run only times the networks; --fresh times everything again in a temporary cache. Prints one row
per network and the median and max absolute relative error (the goal: <= 10% median, <= 25% max),
and how far a second timing of the same networks moves (the "repeat" column: the noise floor).

The figures measured so far, with the settings of each, are in docs/search.md ("How good the
latency predictor is").
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

from lightnets.profiling import count_params, machine_info, machine_line
from lightnets.search import space
from lightnets.search.check import check_predictor
from lightnets.search.latency import STATISTICS, LatencyPredictor
from lightnets.search.timing import MIN_RUN_TIME, ROUNDS
from lightnets.tables import Column, render_table

# fmt: off
COLUMNS = (
    Column("arch",      "arch",       "d"),
    Column("parts",     "parts",      "d"),
    Column("params_m",  "params M",   ".2f"),
    Column("sum_ms",    "sum ms",     ".3f"),
    Column("predicted", "predicted",  ".3f"),
    Column("measured",  "measured",   ".3f"),
    Column("error",     "error %",    "+.1f"),
    Column("repeat",    "repeat %",   "+.1f"),
)
# fmt: on


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="onnxruntime:fp32")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--min-run-time", type=float, default=MIN_RUN_TIME)
    parser.add_argument("--statistic", choices=STATISTICS, default=STATISTICS[0])
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--no-repeat", action="store_true", help="time each network once")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument(
        "--fresh", action="store_true", help="time everything again (a temporary cache)"
    )
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="lightnets-latency-") if args.fresh else None
    start = time.perf_counter()
    predictor = LatencyPredictor(args.target, args.img_size, args.threads, rounds=args.rounds,
                                 min_run_time=args.min_run_time,
        statistic=args.statistic,
        clock=args.clock,
                                 cache_dir=tmp or args.cache_dir)  # fmt: skip
    check = check_predictor(args.target, args.img_size, args.n, args.seed, predictor=predictor,
                            repeat=not args.no_repeat)  # fmt: skip
    elapsed = time.perf_counter() - start
    rows = []
    for i, arch in enumerate(check.archs):
        model = space.build_network(arch.table, img_size=args.img_size)
        rows.append({
            "arch": i,
            "parts": len(predictor.parts(arch.table)),
            "params_m": count_params(model).learned / 1e6,
            "sum_ms": predictor.sum_ms(arch.table),
            "predicted": arch.predicted_ms,
            "measured": arch.measured_ms,
            "error": 100 * arch.rel_error,
            "repeat": None if arch.repeat_error is None else 100 * arch.repeat_error,
        })  # fmt: skip
    print(render_table(rows, COLUMNS))
    fit = check.fit
    contended = sum(p.get("contended", 0) for p in predictor.parts_ms.values())
    print(
        f"\n{args.target} at {args.img_size} px, {args.threads} thread(s), batch 1, "
        f"{args.statistic} of {args.rounds} rounds, {args.clock} clock: "
        f"|error| median {100 * check.median_abs_error:.1f}%, max {100 * check.max_abs_error:.1f}% "
        f"over {len(rows)} networks"
    )
    print(
        f"fit on {fit['networks']} networks: predicted = {fit['scale']:.3f} x sum "
        f"{fit['intercept_ms']:+.3f} ms; {len(predictor.parts_ms)} parts in the table "
        f"({contended} part rounds contended); {elapsed:.0f} s"
    )
    if check.repeat_errors():
        median, worst = check.repeat_errors()
        print(
            f"the same networks timed again: |change| median {100 * median:.1f}%, "
            f"max {100 * worst:.1f}% (the noise floor)"
        )
    print(machine_line(machine_info("cpu", args.threads, predictor.target.runtime)))
    if tmp:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
