"""benchmarks/cifar10_subset.py: the docs' CIFAR-10 subset made from the binary release. A small
archive in the release's format (records of a label byte and 3,072 plane-ordered pixel bytes)
stands in for the real one."""

from __future__ import annotations

import importlib.util
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cifar10_subset.py"
NAMES = ["cat", "dog", "ship"]


def _script():
    spec = importlib.util.spec_from_file_location("cifar10_subset", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _archive(path: Path, per_batch: int = 6) -> dict[int, np.ndarray]:
    """Five batches of `per_batch` records, labels cycling; returns each record's image (HWC)."""
    rng = np.random.default_rng(0)
    images, index = {}, 0
    with tarfile.open(path, "w:gz") as tar:

        def add(name: str, data: bytes):
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("batches.meta.txt", ("\n".join(NAMES) + "\n\n").encode())
        for batch in range(1, 6):
            records = []
            for _ in range(per_batch):
                planes = rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)
                images[index] = planes.transpose(1, 2, 0)
                records.append(bytes([index % len(NAMES)]) + planes.tobytes())
                index += 1
            add(f"data_batch_{batch}.bin", b"".join(records))
    return images


def test_subset_is_an_image_folder_of_disjoint_splits_with_the_releases_pixels(tmp_path):
    images = _archive(tmp_path / "c.tar.gz")
    out = tmp_path / "subset"
    argv = [str(tmp_path / "c.tar.gz"), str(out), "--train-per-class", "4", "--val-per-class", "2"]
    assert _script().main(argv) == 0
    train = sorted(p.relative_to(out / "train") for p in (out / "train").rglob("*.jpg"))
    val = sorted(p.relative_to(out / "val") for p in (out / "val").rglob("*.jpg"))
    assert len(train) == 4 * len(NAMES) and len(val) == 2 * len(NAMES)
    assert not {p.name for p in train} & {p.name for p in val}
    for path in train + val:
        index = int(path.stem)
        assert path.parent.name == NAMES[index % len(NAMES)]
        pixels = np.asarray(Image.open(next(out.glob(f"*/{path}"))), np.int16)
        assert pixels.shape == (32, 32, 3)  # noise survives JPEG only roughly: compare the means
        assert abs(pixels.mean() - images[index].mean()) < 2.0


def test_subset_refuses_an_existing_folder_and_a_wrong_archive(tmp_path):
    script = _script()
    _archive(tmp_path / "c.tar.gz")
    (tmp_path / "exists").mkdir()
    with pytest.raises(SystemExit):
        script.main([str(tmp_path / "c.tar.gz"), str(tmp_path / "exists")])
    with tarfile.open(tmp_path / "other.tar.gz", "w:gz"):
        pass
    with pytest.raises(SystemExit, match="not CIFAR-10's binary release"):
        script.main([str(tmp_path / "other.tar.gz"), str(tmp_path / "new")])
    too_many = ["--train-per-class", "12", "--val-per-class", "1"]
    with pytest.raises(SystemExit, match="has 10 images, 13 asked for"):
        script.main([str(tmp_path / "c.tar.gz"), str(tmp_path / "new2"), *too_many])
