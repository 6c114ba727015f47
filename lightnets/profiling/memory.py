"""Peak activation memory of one inference forward pass.

The most bytes held at one time by tensors created during one forward pass (torch.no_grad).
Weights and the input are excluded; the output is included. On the CPU, storages are tracked from
the op that creates them until the last tensor using them is freed; scratch memory inside a kernel
(e.g. oneDNN workspaces) is not seen. On CUDA it is torch.cuda.max_memory_allocated during the
pass minus what was allocated before it.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from lightnets.profiling.counting import eval_mode


class _LiveBytes(TorchDispatchMode):
    """Bytes held by the storages that ops create inside this mode, and their peak.

    A storage counts from the op that creates it until the last tensor using it is freed (weakref
    finalizers; CPython frees tensors as soon as they are unreferenced). Storages in `external`
    (weights, input) are never counted, nor are views or in-place results on them.
    """

    def __init__(self, external: set[int]):
        super().__init__()
        self.external = external
        self.refs: dict[int, int] = {}
        self.sizes: dict[int, int] = {}
        self.current = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, Tensor):
                self._track(t)
        return out

    def _track(self, t: Tensor) -> None:
        storage = t.untyped_storage()
        ptr, size = storage.data_ptr(), storage.nbytes()
        if size == 0 or ptr in self.external:
            return
        if ptr not in self.refs:
            self.refs[ptr], self.sizes[ptr] = 0, size
            self.current += size
            self.peak = max(self.peak, self.current)
        self.refs[ptr] += 1
        weakref.finalize(t, self._release, ptr)

    def _release(self, ptr: int) -> None:
        self.refs[ptr] -= 1
        if self.refs[ptr] == 0:
            del self.refs[ptr]
            self.current -= self.sizes.pop(ptr)


def measure_memory(model: nn.Module, x: Tensor) -> int:
    """Peak bytes of activations (and temporaries) during one inference forward of `x`.

    CUDA: torch.cuda.max_memory_allocated over the pass minus what was allocated before it.
    CPU: the peak of live tensor storages created by the pass (see _LiveBytes).
    """
    with eval_mode(model), torch.no_grad():
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
            base = torch.cuda.memory_allocated(x.device)
            torch.cuda.reset_peak_memory_stats(x.device)
            out = model(x)
            torch.cuda.synchronize(x.device)
            peak = torch.cuda.max_memory_allocated(x.device) - base
            del out
            return peak
        tensors = [x, *model.parameters(), *model.buffers()]
        external = {t.untyped_storage().data_ptr() for t in tensors}
        with _LiveBytes(external) as live:
            out = model(x)
        del out
        return live.peak
