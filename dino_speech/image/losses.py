"""Non-contrastive SSL losses as pure functions of two batches of embeddings.

Every function takes the two views' embeddings ``(B, D)`` and returns a scalar; nothing here
reduces across processes or holds state. Stop-gradient is part of the loss where the method
defines it that way (BYOL, SimSiam), so calling code cannot forget it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dino_speech.ssl.regularizers import variance_covariance_terms


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """SimSiam's ``D(p, z) = -cos(p, stopgrad(z))`` averaged over the batch (Chen & He, 2021).

    Shapes: ``p (B, D)``, ``z (B, D)`` -> scalar in ``[-1, 1]``. No gradient reaches ``z``.
    """
    return -F.cosine_similarity(p, z.detach(), dim=-1).mean()


def byol_regression(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's ``|| p/|p| - z/|z| ||^2 = 2 - 2 cos(p, z)``, batch mean (Grill et al., 2020).

    Shapes: ``p (B, D)`` online prediction, ``z (B, D)`` target projection -> scalar in ``[0, 4]``.
    The target gets no gradient (it comes from the EMA network; detached here as well).
    """
    return 2.0 + 2.0 * negative_cosine(p, z)


def _standardize(z: torch.Tensor, eps: float) -> torch.Tensor:
    # BatchNorm without affine parameters: zero mean, unit (biased) variance per dimension.
    return (z - z.mean(0)) / (z.var(0, unbiased=False) + eps).sqrt()


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """The ``(D, D)`` cross-correlation of two batches standardised along the batch."""
    return _standardize(z1, eps).T @ _standardize(z2, eps) / z1.shape[0]


def barlow_twins_loss(
    z1: torch.Tensor, z2: torch.Tensor, lambd: float = 5e-3, eps: float = 1e-5
) -> torch.Tensor:
    """Barlow Twins (Zbontar et al., 2021): ``sum_i (1 - C_ii)^2 + lambd * sum_{i!=j} C_ij^2``.

    ``C`` is the cross-correlation of the batch-standardised views. Shapes: ``(B, D)`` each.
    """
    if z1.shape != z2.shape or z1.ndim != 2 or z1.shape[0] < 2:
        raise ValueError(f"need two (B>=2, D) batches of one shape, got {z1.shape}, {z2.shape}")
    c = cross_correlation(z1, z2, eps)
    on_diag = (torch.diagonal(c) - 1.0).pow(2).sum()
    off_diag = (c - torch.diag_embed(torch.diagonal(c))).pow(2).sum()
    return on_diag + lambd * off_diag


def vicreg_terms(
    z1: torch.Tensor, z2: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4
) -> dict[str, torch.Tensor]:
    """The three VICReg terms (Bardes, Ponce & LeCun, ICLR 2022), unweighted.

    * ``invariance``: mean squared error between the views, ``mean_{b,d} (z1 - z2)^2``.
    * ``variance``: hinge on the per-dimension std, ``mean_d max(0, gamma - sqrt(Var z_d + eps))``,
      averaged over the two branches (as in the authors' release, for which the default
      coefficients were tuned).
    * ``covariance``: ``sum_{i!=j} Cov(z)_ij^2 / D`` (unbiased covariance), summed over the
      branches.

    Shapes: ``(B, D)`` each, ``B >= 2``.
    """
    if z1.shape != z2.shape or z1.ndim != 2 or z1.shape[0] < 2:
        raise ValueError(f"need two (B>=2, D) batches of one shape, got {z1.shape}, {z2.shape}")
    invariance = F.mse_loss(z1, z2)
    (v1, c1), (v2, c2) = (variance_covariance_terms(z, gamma, eps) for z in (z1, z2))
    variance, covariance = (v1 + v2) / 2.0, c1 + c2
    return {"invariance": invariance, "variance": variance, "covariance": covariance}


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """VICReg: ``sim_coeff * inv + std_coeff * var + cov_coeff * cov`` and the detached terms."""
    terms = vicreg_terms(z1, z2)
    loss = (
        sim_coeff * terms["invariance"]
        + std_coeff * terms["variance"]
        + cov_coeff * terms["covariance"]
    )
    return loss, {k: v.detach() for k, v in terms.items()}
