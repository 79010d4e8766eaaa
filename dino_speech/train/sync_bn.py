"""BatchNorm synchronised over the processes of a DDP run (``train.sync_batchnorm``).

Under DDP each process sees ``1/world_size`` of the batch; plain BatchNorm normalises with
the statistics of that share only, so small per-process batches give noisy statistics and the
processes' running statistics drift apart. Synchronised BatchNorm computes the mean and the
variance over the global batch, as the original DINO does for its student and teacher.

On CUDA this is :class:`torch.nn.SyncBatchNorm`. That module refuses CPU tensors, so on CPU
(the gloo backend) :class:`AllReduceBatchNorm` takes its place: per channel the sums of ``x``
and then of ``(x - mean)²`` (and the element counts) are all-reduced over the processes, and
the all-reduce is an autograd function, so the backward pass carries the gradients of the
global statistics back to every process. Alone (no process group, or one process) and in eval
mode both behave exactly as :class:`torch.nn.BatchNorm1d`/``2d``/``3d``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["AllReduceBatchNorm", "convert_sync_batchnorm"]


def _world_size() -> int:
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size()


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the gradient of every process's input is the summed gradient."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        out = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    return _AllReduceSum.apply(tensor)


class AllReduceBatchNorm(_BatchNorm):
    """BatchNorm over the global batch of all processes (any input of 2 or more dims).

    Statistics per channel (dim 1) over all other dims and all processes; the running
    variance is the unbiased one, as in :class:`torch.nn.BatchNorm1d`. Processes may hold
    batches of different sizes (even empty ones); every process must call the layer the same
    number of times in the same order (it does under DDP: the same model, the same steps).
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected an input of at least 2 dims, got {input.dim()}")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or _world_size() == 1:
            return super().forward(input)
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.item())

        channels = input.shape[1]
        dims = [d for d in range(input.dim()) if d != 1]
        shape = [1, channels] + [1] * (input.dim() - 2)
        count = input.new_full((1,), float(input.numel() // max(channels, 1)))
        packed = _all_reduce_sum(torch.cat([input.sum(dims), count]))
        n = float(packed[channels].item())
        if n <= 1:
            raise ValueError(
                f"expected more than 1 value per channel when training, got {int(n)} over "
                "all processes"
            )
        mean = packed[:channels] / n
        centred = input - mean.view(shape)
        var = _all_reduce_sum((centred * centred).sum(dims)) / n
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
                unbiased = var.detach() * (n / (n - 1))
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        return out


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every BatchNorm layer synchronised over the processes.

    CUDA: :meth:`torch.nn.SyncBatchNorm.convert_sync_batchnorm`; otherwise
    :class:`AllReduceBatchNorm`. Weights and statistics are kept; returns the converted module
    (the same object unless ``module`` is itself a BatchNorm layer).
    """
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert_all_reduce(module)


def _convert_all_reduce(module: nn.Module) -> nn.Module:
    if isinstance(module, _BatchNorm) and not isinstance(
        module, (nn.SyncBatchNorm, AllReduceBatchNorm)
    ):
        new = AllReduceBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
            device=_device_of(module),
        )
        with torch.no_grad():
            if module.affine:
                new.weight = module.weight
                new.bias = module.bias
        if module.track_running_stats:
            new.running_mean = module.running_mean
            new.running_var = module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        converted = _convert_all_reduce(child)
        if converted is not child:
            setattr(module, name, converted)
    return module


def _device_of(module: nn.Module) -> torch.device | None:
    for tensor in (*module.parameters(recurse=False), *module.buffers(recurse=False)):
        return tensor.device
    return None
