"""What `lightnets search` costs on top of the trainings it runs (the goal: at most 1.2x):
the wall time of a search's trial phase against the same candidates trained by `lightnets train`
back to back with the same flags, interleaved repeats.

    python benchmarks/search_overhead.py --data cifar10-5k --images-per-class 100 \\
        --trials 6 --epochs 2 --repeats 2

cifar10-5k is the docs' CIFAR-10 subset (400 training and 100 validation photos a class, 32 px,
both from CIFAR-10's training set): `python benchmarks/cifar10_subset.py cifar-10-binary.tar.gz
cifar10-5k` makes it from CIFAR-10's binary release. Without --data: lightnets' built-in digits.

Each repeat runs one search (eager target, `--max-concurrent 1`, `--no-early-stop`,
`--no-compare`: every trial trains every epoch, one at a time) in a new output directory, then
trains its candidates again, one `lightnets train` command after the other, with the argv the
search gave each trial (lightnets.search.trials.trial_plan on the search's saved spec) and a new
run dir. The search goes first in every repeat (the baseline needs its candidates). Trials run
with --deterministic, so the baseline's accuracies must equal the trials' (checked).

The search's stderr lines are timestamped as they arrive and split its wall time into phases:
"setup" (to the "search:" line: imports, checks, the latency predictor opened and refitted near
the budget), "ray" (to the first "propose": ray.init and Tune), "trials" (first "propose" to last
"done": the figure compared with the back-to-back run), "stop" (to "measuring": Tune's end and
Ray's shutdown), "hand back" (to exit: the candidates measured end to end, the front written and
drawn). The trial phase is split again, summed over trials (split_trials): "propose", "to start"
(Ray's actor), "train cmds" (OUT/trials/<id>/trial.json), "to done" (the last report). "trials /
cmds" is the overhead within one run, which load from other jobs moves less than it moves one
run against the other; "trials / b2b" the ratio to the back-to-back run. Min and median over
repeats.

The figures measured so far are in docs/search.md ("What a search costs beyond its trainings").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lightnets.compare.data import subset_folder
from lightnets.compare.placement import Placement
from lightnets.profiling import machine_info, machine_line
from lightnets.search.spec import read_spec
from lightnets.search.trials import candidate_id, trial_plan, trial_result
from lightnets.tables import Column, render_table

CPUS_PER_TRIAL, WORKERS = 1, 0  # given to the search, and the placement of the baseline's argv

# fmt: off
COLUMNS = (
    Column("repeat",     "repeat",        "d"),
    Column("whole",      "search s",      ".1f"),
    Column("setup",      "setup s",       ".1f"),
    Column("ray",        "ray s",         ".1f"),
    Column("trials",     "trials s",      ".1f"),
    Column("stop",       "stop s",        ".1f"),
    Column("hand_back",  "hand back s",   ".1f"),
    Column("propose",    "propose s",     ".1f"),
    Column("to_start",   "to start s",    ".1f"),
    Column("train_cmds", "train cmds s",  ".1f"),
    Column("to_done",    "to done s",     ".1f"),
    Column("baseline",   "back to back s", ".1f"),
    Column("ratio",      "trials / b2b",  ".3f"),
    Column("own",        "trials / cmds", ".3f"),
    Column("load",       "load 1 min",    ".2f"),
)
# fmt: on


def run_search(args, data: str, out: Path) -> tuple[dict, dict]:
    """One `lightnets search`, its stderr lines timestamped: the phases' wall times (s), and
    {"propose"|"done": {trial: time.time()}}."""
    cmd = [sys.executable, "-m", "lightnets", "search", data, "--target", "eager"]
    cmd += ["--latency-ms", str(args.latency_ms), "--trials", str(args.trials)]
    cmd += ["--img-size", str(args.img_size), "--epochs", str(args.epochs)]
    cmd += ["--seed", str(args.seed), "--max-concurrent", "1", "--no-early-stop", "--no-compare"]
    cmd += ["--cpus-per-trial", str(CPUS_PER_TRIAL), "--workers", str(WORKERS)]
    cmd += ["-o", str(out), *shlex.split(args.train_flags)]
    start = time.time()  # the clock of file times: trial.json's
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = [(time.time(), line.rstrip("\n")) for line in proc.stderr]
    end = time.time()
    text = "\n".join(f"{t - start:8.2f}  {line}" for t, line in lines)
    (out.parent / f"{out.name}.stderr").write_text(text)
    if proc.wait() != 0:
        sys.exit(f"lightnets search exited with {proc.returncode}:\n" + lines[-1][1])

    def first(pattern: str, last: bool = False) -> float:
        times = [t for t, line in lines if re.match(pattern, line)]
        if not times:
            sys.exit(f"no line matching {pattern!r} in {out.name}.stderr")
        return times[-1] if last else times[0]

    begun, proposed = first(r"search: \d+ trials"), first(r"propose c\d+")
    done, measuring = first(r"done c\d+", last=True), first(r"measuring \d+ candidates")
    phases = {
        "whole": end - start,
        "setup": begun - start,
        "ray": proposed - begun,
        "trials": done - proposed,
        "stop": measuring - done,
        "hand_back": end - measuring,
    }
    events = {kind: {m[1]: t for t, line in lines if (m := re.match(rf"{kind} (c\d+):", line))}
              for kind in ("propose", "done")}  # fmt: skip
    return phases, events


def split_trials(out: Path, trials, events: dict) -> dict:
    """The trial phase, summed over trials: "propose" (the previous trial's "done" to this one's
    "propose": Tune, and the evolution, whose predictions time the parts the latency table
    lacks), "to start" (to its train command's start: Ray's actor), "train cmds" (the command's
    wall time, OUT/trials/<id>/trial.json), "to done" (its exit to "done": the last epoch's
    report, Tune)."""
    sums = dict.fromkeys(("propose", "to_start", "train_cmds", "to_done"), 0.0)
    previous = None
    for trial in trials:
        info = out / "trials" / trial / "trial.json"
        end, wall = info.stat().st_mtime, json.loads(info.read_text())["wall_s"]
        proposed, done = events["propose"][trial], events["done"][trial]
        if previous is not None:
            sums["propose"] += proposed - previous
        sums["to_start"] += end - wall - proposed
        sums["train_cmds"] += wall
        sums["to_done"] += done - end
        previous = done
    return sums


def trial_argvs(out: Path) -> dict[str, list[str]]:
    """Every trial's `lightnets train` argv as the search built it (the same function, on the
    spec it saved, with the same placement), checked against the command its log recorded."""
    spec = read_spec(out)
    placement = Placement(cpus_per_trial=CPUS_PER_TRIAL, workers=WORKERS).train_flags()
    argvs = {}
    for i in range(spec.trials):
        plan = trial_plan(spec, out, candidate_id(i), spec.data, placement)
        header = (Path(plan.log).read_text().split("\n=== ")[1]).splitlines()[0]
        if not header.endswith(f": lightnets train {' '.join(plan.fresh_argv)}"):
            sys.exit(f"{plan.log}: the trial ran another command than {plan.fresh_argv}")
        if trial_result(plan.run_dir, spec.epochs)["status"] != "finished":
            sys.exit(f"{plan.run_dir}: not every epoch trained (early stop or a failure)")
        argvs[plan.id] = list(plan.fresh_argv)
    return argvs


def back_to_back(argvs: dict[str, list[str]], out: Path) -> float:
    """The trials again, each as its own `lightnets train` command in a new run dir."""
    start = time.perf_counter()
    for trial, argv in argvs.items():
        argv = list(argv)
        argv[argv.index("--run-dir") + 1] = str(out / trial)
        cmd = [sys.executable, "-m", "lightnets", "train", *argv]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def accuracies(run_dirs) -> list[list[float]]:
    return [[r["val_acc"] for r in json.loads((d / "metrics.json").read_text())] for d in run_dirs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="digits", help="image folder root/train/<class>/")
    parser.add_argument("--images-per-class", type=int, help="a subset of --data (symlinks)")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=11.0, help="the budget (default 11)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-flags", default="", help='to every trial, e.g. "--batch-size 64"')
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="search-overhead-"))
    data = args.data
    if args.images_per_class is not None:  # one subset for both sides
        data = str(subset_folder(args.data, args.images_per_class, work / "data"))
    rows = []
    for r in range(args.repeats):
        out = work / f"search-{r}"
        phases, events = run_search(args, data, out)
        argvs = trial_argvs(out)
        row = {"repeat": r + 1, **phases, **split_trials(out, argvs, events)}
        row["baseline"] = back_to_back(argvs, work / f"train-{r}")
        row["ratio"] = row["trials"] / row["baseline"]
        row["own"] = row["trials"] / row["train_cmds"]
        row["load"] = os.getloadavg()[0]
        same = accuracies(out / "trials" / t for t in argvs) == accuracies(
            work / f"train-{r}" / t for t in argvs
        )
        row["same_acc"] = same
        rows.append(row)
        print(
            f"repeat {r + 1}: search {row['whole']:.1f} s (trials {row['trials']:.1f} s), "
            f"back to back {row['baseline']:.1f} s, ratio {row['ratio']:.3f}, "
            f"same accuracies: {'yes' if same else 'NO'}, load {row['load']:.2f}",
            flush=True,
        )
        if not args.keep:
            shutil.rmtree(out)
            shutil.rmtree(work / f"train-{r}")

    print()
    print(render_table(rows, COLUMNS))
    ratios = [row["ratio"] for row in rows]
    wholes = [row["whole"] / row["baseline"] for row in rows]
    owns = [row["own"] for row in rows]
    per_trial = {k: statistics.median(row[k] for row in rows) / args.trials
                 for k in ("propose", "to_start", "to_done")}  # fmt: skip
    on = args.data
    if args.images_per_class is not None:
        on = f"{args.images_per_class} images/class of {args.data}"
    print(
        f"\n{args.trials} trials x {args.epochs} epoch(s), {args.img_size} px, {on}, budget "
        f"{args.latency_ms:g} ms eager, 1 trial at a time, {CPUS_PER_TRIAL} thread(s) each"
    )
    print(
        f"trials / back to back: min {min(ratios):.3f}, median {statistics.median(ratios):.3f} "
        f"(target <= 1.2); whole search / back to back: min {min(wholes):.3f}, "
        f"median {statistics.median(wholes):.3f}"
    )
    print(
        f"trials / their own train commands: min {min(owns):.3f}, median "
        f"{statistics.median(owns):.3f}; per trial (median of repeats): propose "
        f"{per_trial['propose']:.1f} s, to start {per_trial['to_start']:.1f} s, to done "
        f"{per_trial['to_done']:.1f} s"
    )
    print(machine_line(machine_info("cpu", CPUS_PER_TRIAL, "eager")))
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
