"""The exponential moving average of one network's parameters towards another's.

DINO's teacher and BYOL's target network both follow their online network this way; the one
difference, what happens to buffers (BatchNorm statistics), is the ``copy_buffers`` argument.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ema_update"]


@torch.no_grad()
def ema_update(
    teacher: nn.Module, student: nn.Module, momentum: float, *, copy_buffers: bool = False
) -> None:
    """``teacher ← momentum · teacher + (1 − momentum) · student``, parameter by parameter.

    Buffers are not averaged. By default the teacher keeps its own (DINO: the BatchNorm
    statistics gathered on the global crops the teacher sees); ``copy_buffers=True`` copies the
    student's into it (BYOL's target network, as in its reference code).
    """
    t_params = list(teacher.parameters())
    s_params = [p.detach() for p in student.parameters()]
    if len(t_params) != len(s_params):
        raise ValueError("teacher and student have different parameter lists")
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, s_params, alpha=1.0 - momentum)
    if copy_buffers:
        t_buffers, s_buffers = list(teacher.buffers()), list(student.buffers())
        if len(t_buffers) != len(s_buffers):
            raise ValueError("teacher and student have different buffer lists")
        for t, s in zip(t_buffers, s_buffers, strict=True):
            t.copy_(s)
