"""The one EMA of DINO's teacher and BYOL's target: parameters averaged, buffers kept or copied."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dino_speech.ssl import dino
from dino_speech.ssl.ema import ema_update


def _pair() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    student = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    with torch.no_grad():
        student[1].running_mean.fill_(2.0)
        student[1].num_batches_tracked.fill_(7)
    return teacher, student


@pytest.mark.parametrize("copy_buffers", [False, True])
def test_parameters_move_and_buffers_are_kept_or_copied(copy_buffers: bool) -> None:
    teacher, student = _pair()
    before = [p.clone() for p in teacher.parameters()]
    ema_update(teacher, student, 0.9, copy_buffers=copy_buffers)
    for b, t, s in zip(before, teacher.parameters(), student.parameters(), strict=True):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * s)
    mean, count = teacher[1].running_mean, teacher[1].num_batches_tracked
    if copy_buffers:
        torch.testing.assert_close(mean, torch.full((3,), 2.0))
        assert int(count) == 7
    else:
        torch.testing.assert_close(mean, torch.zeros(3))
        assert int(count) == 0


def test_matches_a_per_parameter_loop_exactly() -> None:
    """Bit for bit the per-parameter ``mul_(tau).add_(online, alpha=1 - tau)`` that BYOL's
    target used before it shared this function (on the CPU)."""
    teacher, student = _pair()
    reference = [p.clone() for p in teacher.parameters()]
    for t, o in zip(reference, student.parameters(), strict=True):
        t.mul_(0.996).add_(o.detach(), alpha=1.0 - 0.996)
    ema_update(teacher, student, 0.996, copy_buffers=True)
    for r, t in zip(reference, teacher.parameters(), strict=True):
        assert torch.equal(r, t)


def test_mismatched_networks_are_refused() -> None:
    with pytest.raises(ValueError, match="parameter lists"):
        ema_update(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), 0.5)
    with pytest.raises(ValueError, match="buffer lists"):
        ema_update(nn.BatchNorm1d(2), nn.LayerNorm(2), 0.5, copy_buffers=True)


def test_dino_module_reexports_it() -> None:
    assert dino.ema_update is ema_update
