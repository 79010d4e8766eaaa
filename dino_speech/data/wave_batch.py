"""What both fbank front ends check and derive from a batch of waveforms and their lengths."""

from __future__ import annotations

import torch

__all__ = ["batch_lengths", "length_mask"]


def batch_lengths(
    waves: torch.Tensor, lengths: torch.Tensor | None, who: str
) -> tuple[torch.Tensor, int]:
    """``(lengths (B,) long on the waves' device, clamped to S; S)`` for ``waves (B, S)``;
    ``lengths=None`` means every row is whole. Raises ValueError (naming ``who``) for other
    shapes."""
    if waves.dim() != 2:
        raise ValueError(f"{who} expects waves of shape (B, S), got {tuple(waves.shape)}")
    batch, samples = waves.shape
    if lengths is None:
        return torch.full((batch,), samples, dtype=torch.long, device=waves.device), samples
    return lengths.to(device=waves.device, dtype=torch.long).clamp(max=samples), samples


def length_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, size)`` bool: position ``t`` of row ``b`` is within ``lengths[b]``."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]
