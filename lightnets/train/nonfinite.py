"""Find where a non-finite loss came from: re-run the failing batch with hooks on every module.

Hooks cost time on every step, so they are attached only after a failure. Forward: the first
module (in completion order, so the innermost) whose output holds inf/NaN. Backward: a module whose
output gradient is finite but whose input gradient is not created it; ties go to the deepest one.
"""

from __future__ import annotations

import contextlib
import itertools

import torch
from torch import Tensor, nn


class NonFiniteLossError(RuntimeError):
    """Training stopped on an inf/NaN loss or gradient; the message names the module."""


def _tensors(obj):
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def _bad(t: Tensor) -> bool:
    return t.is_floating_point() and not bool(torch.isfinite(t).all())


def locate_nonfinite(
    model: nn.Module, x: Tensor, target: Tensor, criterion, autocast=contextlib.nullcontext
) -> str:
    """A sentence naming the first module whose output or gradient went non-finite on a batch."""
    names = {m: n for n, m in model.named_modules() if n}
    first_forward: list[str] = []
    out_ok: dict[str, bool] = {}
    bad_inputs: dict[str, tuple[int, int]] = {}  # module -> (when, which tensor) input went bad
    order = itertools.count()

    def grad_hook(name: str, role: str, key: int):
        def hook(grad):
            if role == "out":
                out_ok.setdefault(name, not _bad(grad))
            elif _bad(grad):
                bad_inputs.setdefault(name, (next(order), key))

        return hook

    def forward_hook(module, inputs, output):
        name = names[module]
        if not first_forward and any(_bad(t) for t in _tensors(output)):
            first_forward.append(name)
        for role, group in (("in", inputs), ("out", output)):
            for t in _tensors(group):
                if t.requires_grad:
                    t.register_hook(grad_hook(name, role, id(t)))

    handles = [m.register_forward_hook(forward_hook) for m in names]
    try:
        with autocast():
            output = model(x)
            loss = criterion(output.float(), target)
        if first_forward:
            return _describe(model, first_forward[0], "output")
        if _bad(output):
            return "the model output went non-finite"
        if _bad(loss.detach()):
            return "the loss function returned a non-finite value from finite logits"
        model.zero_grad(set_to_none=True)
        loss.backward()
        culprits = [n for n in bad_inputs if out_ok.get(n, True)]
        if culprits:
            # a module and its parents share that input tensor: the deepest one made the inf
            _, key = min(bad_inputs[n] for n in culprits)
            name = max((n for n in culprits if bad_inputs[n][1] == key), key=lambda n: n.count("."))
            return _describe(model, name, "gradient")
        for pname, p in model.named_parameters():
            if p.grad is not None and _bad(p.grad):
                return _describe(model, pname.rsplit(".", 1)[0], "gradient")
        return "the failure did not reproduce on a re-run of the batch (non-deterministic op?)"
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)


def _describe(model: nn.Module, name: str, what: str) -> str:
    module = model.get_submodule(name) if name else model
    return f"first non-finite {what} in module '{name}' ({type(module).__name__})"
