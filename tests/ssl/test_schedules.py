"""Per-iteration schedules."""

from __future__ import annotations

import math

import pytest

from dino_speech.config import DinoConfig, OptimConfig
from dino_speech.ssl.schedules import CosineSchedule, DinoSchedules, half_cosine


def test_cosine_with_warmup() -> None:
    s = CosineSchedule(base=1.0, final=0.0, total_steps=110, warmup_steps=10)
    assert s(0) == 0.0
    assert s(5) == pytest.approx(0.5)
    assert s(10) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.5)
    assert s(110) == 0.0 and s(500) == 0.0
    values = [s(i) for i in range(10, 111)]
    assert all(a >= b for a, b in zip(values[:-1], values[1:], strict=True))


def test_momentum_schedule_matches_dino_formula() -> None:
    m = CosineSchedule(0.996, 1.0, total_steps=1000)
    for i in (0, 250, 999):
        expected = 1 - (1 - 0.996) * (math.cos(math.pi * i / 1000) + 1) / 2
        assert m(i) == pytest.approx(expected)


def test_dino_schedules_from_config() -> None:
    optim = OptimConfig(
        lr=0.005, warmup_epochs=2, min_lr=1e-6, weight_decay=0.04, weight_decay_end=0.4
    )
    dino = DinoConfig(
        teacher_temp=0.07,
        warmup_teacher_temp=0.04,
        warmup_teacher_temp_epochs=3,
        freeze_last_layer_epochs=1,
    )
    s = DinoSchedules.build(optim, dino, epochs=10, steps_per_epoch=100, total_batch_size=512)
    assert s.lr(200) == pytest.approx(0.01)  # scaled by 512 / 256
    assert s.lr(100) == pytest.approx(0.005)
    assert s.lr(1000) == pytest.approx(1e-6)
    assert s.weight_decay(0) == pytest.approx(0.04) and s.weight_decay(1000) == pytest.approx(0.4)
    assert s.teacher_temp(0) == pytest.approx(0.04)
    assert s.teacher_temp(150) == pytest.approx(0.055)
    assert s.teacher_temp(300) == s.teacher_temp(999) == pytest.approx(0.07)
    assert s.last_layer_frozen(99) and not s.last_layer_frozen(100)
    assert set(s.values(5)) == {"lr", "weight_decay", "teacher_temp", "momentum"}


def test_unscaled_lr() -> None:
    optim = OptimConfig(lr=0.2, scale_lr=False, warmup_epochs=0)
    s = DinoSchedules.build(optim, DinoConfig(), epochs=1, steps_per_epoch=10, total_batch_size=8)
    assert s.lr(0) == pytest.approx(0.2)


def test_half_cosine_endpoints_clamp_and_cosine_schedule() -> None:
    assert half_cosine(0.99, 1.0, 0.0) == 0.99
    assert half_cosine(0.99, 1.0, 1.0) == 1.0
    assert half_cosine(2.0, 0.0, -1.0) == 2.0 and half_cosine(2.0, 0.0, 3.0) == 0.0
    s = CosineSchedule(base=1.0, final=0.1, total_steps=110, warmup_steps=10)
    for step in range(10, 110):
        assert s(step) == half_cosine(1.0, 0.1, (step - 10) / 100)


def test_half_cosine_is_bit_identical_to_the_image_code_it_replaced() -> None:
    """BYOL's tau and the image learning-rate decay were written out before; same floats."""
    for base in (0.99, 0.996, 0.9):
        for i in range(101):
            progress = i / 100
            byol = 1.0 - (1.0 - base) * (math.cos(math.pi * progress) + 1.0) / 2.0
            assert half_cosine(base, 1.0, progress) == byol
    for peak in (2e-3, 0.05 * 512 / 256):
        for i in range(101):
            progress = i / 100
            lr = 0.5 * peak * (1.0 + math.cos(math.pi * progress))
            assert half_cosine(peak, 0.0, progress) == lr
