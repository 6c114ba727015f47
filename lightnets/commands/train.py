"""`lightnets train`: train a model on an image folder, CIFAR or the built-in digits.

    lightnets train                                   # mobilenet_v2_w035 on the built-in digits
    lightnets train --model mixnet_s --data DIR --recipe mixnet --epochs 100 --batch-size 128
    lightnets train --resume runs/mixnet_s-DIR-20250101-120000
    torchrun --nproc_per_node=2 -m lightnets train --data DIR ...

Every check that can fail (recipe keys, model name, input size, batch size vs ranks, data layout,
run directory, class count vs checkpoint) runs before the first slow step. Ctrl-C or SIGTERM
checkpoint and exit with 128 + the signal number; `--resume RUN` continues from any directory.
Started by `lightnets compare` (LIGHTNETS_TRIAL_PARENT set), the run is one of its trials
(lightnets.compare.trials.enter_trial).
"""

from __future__ import annotations

import os
import sys
import time

from lightnets.compare.trials import TRIAL_PARENT_ENV
from lightnets.train import data as data_mod
from lightnets.train.config import (
    TrainConfig,
    absolute_paths,
    build_parser,
    resolve_config,
    resume_config,
)
from lightnets.train.nonfinite import NonFiniteLossError
from lightnets.train.run import train


def config_from_argv(argv: list[str] | None) -> TrainConfig:
    parser = build_parser(description=__doc__.split("\n\n")[0])
    flags = vars(parser.parse_args(argv))
    if flags.get("resume"):
        return resume_config(flags["resume"], flags)
    fmt = data_mod.detect_format(flags.get("data", "digits"), flags.get("dataset", "auto"))
    return absolute_paths(resolve_config(flags, data_mod.PRESETS[fmt]))


def main(argv: list[str] | None = None) -> int:
    if os.environ.get(TRIAL_PARENT_ENV):  # one trial of `lightnets compare`
        from lightnets.compare.trials import enter_trial

        enter_trial(list(sys.argv[1:] if argv is None else argv))
    cfg = config_from_argv(argv)
    start = time.perf_counter()
    try:
        result = train(cfg)
    except NonFiniteLossError as err:
        print(f"lightnets train: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a third Ctrl-C: the previous checkpoint is intact
        print("lightnets train: interrupted without saving this step", file=sys.stderr)
        return 130
    if result.interrupted is not None:
        return 128 + result.interrupted
    if result.is_main and result.history:
        last = result.history[-1]
        acc = last.get("ema_val_acc", last.get("val_acc"))
        acc_text = f"final val acc {acc:.2f}%, " if acc is not None else ""
        print(
            f"done: {acc_text}best {result.best_metric:.2f}% in "
            f"{time.perf_counter() - start:.0f} s; run dir {result.run_dir}"
        )
    return 0
