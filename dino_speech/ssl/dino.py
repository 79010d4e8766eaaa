"""DINO: projection head, multi-crop forward, centred and sharpened cross-entropy, teacher EMA.

Self-distillation with no labels (Caron et al. 2021), as applied to utterance embeddings by
Cho et al. 2022: a student (encoder + head) sees every crop of an utterance, a teacher (an
exponential moving average of the student) sees only the global crops, and the student learns
to match the teacher's centred, sharpened distribution over ``K`` prototypes for every pair of
different crops. Everything here runs in one process; the only cross-process step, the batch
mean entering the centre, is an explicit optional ``reduce`` argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dino_speech.config import DinoConfig
from dino_speech.data.views import Crop
from dino_speech.ssl.ema import ema_update

__all__ = [
    "DinoCenter",
    "DinoHead",
    "MultiCropModel",
    "WeightNormLinear",
    "build_dino_head",
    "cancel_last_layer_grads",
    "dino_loss",
    "dino_statistics",
    "ema_update",
]


class WeightNormLinear(nn.Module):
    """Bias-free linear layer whose rows are unit-norm directions times a scale.

    ``W = g * V / ||V||_row``. With ``learn_scale=False`` the scale is fixed at 1 (DINO's
    ``norm_last_layer``, which stabilises training). Written out rather than using
    ``torch.nn.utils.parametrizations.weight_norm`` so that the parameters are plain tensors:
    deepcopy, the teacher EMA, ``state_dict`` and export need no special handling.
    """

    def __init__(self, in_features: int, out_features: int, learn_scale: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's default
        self.scale = nn.Parameter(torch.ones(out_features, 1)) if learn_scale else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = F.normalize(self.weight, dim=1)
        if self.scale is not None:
            weight = weight * self.scale
        return F.linear(x, weight)


class DinoHead(nn.Module):
    """MLP → L2-normalised bottleneck → weight-normalised linear layer to ``out_dim`` logits.

    ``num_layers`` counts the linear layers of the MLP (the last one maps to the bottleneck);
    hidden layers are Linear [+ BatchNorm] + GELU.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 65536,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        num_layers: int = 3,
        use_bn: bool = False,
        norm_last_layer: bool = True,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(dim, hidden_dim))
            if use_bn:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.GELU())
            dim = hidden_dim
        layers.append(nn.Linear(dim, bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        for module in self.mlp.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        self.last_layer = WeightNormLinear(bottleneck_dim, out_dim, learn_scale=not norm_last_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_dim)`` → ``(N, out_dim)`` float32 logits.

        The L2 normalisation and the last layer run in float32 even under autocast: the logits
        are cosines that the loss divides by a teacher temperature of about 0.04, which would
        magnify bf16's rounding (up to 2^-9 of the value) 25-fold in the teacher's targets.
        """
        z = self.mlp(x)
        with torch.autocast(z.device.type, enabled=False):
            return self.last_layer(F.normalize(z.float(), dim=-1))


def build_dino_head(in_dim: int, cfg: DinoConfig) -> DinoHead:
    """The head described by ``cfg`` on top of an ``in_dim``-dimensional encoder."""
    return DinoHead(
        in_dim,
        out_dim=cfg.out_dim,
        hidden_dim=cfg.hidden_dim,
        bottleneck_dim=cfg.bottleneck_dim,
        num_layers=cfg.num_layers,
        use_bn=cfg.use_bn,
        norm_last_layer=cfg.norm_last_layer,
    )


class MultiCropModel(nn.Module):
    """Encoder (``backbone``) + head over groups of same-length crops.

    Each group (all global crops, all local crops) goes through the backbone as one batch; the
    head then runs once on all embeddings. One ``forward`` per step keeps DDP's gradient
    reduction to one pass.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, crops: Sequence[Crop]) -> tuple[torch.Tensor, torch.Tensor]:
        """``crops``: groups ``(feats (N_g, T_g, F), lengths (N_g,) | None)``.

        Returns:
            ``logits (ΣN_g, K)`` and backbone ``embeddings (ΣN_g, D)``, groups in order.
        """
        embeddings = torch.cat([self.backbone(feats, lengths) for feats, lengths in crops])
        return self.head(embeddings), embeddings


def dino_loss(
    student_out: torch.Tensor,
    teacher_out: torch.Tensor,
    center: torch.Tensor,
    *,
    student_temp: float,
    teacher_temp: float,
) -> torch.Tensor:
    """DINO cross-entropy averaged over all (teacher crop, different student crop) pairs.

    Args:
        student_out: ``(V, B, K)`` student logits for ``V`` crops of ``B`` utterances; the
            first ``G`` crops are the global crops, in the teacher's order.
        teacher_out: ``(G, B, K)`` teacher logits for the global crops (no gradient needed).
        center: ``(K,)`` running centre of the teacher logits.
        student_temp, teacher_temp: softmax temperatures (teacher < student sharpens).

    Returns:
        Scalar ``mean over pairs (i, v), v != i, of mean_b H(p_t[i, b], p_s[v, b])`` with
        ``p_t = softmax((teacher - center) / teacher_temp)`` and
        ``p_s = softmax(student / student_temp)``; computed in float32.
    """
    num_teacher, batch, k = teacher_out.shape
    num_student = student_out.shape[0]
    if student_out.shape[1:] != (batch, k):
        raise ValueError(
            f"student_out {tuple(student_out.shape)} does not match teacher_out "
            f"{tuple(teacher_out.shape)} in batch and K"
        )
    log_q = F.log_softmax(student_out.float() / student_temp, dim=-1)
    p = F.softmax((teacher_out.detach().float() - center.float()) / teacher_temp, dim=-1)
    # ce[i, v] = -1/B Σ_b Σ_k p[i, b, k] log q[v, b, k]; one matmul over the flattened (b, k).
    ce = -(p.reshape(num_teacher, -1) @ log_q.reshape(num_student, -1).T) / batch
    same = min(num_teacher, num_student)
    pairs = num_teacher * num_student - same
    if pairs == 0:
        raise ValueError("DINO needs at least one student crop that differs from a teacher crop")
    return (ce.sum() - ce.diagonal()[:same].sum()) / pairs


@torch.no_grad()
def dino_statistics(
    student_out: torch.Tensor,
    teacher_out: torch.Tensor,
    center: torch.Tensor,
    *,
    student_temp: float,
    teacher_temp: float,
) -> dict[str, torch.Tensor]:
    """Collapse diagnostics, shapes as in :func:`dino_loss` (0-dim tensors, float32).

    - ``teacher_entropy``: mean entropy of the per-utterance teacher distributions
      (→ 0: one-hot; → log K: uniform collapse).
    - ``teacher_marginal_entropy``: entropy of the batch-averaged teacher distribution
      (→ 0: every utterance picks the same prototype).
    - ``kl``: mean KL(teacher ‖ student) over the loss's crop pairs.
    """
    p = F.softmax((teacher_out.float() - center.float()) / teacher_temp, dim=-1)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum(-1)  # (G, B)
    marginal = p.mean(dim=(0, 1))
    marginal_entropy = -(marginal * torch.log(marginal.clamp_min(1e-12))).sum()
    ce = dino_loss(
        student_out, teacher_out, center, student_temp=student_temp, teacher_temp=teacher_temp
    )
    # Every teacher crop meets the same number of student crops, so the pair-mean of the
    # teacher entropy is its plain mean.
    return {
        "teacher_entropy": entropy.mean(),
        "teacher_marginal_entropy": marginal_entropy,
        "kl": ce - entropy.mean(),
    }


class DinoCenter(nn.Module):
    """The running centre of the teacher logits (a buffer, saved with the checkpoint)."""

    center: torch.Tensor

    def __init__(self, out_dim: int, momentum: float = 0.9) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("center", torch.zeros(out_dim))

    @torch.no_grad()
    def update(
        self,
        teacher_out: torch.Tensor,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        """EMA towards the batch mean of ``teacher_out (..., K)``.

        ``reduce`` turns this process's batch mean into the mean over all processes (e.g.
        ``dino_speech.train.distributed.all_reduce_mean``); None in a single process.
        """
        batch_center = teacher_out.detach().float().reshape(-1, teacher_out.shape[-1]).mean(0)
        if reduce is not None:
            batch_center = reduce(batch_center)
        self.center.mul_(self.momentum).add_(batch_center, alpha=1.0 - self.momentum)


def cancel_last_layer_grads(model: nn.Module) -> None:
    """Drop the gradients of the head's last layer (DINO freezes it in the first epoch)."""
    for name, param in model.named_parameters():
        if ".last_layer." in f".{name}":
            param.grad = None
