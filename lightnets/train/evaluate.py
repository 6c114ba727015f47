"""Evaluation for training: lightnets.evaluation (below training, where `lightnets eval`,
`lightnets deploy` and the benchmarks evaluate too) with the training processes in mind.
`evaluate` sums over the ranks of a distributed run (each evaluates its shard of the val split);
`eval_dataset` is `eval_images` with a run's TrainConfig.
"""

from __future__ import annotations

from lightnets import evaluation
from lightnets.evaluation import (  # noqa: F401  (re-exported)
    EvalImages,
    eval_images,
    evaluate_on,
    plot_confusion,
)
from lightnets.preprocess import Preprocessing, image_mode
from lightnets.train.distributed import all_reduce


def evaluate(model, loader, **kwargs) -> dict:
    """lightnets.evaluation.evaluate, its totals summed over the training processes."""
    kwargs.setdefault("reduce", all_reduce)
    return evaluation.evaluate(model, loader, **kwargs)


def eval_dataset(cfg, data: str, class_names: list[str], pre: Preprocessing, strict: bool):
    """(dataset, skipped) of `eval_images` for the run `cfg` (a TrainConfig): its format, val
    split and seed apply when `data` is the run's own data."""
    images = eval_images(
        data,
        class_names,
        pre,
        mode=image_mode(cfg.in_chans),
        dataset=cfg.dataset if data == cfg.data else "auto",
        val_split=cfg.val_split,
        seed=cfg.seed,
        strict=strict,
    )
    return images.dataset, images.skipped
