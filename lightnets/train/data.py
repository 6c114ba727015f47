"""Datasets for `lightnets train`: the per-format training defaults (PRESETS).

The datasets themselves (image folders, CIFAR-10/100, `digits`, the (epoch, index)-keyed
ImageDataset and its loader) live in lightnets.data, below training, where evaluation and
deployment read images too; they are re-exported here.
"""

from __future__ import annotations

from lightnets.data.arrays import (  # noqa: F401  (re-exported)
    cifar_root,
    load_cifar,
    load_digits,
    read_cifar_names,
)
from lightnets.data.folders import (  # noqa: F401
    IMAGE_EXTENSIONS,
    class_dirs,
    probe_side,
    scan_folder,
    stratified_split,
)
from lightnets.data.images import (  # noqa: F401
    EpochBatchSampler,
    ImageDataset,
    collate,
    make_loader,
)
from lightnets.data.splits import (  # noqa: F401
    ImageStats,
    Splits,
    class_names,
    detect_format,
    open_splits,
)

# per-format defaults, layered under recipes and flags (config.resolve_config)
PRESETS = {
    "digits": {  # the no-argument demo: about a minute on 2 CPU cores
        "img_size": 32,
        "scale": (0.7, 1.0),  # measured on digits, 8 epochs: 87.5% with pad-and-crop, 90.5% this
        "hflip": 0.0,  # digits are not mirror-symmetric
        "batch_size": 64,
        "epochs": 8,
        "lr_base": 0.1,
        "warmup_epochs": 1.0,
        "label_smoothing": 0.1,
    },
    "cifar10": {"img_size": 32},  # 32-px images: the small-image defaults (policy.py)
    "cifar100": {"img_size": 32},
    "folder": {},
}
