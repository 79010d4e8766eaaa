"""Where this process runs: its device and its place among ``torchrun`` processes.

Shared by every step that may run on a GPU or under ``torchrun`` (training, embedding,
verification), so that inference code needs nothing from ``dino_speech.train``. Under
``torchrun`` the environment carries ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them
a step runs in one process and nothing here touches ``torch.distributed``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from dino_speech.errors import ConfigError

__all__ = [
    "DistContext",
    "bf16_autocast",
    "init_distributed",
    "native_bf16_cpu",
    "resolve_device",
    "torchrun_context",
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


def native_bf16_cpu() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX-BF16).

    Elsewhere oneDNN would emulate bf16 through float32 conversions, which is no faster.
    """
    # get_capabilities is newer than the oldest torch the project admits (2.9): there, float32
    caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def bf16_autocast(device: torch.device, precision: str) -> bool:
    """Whether ``precision`` (``"bf16"`` or ``"fp32"``) means bf16 autocast on ``device``:
    on CUDA, and on a CPU that has bf16 arithmetic (:func:`native_bf16_cpu`); float32 elsewhere.
    """
    if precision != "bf16":
        return False
    return device.type == "cuda" or (device.type == "cpu" and native_bf16_cpu())


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


def torchrun_context(
    device: str = "auto", env: Mapping[str, str] | None = None
) -> DistContext | None:
    """This process's place under ``torchrun`` with more than one process (no process group
    is joined: for steps that only split their work by rank), else None."""
    env = os.environ if env is None else env
    world_size = int(env.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return None
    local_rank = int(env.get("LOCAL_RANK", "0"))
    return DistContext(int(env["RANK"]), world_size, local_rank, resolve_device(device, local_rank))
