"""Optimisation pieces shared by DINO training and margin fine-tuning.

* :func:`param_groups`: weight decay on weight matrices only, never on biases or on the
  one-dimensional parameters of normalisation layers (as DINO and WeSpeaker do);
* :func:`make_optimizer`: SGD with momentum, Adam or AdamW over those groups;
* :func:`clip_gradients`: clipping by the global norm (``clip_grad_norm_``) or each parameter's
  gradient on its own (DINO's ``clip_gradients``), returning the global norm either way, which
  also tells whether the step's gradients are finite.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import nn

from dino_speech.errors import ConfigError

__all__ = ["ClipMode", "clip_gradients", "make_optimizer", "param_groups"]

ClipMode = Literal["global", "per_param"]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """The trainable parameters of ``model`` in two groups.

    Group 0 (``"regularised": True``) holds the weight matrices and gets ``weight_decay``;
    group 1 holds biases and one-dimensional parameters (normalisation scales and shifts) and
    gets none. Parameters with ``requires_grad=False`` are left out.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay, "regularised": True},
        {"params": no_decay, "weight_decay": 0.0, "regularised": False},
    ]


def make_optimizer(
    name: str,
    groups: list[dict[str, Any]],
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    amsgrad: bool = False,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """``"sgd"`` (with ``momentum``), ``"adam"`` or ``"adamw"`` (with ``betas``, ``amsgrad``)
    over ``groups``; each group's own ``weight_decay`` applies (L2 for SGD and Adam,
    decoupled for AdamW)."""
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    if name in ("adam", "adamw"):
        cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
        return cls(groups, lr=lr, betas=betas, amsgrad=amsgrad)
    raise ConfigError(f"unknown optimiser '{name}'; valid: adam, adamw, sgd")


@torch.no_grad()
def clip_gradients(
    params: Iterable[torch.Tensor], max_norm: float, mode: ClipMode = "global"
) -> torch.Tensor:
    """Clip the gradients of ``params`` in place; returns their global L2 norm before clipping.

    Args:
        params: parameters; those without a gradient are ignored.
        max_norm: the largest norm allowed; ``<= 0`` only measures.
        mode: ``"global"`` scales all gradients by ``min(1, max_norm / global norm)``;
            ``"per_param"`` scales each parameter's gradient by
            ``min(1, max_norm / (its norm + 1e-6))`` (DINO, WeSpeaker).

    Returns:
        0-dim float32 tensor on the gradients' device, non-finite when any gradient is.
    """
    if mode not in ("global", "per_param"):
        raise ConfigError(f"unknown gradient clipping mode '{mode}'; valid: global, per_param")
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norms = torch._foreach_norm(grads)
    total = torch.linalg.vector_norm(torch.stack([n.float() for n in norms]))
    if max_norm > 0:
        if mode == "global":
            coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
            torch._foreach_mul_(grads, coef)
        else:
            coefs = [(max_norm / (n.float() + 1e-6)).clamp(max=1.0).to(n.dtype) for n in norms]
            torch._foreach_mul_(grads, coefs)
    return total
