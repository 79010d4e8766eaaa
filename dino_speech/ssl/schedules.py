"""Per-iteration schedules of DINO training: learning rate, weight decay, teacher temperature
and teacher momentum.

Each schedule is a pure function of the global step, so a resumed run needs only the step to be
back on the same curve (no schedule state is saved beyond it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dino_speech.config import DinoConfig, OptimConfig

__all__ = ["CosineSchedule", "DinoSchedules", "half_cosine"]


def half_cosine(start: float, end: float, progress: float) -> float:
    """``start`` at ``progress`` 0 to ``end`` at 1 on a half cosine (``progress`` clamped to
    [0, 1]): ``end + (start - end) (1 + cos(pi progress)) / 2``."""
    progress = min(max(progress, 0.0), 1.0)
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class CosineSchedule:
    """Linear warm-up from ``warmup_start`` to ``base`` over ``warmup_steps``, then a half cosine
    from ``base`` to ``final`` ending at ``total_steps``; ``final`` afterwards.

    With ``base == final`` it is a linear warm-up followed by a constant (the teacher
    temperature); with ``warmup_steps == 0`` a plain cosine (weight decay, teacher momentum).
    """

    base: float
    final: float
    total_steps: int
    warmup_steps: int = 0
    warmup_start: float = 0.0

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_start + (self.base - self.warmup_start) * step / self.warmup_steps
        span = self.total_steps - self.warmup_steps
        if span <= 0 or step >= self.total_steps:
            return self.final
        return half_cosine(self.base, self.final, (step - self.warmup_steps) / span)


@dataclass(frozen=True)
class DinoSchedules:
    """All schedules of one run, built from the configs and the run's length."""

    lr: CosineSchedule
    weight_decay: CosineSchedule
    teacher_temp: CosineSchedule
    momentum: CosineSchedule
    freeze_last_layer_steps: int
    steps_per_epoch: int

    @classmethod
    def build(
        cls,
        optim: OptimConfig,
        dino: DinoConfig,
        *,
        epochs: int,
        steps_per_epoch: int,
        total_batch_size: int,
        total_steps: int | None = None,
    ) -> DinoSchedules:
        """``total_batch_size`` is summed over processes; it scales ``optim.lr`` when
        ``optim.scale_lr`` (the linear scaling rule, ``lr × batch / 256``). ``total_steps``
        (default ``epochs × steps_per_epoch``) is where the cosine schedules end, e.g. the
        steps a time budget allows; warm-ups stay in epochs."""
        total = max(1, epochs * steps_per_epoch if total_steps is None else total_steps)
        peak = optim.lr * total_batch_size / 256 if optim.scale_lr else optim.lr

        def steps(epochs_: float) -> int:
            return min(total, round(epochs_ * steps_per_epoch))

        return cls(
            lr=CosineSchedule(peak, optim.min_lr, total, steps(optim.warmup_epochs)),
            weight_decay=CosineSchedule(optim.weight_decay, optim.weight_decay_end, total),
            teacher_temp=CosineSchedule(
                dino.teacher_temp,
                dino.teacher_temp,
                total,
                steps(dino.warmup_teacher_temp_epochs),
                dino.warmup_teacher_temp,
            ),
            momentum=CosineSchedule(dino.teacher_momentum, dino.teacher_momentum_final, total),
            freeze_last_layer_steps=steps(dino.freeze_last_layer_epochs),
            steps_per_epoch=steps_per_epoch,
        )

    def values(self, step: int) -> dict[str, float]:
        """All scheduled values at ``step`` (for logging)."""
        return {
            "lr": self.lr(step),
            "weight_decay": self.weight_decay(step),
            "teacher_temp": self.teacher_temp(step),
            "momentum": self.momentum(step),
        }

    def last_layer_frozen(self, step: int) -> bool:
        """True while the head's last layer gets no updates (the first epoch(s))."""
        return step < self.freeze_last_layer_steps
