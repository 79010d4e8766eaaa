"""One DINO optimisation step, shared by the trainer and ``bench/train_step.py``.

Given the step's crop views (:class:`~dino_speech.train.crop_batches.CropViews`): the teacher embeds
the global crops and the student all crops, each crop group as one batch; the loss averages the
cross-entropy over all pairs of different crops (plus, with ``dino.reg_weight``, RDINO's
variance and covariance terms of the student's global-crop embeddings); the optimiser steps
with the scheduled learning rate and weight decay (gradients clipped, per parameter as in
DINO by default; the head's last layer frozen in the first epoch); the teacher moves towards
the student (EMA) and the centre towards the teacher's batch mean (averaged over processes
under DDP).

A step whose loss or gradients are not finite changes nothing: no update, no EMA, no centre
move, and the BatchNorm statistics that its forward passes touched are put back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dino_speech.config import DinoExperimentConfig
from dino_speech.ssl.dino import (
    DinoCenter,
    MultiCropModel,
    cancel_last_layer_grads,
    dino_loss,
    ema_update,
)
from dino_speech.ssl.regularizers import variance_covariance_terms
from dino_speech.ssl.schedules import DinoSchedules
from dino_speech.train.crop_batches import CropViews
from dino_speech.train.distributed import all_reduce_mean, average_buffers
from dino_speech.train.optim import clip_gradients, make_optimizer, param_groups

__all__ = ["DinoStep", "StepOutput", "build_optimizer"]


@dataclass
class StepOutput:
    """What one step leaves for monitoring (tensors stay on the device, no sync)."""

    loss: torch.Tensor
    student_out: torch.Tensor  # (V, B, K), detached
    teacher_out: torch.Tensor  # (G, B, K)
    teacher_embeddings: torch.Tensor  # (G·B, D)
    grad_norm: torch.Tensor
    schedule: dict[str, float]
    updated: bool  # False when the loss or the gradients were not finite
    regularizer: torch.Tensor | None = None  # unweighted embedding regulariser (reg_weight > 0)


class DinoStep:
    """The update rule: student (possibly DDP-wrapped as ``model``), teacher, centre, optimiser.

    Args:
        student: the student; ``model`` is what the forward goes through (the DDP wrapper
            under ``torchrun``, else the student itself).
        distributed: average the centre's batch mean and the teacher's BatchNorm statistics
            over processes.
        autocast: bf16 autocast for the forward passes (CUDA).
    """

    def __init__(
        self,
        cfg: DinoExperimentConfig,
        student: MultiCropModel,
        teacher: MultiCropModel,
        center: DinoCenter,
        optimizer: torch.optim.Optimizer,
        schedules: DinoSchedules,
        *,
        model: nn.Module | None = None,
        distributed: bool = False,
        autocast: bool = False,
    ) -> None:
        self.cfg = cfg
        self.student, self.teacher, self.center = student, teacher, center
        self.model = model if model is not None else student
        self.optimizer = optimizer
        self.schedules = schedules
        self.distributed = distributed
        self.autocast = autocast

    def __call__(self, views: CropViews, step: int) -> StepOutput:
        cfg = self.cfg
        sched = self.schedules.values(step)
        for group in self.optimizer.param_groups:
            group["lr"] = sched["lr"]
            if group.get("regularised", True):
                group["weight_decay"] = sched["weight_decay"]
        device_type = views.teacher[0].device.type
        buffers = [b for m in (self.student, self.teacher) for b in m.buffers()]
        saved = [b.clone() for b in buffers]
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.autocast):
            with torch.no_grad():
                t_logits, t_emb = self.teacher([views.teacher])
            s_logits, s_emb = self.model(views.student)
        t_out = t_logits.float().view(views.num_global, views.batch_size, -1)
        s_out = s_logits.float().view(-1, views.batch_size, t_out.shape[-1])
        loss = dino_loss(
            s_out,
            t_out,
            self.center.center,
            student_temp=cfg.dino.student_temp,
            teacher_temp=sched["teacher_temp"],
        )
        regularizer = self._regularizer(s_emb, views)
        if regularizer is not None:
            loss = loss + cfg.dino.reg_weight * regularizer
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = clip_gradients(
            self.student.parameters(), cfg.optim.clip_grad, cfg.optim.clip_mode
        )
        # Under DDP the gradients (hence their norm) are already the same on every process,
        # so every process takes the same decision here. A non-finite loss gives non-finite
        # gradients.
        updated = bool(torch.isfinite(grad_norm))
        if updated:
            if self.schedules.last_layer_frozen(step):
                cancel_last_layer_grads(self.student)
            self.optimizer.step()
            ema_update(self.teacher, self.student, sched["momentum"])
            if self.distributed:
                average_buffers(self.teacher)
            self.center.update(t_out, reduce=all_reduce_mean if self.distributed else None)
        else:
            torch._foreach_copy_(buffers, saved)
        return StepOutput(
            loss.detach(),
            s_out.detach(),
            t_out,
            t_emb,
            grad_norm,
            sched,
            updated,
            None if regularizer is None else regularizer.detach(),
        )

    def _regularizer(self, s_emb: torch.Tensor, views: CropViews) -> torch.Tensor | None:
        """RDINO's variance + covariance terms of the student's global-crop embeddings, each
        crop's batch on its own, averaged over the global crops (None when off)."""
        dc = self.cfg.dino
        if dc.reg_weight <= 0:
            return None
        g, b = views.num_global, views.batch_size
        total = s_emb.new_zeros((), dtype=torch.float32)
        for z in s_emb[: g * b].float().view(g, b, -1):
            variance, covariance = variance_covariance_terms(z)
            total = total + dc.reg_std_coeff * variance + dc.reg_cov_coeff * covariance
        return total / g


def build_optimizer(model: nn.Module, cfg: DinoExperimentConfig) -> torch.optim.Optimizer:
    """``cfg.optim``'s optimiser over ``model`` (see :func:`~dino_speech.train.optim.param_groups`;
    the step sets the scheduled weight decay on the ``regularised`` group)."""
    oc = cfg.optim
    groups = param_groups(model, oc.weight_decay)
    return make_optimizer(
        oc.name, groups, lr=oc.lr, betas=oc.betas, amsgrad=oc.amsgrad, momentum=oc.momentum
    )
