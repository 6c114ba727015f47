"""Weight loading: formats, safety, and mismatches that must be errors, not silent partial loads."""

from __future__ import annotations

import hashlib
import pickle

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from lightnets import load_weights
from lightnets.errors import CheckpointError
from lightnets.weights import read_state_dict


class Tiny(nn.Module):
    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.classifier = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.classifier(self.stem(x).mean((2, 3)))


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_round_trip_in_both_formats(tmp_path, suffix):
    torch.manual_seed(0)
    src, dst = Tiny(), Tiny()
    path = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        save_file(src.state_dict(), str(path))
    else:
        torch.save({"state_dict": src.state_dict(), "epoch": 3}, path)
    load_weights(dst, path)
    assert same_weights(src, dst)


def test_ddp_and_compile_prefixes_are_stripped(tmp_path):
    src, dst = Tiny(), Tiny()
    wrapped = {f"module.{k}": v for k, v in src.state_dict().items()}
    torch.save(wrapped, tmp_path / "ddp.pth")
    load_weights(dst, tmp_path / "ddp.pth")
    assert same_weights(src, dst)


def test_mismatch_lists_missing_unexpected_and_misshaped():
    state = Tiny().state_dict()
    state.pop("stem.0.bias")
    state["extra.weight"] = torch.zeros(1)
    state["stem.1.weight"] = torch.zeros(5)
    with pytest.raises(ValueError) as err:
        load_weights(Tiny(), state)
    text = str(err.value)
    assert "missing (1): stem.0.bias" in text
    assert "unexpected (1): extra.weight" in text
    assert "mis-shaped (1): stem.1.weight (5,) vs (4,)" in text
    assert "\n" not in text


def test_other_classifier_size_needs_ignore_head():
    src, dst = Tiny(num_classes=10), Tiny(num_classes=3)
    head_before = dst.classifier.weight.clone()
    with pytest.raises(ValueError, match="ignore_head=True"):
        load_weights(dst, src.state_dict())
    with pytest.warns(UserWarning, match="classifier"):
        load_weights(dst, src.state_dict(), ignore_head=True)
    assert torch.equal(dst.stem[0].weight, src.stem[0].weight)
    assert torch.equal(dst.classifier.weight, head_before)


def test_sha256_is_checked(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(Tiny().state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert read_state_dict(path, sha256=digest)
    with pytest.raises(ValueError, match="sha256"):
        read_state_dict(path, sha256="0" * 64)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_missing_corrupt_and_pickled_code_files_fail_cleanly(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_weights(Tiny(), tmp_path / "nope.pth")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00\x01 not a safetensors file")
    with pytest.raises(CheckpointError, match="corrupt.safetensors: corrupt or truncated"):
        load_weights(Tiny(), corrupt)
    # a pickle that would run code on load: weights_only refuses it
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps(Exploit(tmp_path / "pwned")))
    with pytest.raises(CheckpointError, match="never loads") as caught:
        load_weights(Tiny(), evil)
    assert "weights_only" not in str(caught.value)  # never relay torch's advice to unpickle
    assert not (tmp_path / "pwned").exists()
    pickle.loads(evil.read_bytes())  # the file really is an exploit
    assert (tmp_path / "pwned").exists()
    (tmp_path / "pwned").unlink()


class Exploit:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (type(self.target).touch, (self.target,))


def test_a_file_without_tensors_is_rejected(tmp_path):
    path = tmp_path / "notes.pth"
    torch.save({"epoch": 1, "note": "no weights here"}, path)
    with pytest.raises(ValueError, match="no state dict"):
        load_weights(Tiny(), path)


def test_download_cache_is_keyed_by_the_whole_url(tmp_path, monkeypatch):
    """Two URLs ending in the same file name must not share a cache entry."""
    import lightnets.weights as weights

    monkeypatch.setenv("LIGHTNETS_CACHE", str(tmp_path / "cache"))
    served = {}

    def fake_download(url, dst, progress=True):
        torch.save({"w": torch.full((1,), float(len(served)))}, dst)
        served[url] = dst

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    a = weights.read_state_dict("https://a.example/v1/model.pth")
    b = weights.read_state_dict("https://b.example/v2/model.pth")
    assert len(served) == 2 and not torch.equal(a["w"], b["w"])
    again = weights.read_state_dict("https://a.example/v1/model.pth")  # cached, not fetched
    assert len(served) == 2 and torch.equal(again["w"], a["w"])


def test_an_unreachable_url_is_a_one_line_error(monkeypatch, tmp_path):
    import urllib.error

    monkeypatch.setenv("LIGHTNETS_CACHE", str(tmp_path))

    def refuse(url, dst, progress=True):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    with pytest.raises(CheckpointError, match="cannot download https://nowhere.invalid/w.pth"):
        load_weights(Tiny(), "https://nowhere.invalid/w.pth")
    assert not list(tmp_path.iterdir()) or not any(tmp_path.rglob("*.part"))
