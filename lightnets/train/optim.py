"""Optimizers, learning-rate schedule and weight EMA, built from a TrainConfig.

`rmsprop` in the MixNet recipe means TensorFlow's RMSProp, which differs from torch.optim.RMSprop
in two ways that matter with eps=1e-3: the squared average starts at 1 (not 0) and eps is added
inside the square root. With PyTorch's semantics the same hyper-parameters take much larger
early steps, one reason ports of the TF recipes train poorly; `RMSpropTF` follows TF.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from lightnets.train.config import TrainConfig

NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def param_groups(model: nn.Module, weight_decay: float, decay_all: bool = False) -> list[dict]:
    """Two groups: decayed weights, and norm / bias / depthwise weights without decay.

    Depthwise: nn.Conv2d with one input channel per group, and VGNet's SharedDepthwiseConv2d
    (one kernel set tiled over channel groups, a plain Parameter rather than a conv module).
    """
    from lightnets.blocks import SharedDepthwiseConv2d

    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        depthwise = isinstance(module, SharedDepthwiseConv2d) or (
            isinstance(module, nn.Conv2d)
            and module.groups > 1
            and (module.groups == module.in_channels)
        )
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            exempt = isinstance(module, NORMS) or name == "bias" or depthwise or p.ndim <= 1
            (no_decay if exempt and not decay_all else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


class RMSpropTF(torch.optim.Optimizer):
    """TensorFlow RMSProp: ms = decay*ms + (1-decay)*g^2 (ms starts at 1);
    mom = momentum*mom + lr*g/sqrt(ms + eps); p -= mom. Weight decay is L2 added to g."""

    def __init__(
        self,
        params,
        lr: float,
        alpha: float = 0.9,
        eps: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
    ):
        super().__init__(
            params,
            {
                "lr": lr,
                "alpha": alpha,
                "eps": eps,
                "momentum": momentum,
                "weight_decay": weight_decay,
            },
        )

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.ones_like(p)
                    state["momentum_buffer"] = torch.zeros_like(p)
                square_avg = state["square_avg"]
                square_avg.mul_(group["alpha"]).addcmul_(grad, grad, value=1 - group["alpha"])
                step = grad / (square_avg + group["eps"]).sqrt_()
                if group["momentum"] > 0:
                    buf = state["momentum_buffer"]
                    buf.mul_(group["momentum"]).add_(step, alpha=group["lr"])
                    p.sub_(buf)
                else:
                    p.sub_(step, alpha=group["lr"])
        return loss


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay, cfg.decay_all)
    lr = cfg.learning_rate
    if cfg.opt == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    if cfg.opt in ("rmsprop", "rmsproptf"):
        eps = 1e-3 if cfg.opt_eps is None else cfg.opt_eps
        return RMSpropTF(groups, lr=lr, alpha=cfg.rmsprop_decay, eps=eps, momentum=cfg.momentum)
    eps = 1e-8 if cfg.opt_eps is None else cfg.opt_eps
    kind = torch.optim.AdamW if cfg.opt == "adamw" else torch.optim.Adam
    return kind(groups, lr=lr, eps=eps)


def lr_factor(cfg: TrainConfig, steps_per_epoch: int):
    """step -> multiplier of the peak lr: linear warm-up, then cosine / TF staircase / constant."""
    warmup = cfg.warmup_epochs * steps_per_epoch
    total = cfg.epochs * steps_per_epoch
    floor = cfg.min_lr / cfg.learning_rate

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.sched == "step":  # x decay_rate every decay_epochs (TF exponential_decay, staircase)
            return cfg.decay_rate ** math.floor(step / steps_per_epoch / cfg.decay_epochs)
        if cfg.sched == "cosine":
            t = (step - warmup) / max(1.0, total - warmup)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
        return 1.0

    return factor


def build_scheduler(cfg: TrainConfig, optimizer, steps_per_epoch: int):
    """A per-step LambdaLR; its state_dict holds only plain numbers (weights_only-safe)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, steps_per_epoch))


def build_ema(model: nn.Module, decay: float) -> AveragedModel | None:
    """EMA of weights and BN statistics with TF's warm-up: decay_n = min(decay, (1+n)/(10+n))."""
    if not decay:
        return None

    @torch.no_grad()
    def update(ema_tensors, model_tensors, n_averaged):
        d = min(decay, (1 + float(n_averaged)) / (10 + float(n_averaged)))
        if torch.is_floating_point(ema_tensors[0]):
            torch._foreach_lerp_(ema_tensors, model_tensors, 1 - d)
        else:  # integer counters (num_batches_tracked) follow the model
            for e, m in zip(ema_tensors, model_tensors):
                e.copy_(m)

    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)


def set_bn(model: nn.Module, momentum: float | None, eps: float | None) -> None:
    """Override BatchNorm momentum / eps everywhere (the MixNet recipe uses 0.01 / 1e-3)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if momentum is not None:
                m.momentum = momentum
            if eps is not None:
                m.eps = eps
