"""BYOL, SimSiam, Barlow Twins and VICReg on one interface.

Each method owns a backbone and its heads. ``forward(x1, x2)`` takes two augmented views
``(B, C, H, W)`` of the same images and returns ``{"loss": scalar, ...detached logs}``;
``after_step(progress)`` runs after each optimiser step (BYOL's EMA, the core's
:func:`~dino_speech.ssl.ema.ema_update` on its :func:`~dino_speech.ssl.schedules.half_cosine`;
a no-op otherwise); ``backbone`` is what gets evaluated. Head widths default to the papers'
(``scale="paper"``) or to a small set that suits 8 x 8 digits on a CPU (``scale="small"``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from dino_speech.config.image import METHODS, PREDICTOR_METHODS
from dino_speech.errors import ConfigError
from dino_speech.image.heads import MLPHead, build_predictor
from dino_speech.image.losses import (
    barlow_twins_loss,
    byol_regression,
    negative_cosine,
    vicreg_loss,
)
from dino_speech.ssl.ema import ema_update
from dino_speech.ssl.schedules import half_cosine


@dataclass
class HeadDims:
    """Projector/predictor shape: ``proj_layers`` layers ``hidden -> ... -> out``; predictor
    ``out -> pred_hidden -> out`` when it is an MLP."""

    proj_layers: int
    hidden: int
    out: int
    pred_hidden: int = 0


_PAPER_DIMS = {
    "byol": HeadDims(2, 4096, 256, 4096),  # Grill et al. 2020, sec. 3.3
    "simsiam": HeadDims(3, 2048, 2048, 512),  # Chen & He 2021, sec. 4 (bottleneck predictor)
    "barlow": HeadDims(3, 8192, 8192),  # Zbontar et al. 2021, sec. 3
    "vicreg": HeadDims(3, 8192, 8192),  # Bardes et al. 2022, sec. 4.2
}
_SMALL_DIMS = {
    "byol": HeadDims(2, 512, 128, 512),
    "simsiam": HeadDims(3, 512, 512, 128),
    "barlow": HeadDims(3, 1024, 1024),
    "vicreg": HeadDims(3, 1024, 1024),
}


def head_dims(method: str, scale: str = "paper") -> HeadDims:
    """Default head widths of ``method`` at ``scale`` ("paper" or "small")."""
    table = {"paper": _PAPER_DIMS, "small": _SMALL_DIMS}.get(scale)
    if table is None:
        raise ConfigError(f"unknown head scale '{scale}'; valid scales: paper, small")
    _check_method(method)
    return copy.copy(table[method])


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ConfigError(f"unknown method '{method}'; valid methods: {', '.join(METHODS)}")


class SSLMethod(nn.Module):
    """Common base: a backbone and a projector; subclasses define the loss."""

    name = ""

    def __init__(self, backbone: nn.Module, dims: HeadDims, last_bn: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.projector = MLPHead(
            backbone.embed_dim, dims.hidden, dims.out, dims.proj_layers, last_bn=last_bn
        )

    def after_step(self, progress: float) -> None:
        """Called after every optimiser step with ``progress`` = step / total steps."""

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.backbone(x))


class BYOL(SSLMethod):
    """BYOL (Grill et al., *Bootstrap Your Own Latent*, NeurIPS 2020).

    Online backbone + projector + predictor regress the target projection of the other view;
    the target is an EMA of the online network with ``tau`` going ``base_tau -> 1`` on a cosine.
    Loss: ``byol_regression(q1, z2') + byol_regression(q2, z1')`` (symmetrised, each in [0, 4]).
    """

    name = "byol"

    def __init__(
        self, backbone: nn.Module, dims: HeadDims, predictor: str = "mlp", base_tau: float = 0.99
    ) -> None:
        super().__init__(backbone, dims)
        self.predictor = build_predictor(predictor, dims.out, dims.pred_hidden)
        self.target_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.base_tau = base_tau
        self.tau = base_tau

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        views = torch.cat([x1, x2])
        q1, q2 = self.predictor(self.project(views)).chunk(2)
        with torch.no_grad():
            z1, z2 = self.target_projector(self.target_backbone(views)).chunk(2)
        loss = byol_regression(q1, z2) + byol_regression(q2, z1)
        return {"loss": loss, "tau": torch.tensor(self.tau)}

    def after_step(self, progress: float) -> None:
        # BYOL's schedule 1 - (1 - base) (cos(pi progress) + 1) / 2: base at 0, 1 at the end.
        self.tau = half_cosine(self.base_tau, 1.0, progress)
        # The target's BatchNorm statistics are the online network's (the reference code's).
        ema_update(self.target_backbone, self.backbone, self.tau, copy_buffers=True)
        ema_update(self.target_projector, self.projector, self.tau, copy_buffers=True)


class SimSiam(SSLMethod):
    """SimSiam (Chen & He, *Exploring Simple Siamese Representation Learning*, CVPR 2021).

    One network; the predictor output of each view regresses the stop-gradient projection of the
    other. Loss: ``(D(p1, z2) + D(p2, z1)) / 2`` with ``D = -cos`` (in [-1, 1]).
    """

    name = "simsiam"

    def __init__(self, backbone: nn.Module, dims: HeadDims, predictor: str = "mlp") -> None:
        super().__init__(backbone, dims, last_bn=True)
        self.predictor = build_predictor(predictor, dims.out, dims.pred_hidden)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.project(torch.cat([x1, x2]))
        p1, p2 = self.predictor(z).chunk(2)
        z1, z2 = z.chunk(2)
        loss = 0.5 * (negative_cosine(p1, z2) + negative_cosine(p2, z1))
        return {"loss": loss}


class BarlowTwins(SSLMethod):
    """Barlow Twins (Zbontar et al., *Self-Supervised Learning via Redundancy Reduction*, 2021).

    Symmetric, no predictor: push the cross-correlation of the two views' projections to the
    identity. ``lambd`` weighs the off-diagonal (redundancy) term.
    """

    name = "barlow"

    def __init__(self, backbone: nn.Module, dims: HeadDims, lambd: float = 5e-3) -> None:
        super().__init__(backbone, dims)
        self.lambd = lambd

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        z1, z2 = self.project(torch.cat([x1, x2])).chunk(2)
        return {"loss": barlow_twins_loss(z1, z2, self.lambd)}


class VICReg(SSLMethod):
    """VICReg (Bardes, Ponce & LeCun, *Variance-Invariance-Covariance Regularization*, ICLR 2022).

    Symmetric, no predictor: invariance (MSE) + variance hinge + covariance decorrelation on the
    expander outputs, weighted 25 / 25 / 1 as in the paper.
    """

    name = "vicreg"

    def __init__(
        self,
        backbone: nn.Module,
        dims: HeadDims,
        sim_coeff: float = 25.0,
        std_coeff: float = 25.0,
        cov_coeff: float = 1.0,
    ) -> None:
        super().__init__(backbone, dims)
        self.coeffs = (sim_coeff, std_coeff, cov_coeff)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        z1, z2 = self.project(torch.cat([x1, x2])).chunk(2)
        loss, terms = vicreg_loss(z1, z2, *self.coeffs)
        return {"loss": loss, **terms}


def build_method(
    name: str,
    backbone: nn.Module,
    *,
    predictor: str | None = None,
    scale: str = "paper",
    dims: HeadDims | None = None,
) -> SSLMethod:
    """An SSL method by name; ``predictor`` only for BYOL/SimSiam (default ``mlp``).

    The two views go through the networks as one batch (one pass instead of two); BatchNorm
    statistics therefore pool both views, where the reference code forwards each view alone.
    """
    _check_method(name)
    if predictor is not None and name not in PREDICTOR_METHODS:
        raise ConfigError(
            f"method '{name}' has no predictor (only {', '.join(PREDICTOR_METHODS)} do); "
            f"drop --predictor {predictor}"
        )
    dims = dims or head_dims(name, scale)
    if name == "byol":
        return BYOL(backbone, dims, predictor or "mlp")
    if name == "simsiam":
        return SimSiam(backbone, dims, predictor or "mlp")
    if name == "barlow":
        return BarlowTwins(backbone, dims)
    return VICReg(backbone, dims)
