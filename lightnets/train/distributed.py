"""DistributedDataParallel set-up from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK).

gloo on CPU, nccl on CUDA. Without those variables everything runs as a single process and the
helpers below are no-ops, so the training code has one path.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from lightnets.cpu import cpu_threads  # noqa: F401  (moved to lightnets.cpu; re-exported)
from lightnets.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def world_size_from_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(device_name: str) -> DistInfo:
    """Join the process group torchrun describes (if any) and pick this rank's device."""
    world_size = world_size_from_env()
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo", timeout=datetime.timedelta(minutes=30)
        )
    return DistInfo(rank, world_size, local_rank, device)


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce(tensor: torch.Tensor, op=dist.ReduceOp.SUM) -> torch.Tensor:
    """In-place all-reduce across ranks; identity when not distributed."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=op)
    return tensor


def reduce_values(values: list[float], device: torch.device, op=dist.ReduceOp.SUM) -> list[float]:
    """`values` reduced over ranks, as Python floats; unchanged when not distributed.

    The tensor is made on this rank's `device`: NCCL reduces CUDA tensors only, and gloo any.
    """
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return [float(v) for v in values]
    dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
    return all_reduce(torch.tensor(values, dtype=dtype, device=device), op).tolist()


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
