"""Labelled images as datasets: files or in-memory arrays, each item read the lightnets.preprocess
way, addressed by (epoch, index) keys, and the loader that batches them.

Samples are addressed by (epoch, index) keys from `EpochBatchSampler`, so each sample's
augmentation is seeded by (seed, epoch, index) and a run resumed mid-epoch sees exactly the
batches it would have seen. Unreadable images are skipped and reported, or with `strict` raise.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from lightnets.errors import ConfigError, unreadable_image_errors
from lightnets.preprocess import open_image, to_uint8_tensor


class ImageDataset(Dataset):
    """Samples from a list of image files or an in-memory uint8 array, by (epoch, index) key.

    Items are (uint8 (C, H, W) tensor, label, None), or (None, label, "path: reason") for an
    image file that cannot be read; `collate` drops those and passes their paths on for
    reporting. An in-memory array that fails raises: there is no file to blame, it is a bug.
    """

    def __init__(
        self,
        labels,
        transform,
        mode: str,
        *,
        paths=None,
        arrays=None,
        seed: int = 0,
        strict: bool = False,
    ):
        self.labels, self.paths, self.arrays = list(labels), paths, arrays
        self.transform, self.mode, self.seed, self.strict = transform, mode, seed, strict

    def __len__(self) -> int:
        return len(self.labels)

    def preload(self, threads: int = 4) -> None:
        """Decode every image file once into memory (uint8 arrays in `mode`), so that epochs
        re-read no file. A file that fails to decode stays None here and is reported when read."""
        if self.arrays is not None or self.paths is None:
            return

        def decode(path):
            try:
                return np.asarray(self._open(path))
            except unreadable_image_errors():  # reported (or raised with --strict) by __getitem__
                return None

        with ThreadPoolExecutor(threads) as pool:  # PIL decodes without holding the GIL
            self.arrays = list(pool.map(decode, self.paths))

    def load(self, index: int):
        from PIL import Image

        if self.arrays is not None and self.arrays[index] is not None:
            return Image.fromarray(self.arrays[index]).convert(self.mode)
        return self._open(self.paths[index])

    def _open(self, path: str):
        return open_image(path, self.mode)

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        if self.arrays is not None and self.arrays[index] is not None:
            img = self.load(index)  # decoded already (digits, CIFAR, preloaded): no file to blame
        else:
            path = self.paths[index]
            try:
                img = self._open(path)
            except unreadable_image_errors() as err:
                reason = f"{path}: {type(err).__name__}: {err}"
                if self.strict:
                    msg = f"unreadable image {reason} (drop --strict to skip it)"
                    raise ConfigError(msg) from None
                return None, self.labels[index], reason
        rng = random.Random(hash((self.seed, epoch, index)))
        return to_uint8_tensor(self.transform(img, rng)), self.labels[index], None


def collate(items):
    """Stack readable samples: (uint8 images, int64 labels, list of 'path: reason' skipped)."""
    good = [(x, y) for x, y, bad in items if bad is None]
    skipped = [bad for _, _, bad in items if bad is not None]
    if not good:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.long), skipped
    images = torch.stack([x for x, _ in good])
    return images, torch.tensor([y for _, y in good], dtype=torch.long), skipped


class EpochBatchSampler:
    """Batches of (epoch, index) keys in DistributedSampler order for one rank.

    `set_epoch(epoch, skip)` re-seeds the order (seed + epoch) and leaves out the first `skip`
    batches, which a run resumed mid-epoch has already trained on.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        *,
        shuffle: bool,
        drop_last: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.batch_size, self.drop_last, self.shuffle = batch_size, drop_last, shuffle
        self.size, self.rank, self.world_size = size, rank, world_size
        self.sampler = DistributedSampler(
            range(size), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed
        )
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip
        self.sampler.set_epoch(epoch)

    def batches_per_epoch(self) -> int:
        n = len(self.sampler) if self.shuffle else len(range(self.rank, self.size, self.world_size))
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        # eval shards without padding (no sample counted twice); training pads like DDP expects
        order = (
            list(self.sampler)
            if self.shuffle
            else list(range(self.rank, self.size, self.world_size))
        )
        for b in range(self.skip, self.batches_per_epoch()):
            yield [(self.epoch, i) for i in order[b * self.batch_size : (b + 1) * self.batch_size]]

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.skip


def make_loader(
    dataset,
    batch_size: int,
    *,
    train: bool,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 0,
):
    from torch.utils.data import DataLoader

    sampler = EpochBatchSampler(
        len(dataset),
        batch_size,
        shuffle=train,
        drop_last=train,
        seed=seed,
        rank=rank,
        world_size=world_size,
    )
    # our own generator: creating an iterator must not draw from the global RNG (exact resume)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=torch.cuda.is_available(),
        worker_init_fn=_ignore_stop_signals,
    )


def _ignore_stop_signals(worker_id: int) -> None:
    # Ctrl-C, and the SIGTERM of SLURM / systemd / `kill -- -PGID`, reach the whole process group;
    # only the main process reacts (finishes the step, checkpoints, then shuts the workers down).
    # A worker killed by them would make the DataLoader raise before anything is saved.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
