"""Collectives of data-parallel training: one process without a launcher, or ``torchrun``.

The process's place (:class:`~dino_speech.runtime.DistContext`, :func:`init_distributed`,
:func:`resolve_device`) lives in :mod:`dino_speech.runtime` and is re-exported here. Every
collective is an explicit call made by the trainer, never a side effect of a loss or a model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from dino_speech.runtime import DistContext, init_distributed, resolve_device

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
