"""Process-group helpers: one process without a launcher, or ``torchrun`` with DDP.

Under ``torchrun`` the environment carries ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without
them training runs in one process and nothing here touches ``torch.distributed``. Every
collective is an explicit call made by the trainer, never a side effect of a loss or a model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from dino_speech.errors import ConfigError

__all__ = [
    "DistContext",
    "all_gather_objects",
    "all_reduce_mean",
    "any_rank",
    "average_buffers",
    "init_distributed",
    "min_over_ranks",
    "resolve_device",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: rank, world size and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    initialised_here: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def close(self) -> None:
        """Tear down the process group if this context created it."""
        if self.initialised_here and dist.is_initialized():
            dist.destroy_process_group()


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` → ``cuda:<local_rank>`` when CUDA is available, else ``cpu``."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"invalid device '{device}': {exc}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{device}' requested but CUDA is not available")
        if resolved.index is None:
            resolved = torch.device("cuda", local_rank)
    return resolved


def init_distributed(device: str = "auto", env: Mapping[str, str] | None = None) -> DistContext:
    """Join the process group that ``torchrun`` describes in ``env``, or run alone.

    The backend is NCCL on CUDA and gloo on CPU. An already initialised group is reused.
    """
    env = os.environ if env is None else env
    world_size = int(env.get("WORLD_SIZE", "1"))
    rank = int(env.get("RANK", "0"))
    local_rank = int(env.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if world_size <= 1:
        return DistContext(0, 1, 0, resolved)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    created = False
    if not dist.is_initialized():
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        created = True
    return DistContext(rank, world_size, local_rank, resolved, created)


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over all processes (a new tensor; unchanged when alone)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    out = tensor.clone()
    dist.all_reduce(out)
    return out.div_(dist.get_world_size())


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every process when ``flag`` is true on at least one."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def min_over_ranks(value: float, device: torch.device) -> float:
    """The smallest ``value`` of all processes, on every process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return float(tensor.item())


@torch.no_grad()
def average_buffers(module: nn.Module) -> None:
    """Average floating-point buffers (BatchNorm statistics) over processes, in place.

    The teacher runs BatchNorm on each process's own global crops; averaging keeps the
    teachers of all processes identical.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    if not buffers:
        return
    flat = torch.cat([b.reshape(-1) for b in buffers])
    dist.all_reduce(flat)
    flat.div_(dist.get_world_size())
    offset = 0
    for b in buffers:
        b.copy_(flat[offset : offset + b.numel()].view_as(b))
        offset += b.numel()


def all_gather_objects(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every process (``[obj]`` when alone)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
