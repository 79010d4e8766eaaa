"""Projector and predictor heads for non-contrastive SSL.

The projector (:class:`MLPHead`) maps backbone features to the space where the loss is computed;
BYOL, SimSiam, Barlow Twins and VICReg differ only in its depth, widths and whether its output is
batch-normalised. The predictor sits on the online branch of BYOL and SimSiam; the variants here
are the ones whose role the literature studies:

* ``mlp`` — the 2-layer MLP of BYOL (Grill et al., 2020) and SimSiam (Chen & He, 2021).
* ``linear`` — one trainable matrix (SimSiam's and DirectPred's linear ablation).
* ``offdiag_identity`` — the identity with only its off-diagonal entries trainable (Wen & Li,
  *The Mechanism of Prediction Head in Non-contrastive Self-supervised Learning*, NeurIPS 2022).
* ``directpred`` — no gradient at all: the matrix is set from the eigen-decomposition of the
  running correlation of its input (Tian, Chen & Ganguli, *Understanding Self-supervised Learning
  Dynamics without Contrastive Pairs*, ICML 2021).
* ``identity`` — a fixed identity (equivalent to no predictor); used by the predictor study.

All predictors map ``(B, D) -> (B, D)``.
"""

from __future__ import annotations

import torch
from torch import nn

from dino_speech.config.image import PREDICTORS
from dino_speech.errors import ConfigError


class MLPHead(nn.Module):
    """``num_layers`` linear layers with BatchNorm + ReLU between them.

    Args:
        in_dim: input width.
        hidden_dim: width of the hidden layers.
        out_dim: output width.
        num_layers: number of linear layers (>= 1).
        last_bn: batch-normalise the output (without affine parameters), as SimSiam's projector.
    Shapes: ``(B, in_dim) -> (B, out_dim)``.
    """

    def __init__(
        self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2, last_bn: bool = False
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"an MLP head needs at least one layer, got num_layers={num_layers}")
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(num_layers - 1):
            layers += [
                nn.Linear(width, hidden_dim, bias=False),
                nn.BatchNorm1d(hidden_dim),
                nn.ReLU(inplace=True),
            ]
            width = hidden_dim
        layers.append(nn.Linear(width, out_dim, bias=not last_bn))
        if last_bn:
            layers.append(nn.BatchNorm1d(out_dim, affine=False))
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class IdentityPredictor(nn.Module):
    """A fixed identity: no parameters, ``(B, D) -> (B, D)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class LinearPredictor(nn.Module):
    """A fully trainable ``D x D`` matrix, identity-initialised when ``identity_init``.

    Shapes: ``(B, D) -> (B, D)``; ``p = x W^T``.
    """

    def __init__(self, dim: int, identity_init: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim, bias=False)
        if identity_init:
            with torch.no_grad():
                self.linear.weight.copy_(torch.eye(dim))

    def matrix(self) -> torch.Tensor:
        return self.linear.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class OffDiagIdentityPredictor(nn.Module):
    """``W = I + M * (1 - I)``: a frozen identity plus a masked trainable matrix (Wen & Li, 2022).

    ``M`` starts at zero. Because the mask multiplies ``M``, the gradient of its diagonal is exactly
    zero, so no optimiser (momentum, Adam, weight decay included) ever moves it and the diagonal of
    ``W`` stays exactly 1. Shapes: ``(B, D) -> (B, D)``; ``p = x W^T``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.offdiag = nn.Parameter(torch.zeros(dim, dim))
        self.register_buffer("eye", torch.eye(dim), persistent=False)
        self.register_buffer("mask", 1.0 - torch.eye(dim), persistent=False)

    def matrix(self) -> torch.Tensor:
        return self.eye + self.offdiag * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.matrix().T


class DirectPredPredictor(nn.Module):
    """DirectPred (Tian et al., 2021): the predictor set directly, without gradient.

    During training each batch updates the running correlation of the (detached) input,
    ``F <- rho F + (1 - rho) E_batch[x x^T]``; every ``update_every`` steps ``F = U diag(s) U^T``
    is eigen-decomposed and ``W = U diag(p) U^T`` with ``p_j = sqrt(max(s_j, 0) / max_k s_k) +
    eps``. In eval mode nothing is updated. Before the first update ``W`` is the identity.

    Args:
        dim: width ``D``.
        rho: weight of the past in the running correlation (the paper's 0.3).
        eps: added to every normalised eigenvalue so weak directions keep some gain (0.1).
        update_every: recompute ``W`` every this many training batches.
    Shapes: ``(B, D) -> (B, D)``; ``p = x W^T``.
    """

    def __init__(self, dim: int, rho: float = 0.3, eps: float = 0.1, update_every: int = 1) -> None:
        super().__init__()
        if not 0.0 <= rho < 1.0:
            raise ConfigError(f"DirectPred rho must be in [0, 1), got {rho}")
        if update_every < 1:
            raise ConfigError(f"DirectPred update_every must be >= 1, got {update_every}")
        self.rho, self.eps, self.update_every = rho, eps, update_every
        self.register_buffer("corr", torch.zeros(dim, dim))
        self.register_buffer("weight", torch.eye(dim))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def matrix(self) -> torch.Tensor:
        return self.weight

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Fold one batch ``(B, D)`` into the running correlation and maybe recompute ``W``."""
        x = x.detach().float()
        batch_corr = x.T @ x / x.shape[0]
        if int(self.num_updates) == 0:
            self.corr.copy_(batch_corr)
        else:
            self.corr.mul_(self.rho).add_(batch_corr, alpha=1.0 - self.rho)
        self.num_updates += 1
        if int(self.num_updates) % self.update_every == 0:
            self.weight.copy_(directpred_matrix(self.corr, self.eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.update(x)
        return x @ self.weight.to(x.dtype).T


def directpred_matrix(corr: torch.Tensor, eps: float) -> torch.Tensor:
    """``U diag(sqrt(s / max s) + eps) U^T`` from a symmetric ``(D, D)`` correlation matrix."""
    corr = 0.5 * (corr + corr.T).double()
    eigvals, eigvecs = torch.linalg.eigh(corr)
    eigvals = eigvals.clamp(min=0.0)
    top = eigvals.max()
    gains = (eigvals / top).sqrt() if top > 0 else torch.zeros_like(eigvals)
    gains = gains + eps
    return (eigvecs * gains) @ eigvecs.T


def build_predictor(name: str, dim: int, hidden_dim: int = 512) -> nn.Module:
    """A predictor ``(B, dim) -> (B, dim)`` by name; unknown names raise :class:`ConfigError`."""
    if name == "mlp":
        return MLPHead(dim, hidden_dim, dim, num_layers=2)
    if name == "linear":
        return LinearPredictor(dim)
    if name == "offdiag_identity":
        return OffDiagIdentityPredictor(dim)
    if name == "directpred":
        return DirectPredPredictor(dim)
    if name == "identity":
        return IdentityPredictor()
    raise ConfigError(f"unknown predictor '{name}'; valid predictors: {', '.join(PREDICTORS)}")
