"""Embedding regularisers against dimensional collapse, as pure functions of one batch.

DINO keeps the teacher's *output* from collapsing (centring, sharpening), but nothing in its
loss asks the encoder's embedding to use its dimensions: on 2,000 read-speech utterances the
teacher's 128-dim embedding ends with an effective rank of ~14 (99 % of its variance in 10
directions). RDINO (Chen et al., ICASSP 2023) adds to the DINO loss
a *diversity* term (every dimension keeps a standard deviation over the batch) and a
*redundancy-elimination* term (dimensions decorrelated): VICReg's variance and covariance
terms (Bardes, Ponce & LeCun, 2022) applied to the embeddings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["variance_covariance_terms"]


def variance_covariance_terms(
    z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4
) -> tuple[torch.Tensor, torch.Tensor]:
    """VICReg's variance and covariance terms of one batch, unweighted.

    Args:
        z: ``(B, D)`` embeddings, ``B >= 2``.
        gamma: target standard deviation of each dimension.
        eps: added to the variance under the square root.

    Returns:
        ``variance = mean_d max(0, gamma - sqrt(Var z_d + eps))`` and
        ``covariance = sum_{i != j} Cov(z)_ij^2 / D`` (unbiased covariance), 0-dim tensors in
        ``z``'s dtype.
    """
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"need a (B>=2, D) batch, got {tuple(z.shape)}")
    batch, dim = z.shape
    z = z - z.mean(0)
    variance = F.relu(gamma - (z.var(0) + eps).sqrt()).mean()
    cov = z.T @ z / (batch - 1)
    off = cov - torch.diag_embed(torch.diagonal(cov))
    return variance, off.pow(2).sum() / dim
