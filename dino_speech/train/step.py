"""One DINO optimisation step, shared by the trainer and ``bench/train_step.py``.

Given the step's crop views (:class:`~dino_speech.train.data.DinoViews`): the teacher embeds
the global crops and the student all crops, each crop group as one batch; the loss averages the
cross-entropy over all pairs of different crops; the optimiser steps with the scheduled
learning rate and weight decay (the head's last layer frozen in the first epoch, gradients
clipped by global norm); the teacher moves towards the student (EMA) and the centre towards the
teacher's batch mean (averaged over processes under DDP).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

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
from dino_speech.ssl.schedules import DinoSchedules
from dino_speech.train.data import DinoViews
from dino_speech.train.distributed import all_reduce_mean, average_buffers

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

    def __call__(self, views: DinoViews, step: int) -> StepOutput:
        cfg = self.cfg
        sched = self.schedules.values(step)
        for group in self.optimizer.param_groups:
            group["lr"] = sched["lr"]
            if group.get("regularised", True):
                group["weight_decay"] = sched["weight_decay"]
        device_type = views.teacher[0].device.type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.autocast):
            with torch.no_grad():
                t_logits, t_emb = self.teacher([views.teacher])
            s_logits, _ = self.model(views.student)
        t_out = t_logits.float().view(views.num_global, views.batch_size, -1)
        s_out = s_logits.float().view(-1, views.batch_size, t_out.shape[-1])
        loss = dino_loss(
            s_out,
            t_out,
            self.center.center,
            student_temp=cfg.dino.student_temp,
            teacher_temp=sched["teacher_temp"],
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = cfg.optim.clip_grad if cfg.optim.clip_grad > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.student.parameters(), clip)
        # Under DDP the gradients (hence their norm) are already the same on every process,
        # so every process takes the same decision here. A non-finite loss gives non-finite
        # gradients. A skipped step leaves student, teacher and centre as they were.
        updated = bool(torch.isfinite(grad_norm))
        if updated:
            if self.schedules.last_layer_frozen(step):
                cancel_last_layer_grads(self.student)
            self.optimizer.step()
            ema_update(self.teacher, self.student, sched["momentum"])
            if self.distributed:
                average_buffers(self.teacher)
            self.center.update(t_out, reduce=all_reduce_mean if self.distributed else None)
        return StepOutput(loss.detach(), s_out.detach(), t_out, t_emb, grad_norm, sched, updated)


def build_optimizer(model: nn.Module, cfg: DinoExperimentConfig) -> torch.optim.Optimizer:
    """Adam(W)/SGD with weight decay on weight matrices only (not biases or norm parameters);
    the scheduled weight decay is set on the ``regularised`` group each step."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    groups: list[dict[str, Any]] = [
        {"params": decay, "regularised": True},
        {"params": no_decay, "regularised": False, "weight_decay": 0.0},
    ]
    oc = cfg.optim
    if oc.name == "sgd":
        return torch.optim.SGD(groups, lr=oc.lr, momentum=oc.momentum, weight_decay=0.0)
    cls = torch.optim.AdamW if oc.name == "adamw" else torch.optim.Adam
    return cls(groups, lr=oc.lr, betas=oc.betas, amsgrad=oc.amsgrad, weight_decay=0.0)
