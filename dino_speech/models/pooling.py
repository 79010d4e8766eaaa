"""Length-aware masks and temporal statistics pooling.

Encoders receive padded batches ``(B, T, F)`` with per-item lengths in frames. Everything here
ignores the padded frames, so an utterance gets the same embedding whether it is embedded alone
or padded inside a batch (in eval mode).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "TemporalStatsPool",
    "downsampled_lengths",
    "effective_lengths",
    "frame_mask",
    "masked_mean_std",
]


def frame_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Boolean mask ``(B, max_len)``, True on the first ``lengths[b]`` frames of item ``b``."""
    steps = torch.arange(max_len, device=lengths.device)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)


def effective_lengths(feats: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor | None:
    """Validated ``(B,)`` long lengths for ``feats (B, T, F)``, or None when every item fills
    all ``T`` frames (then the encoders take the unmasked fast path).

    While a graph is traced or exported (TorchScript, ``torch.export`` / ONNX) the lengths are
    always kept: whether every item is full is data, and the graph must take the masked path
    that is right for any lengths.
    """
    if lengths is None:
        return None
    if lengths.shape != (feats.shape[0],):
        raise ValueError(f"lengths must have shape ({feats.shape[0]},), got {tuple(lengths.shape)}")
    lengths = lengths.to(device=feats.device, dtype=torch.long)
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return lengths.clamp(min=1, max=feats.shape[1])
    if bool((lengths >= feats.shape[1]).all()):
        return None
    return lengths.clamp(min=1, max=feats.shape[1])


def downsampled_lengths(lengths: torch.Tensor, stride: int) -> torch.Tensor:
    """Valid lengths after a 'same'-padded convolution with ``stride``: ``ceil(len / stride)``."""
    return torch.div(lengths + stride - 1, stride, rounding_mode="floor")


def masked_mean_std(
    x: torch.Tensor, lengths: torch.Tensor | None = None, eps: float = 1e-5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation over time of the valid frames.

    Args:
        x: ``(B, C, T)`` features.
        lengths: ``(B,)`` valid frames per item (``None``: all ``T`` frames are valid).
        eps: variance floor, keeps the square root differentiable on constant input.

    Returns:
        ``mean (B, C)`` and ``std (B, C)`` (population standard deviation).
    """
    if lengths is None:
        mean = x.mean(dim=-1)
        var = (x - mean.unsqueeze(-1)).pow(2).mean(dim=-1)
    else:
        mask = frame_mask(lengths, x.shape[-1]).unsqueeze(1).to(x.dtype)  # (B, 1, T)
        count = lengths.clamp(min=1).to(x.dtype).view(-1, 1)
        mean = (x * mask).sum(dim=-1) / count
        var = ((x - mean.unsqueeze(-1)).pow(2) * mask).sum(dim=-1) / count
    return mean, var.clamp(min=eps).sqrt()


class TemporalStatsPool(nn.Module):
    """Statistics pooling: ``(B, C, T)`` → concatenated mean and std ``(B, 2C)``."""

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        mean, std = masked_mean_std(x, lengths, self.eps)
        return torch.cat([mean, std], dim=-1)
