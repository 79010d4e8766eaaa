"""Additive angular margin (ArcFace) softmax, with optional sub-centres, for pseudo-speakers.

For an embedding ``x`` and class weight vectors ``w_j`` the logits are ``s * cos(theta_j)``,
except the true class ``y``, whose angle is widened by the margin: ``s * cos(theta_y + m)``.
With ``K`` sub-centres per class, ``cos(theta_j)`` is the largest cosine over the class's
``K`` weight vectors (sub-centre ArcFace), so a noisy pseudo-class can keep a second mode
apart instead of pulling its clean centre towards it.

``cos(theta + m)`` decreases with ``theta`` only while ``theta + m <= pi``. Past that point
the default (ArcFace's) target is ``cos(theta) - m * sin(m)``, which keeps the logit
monotone; with ``easy_margin`` the margin is applied only where ``cos(theta) > 0``.

Defaults follow hyperion ``ssl.v1``: margin 0.2, scale 30, two sub-centres, margin warmed up
linearly over the first 10 epochs (:func:`scheduled_margin`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dino_speech.config import MarginConfig
from dino_speech.errors import ConfigError, DataError

__all__ = ["AAMSoftmax", "scheduled_margin"]

# Floor of sin^2(theta) so that the gradient of sqrt stays finite at cos(theta) = +-1.
_SIN2_EPS = 1e-7


class AAMSoftmax(nn.Module):
    """Additive angular margin softmax loss over ``num_classes`` classes.

    Args:
        embed_dim: ``D``, the embedding size.
        num_classes: ``C``, the number of (pseudo-)speakers.
        margin: ``m``, the additive angle in radians (``0 <= m < pi``); can be changed
            during training with :meth:`set_margin` (margin warm-up).
        scale: ``s``, the logit scale.
        sub_centers: ``K`` weight vectors per class; the class cosine is their maximum.
        easy_margin: apply the margin only where ``cos(theta_y) > 0``.

    Parameters: ``weight`` ``(C * K, D)``, rows ``j * K .. j * K + K - 1`` belong to class ``j``.
    """

    def __init__(
        self,
        embed_dim: int,
        num_classes: int,
        *,
        margin: float = 0.2,
        scale: float = 30.0,
        sub_centers: int = 1,
        easy_margin: bool = False,
    ) -> None:
        super().__init__()
        if embed_dim < 1 or num_classes < 1:
            raise ConfigError(
                f"AAM softmax needs embed_dim >= 1 and num_classes >= 1, "
                f"got {embed_dim} and {num_classes}"
            )
        if sub_centers < 1:
            raise ConfigError(f"sub_centers must be >= 1, got {sub_centers}")
        if scale <= 0:
            raise ConfigError(f"AAM softmax scale must be > 0, got {scale}")
        self.embed_dim = embed_dim
        self.num_classes = num_classes
        self.sub_centers = sub_centers
        self.scale = float(scale)
        self.easy_margin = easy_margin
        self.margin = 0.0
        self.set_margin(margin)
        self.weight = nn.Parameter(torch.empty(num_classes * sub_centers, embed_dim))
        nn.init.xavier_normal_(self.weight)

    @classmethod
    def from_config(cls, cfg: MarginConfig, embed_dim: int, num_classes: int) -> AAMSoftmax:
        """Build from a :class:`~dino_speech.config.MarginConfig` (margin at its final value)."""
        return cls(
            embed_dim,
            num_classes,
            margin=cfg.margin,
            scale=cfg.scale,
            sub_centers=cfg.sub_centers,
            easy_margin=cfg.easy_margin,
        )

    def set_margin(self, margin: float) -> None:
        """Change the margin ``m`` (radians, ``0 <= m < pi``)."""
        if not 0.0 <= margin < math.pi:
            raise ConfigError(f"AAM margin must be in [0, pi), got {margin}")
        self.margin = float(margin)

    def cosine(self, embeddings: Tensor) -> Tensor:
        """``(B, D) -> (B, C)`` float32 cosine to each class (max over its sub-centres)."""
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embed_dim:
            raise DataError(
                f"AAM softmax expects embeddings of shape (B, {self.embed_dim}), "
                f"got {tuple(embeddings.shape)}"
            )
        # In float32 even under autocast: a 0.2 rad margin on bf16 cosines is mostly noise.
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            x = F.normalize(embeddings.float(), dim=1)
            w = F.normalize(self.weight.float(), dim=1)
            cos = x @ w.t()
        if self.sub_centers > 1:
            cos = cos.view(-1, self.num_classes, self.sub_centers).amax(dim=2)
        return cos.clamp(-1.0, 1.0)

    def forward(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Mean cross-entropy of the margin logits.

        Args:
            embeddings: ``(B, D)`` (need not be normalised).
            labels: ``(B,)`` int64 class indices in ``[0, C)``.

        Returns:
            ``(loss, cosine)``: the scalar loss and the ``(B, C)`` plain cosines (no margin,
            no scale), e.g. for accuracy as ``cosine.argmax(1) == labels``.
        """
        if labels.ndim != 1 or labels.shape[0] != embeddings.shape[0]:
            raise DataError(
                f"labels must have shape ({embeddings.shape[0]},), got {tuple(labels.shape)}"
            )
        if (
            not labels.is_cuda
            and labels.numel()
            and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes)
        ):
            raise DataError(
                f"labels must be in [0, {self.num_classes}), got range "
                f"[{int(labels.min())}, {int(labels.max())}]"
            )
        cos = self.cosine(embeddings)
        target = cos.gather(1, labels[:, None])
        sin = (1.0 - target * target).clamp_min(_SIN2_EPS).sqrt()
        m = self.margin
        with_margin = target * math.cos(m) - sin * math.sin(m)  # cos(theta + m)
        if self.easy_margin:
            with_margin = torch.where(target > 0, with_margin, target)
        else:
            # theta + m > pi  <=>  cos(theta) < cos(pi - m)
            with_margin = torch.where(
                target > math.cos(math.pi - m), with_margin, target - m * math.sin(m)
            )
        logits = cos.scatter(1, labels[:, None], with_margin) * self.scale
        return F.cross_entropy(logits, labels), cos

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_classes={self.num_classes}, "
            f"margin={self.margin}, scale={self.scale}, sub_centers={self.sub_centers}, "
            f"easy_margin={self.easy_margin}"
        )


def scheduled_margin(cfg: MarginConfig, epoch: float) -> float:
    """The margin at (fractional) ``epoch``: linear from 0 to ``cfg.margin`` over
    ``cfg.margin_warmup_epochs`` epochs, then constant."""
    if cfg.margin_warmup_epochs <= 0:
        return cfg.margin
    return cfg.margin * min(1.0, max(0.0, epoch) / cfg.margin_warmup_epochs)
