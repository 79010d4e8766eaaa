"""DINO head, loss (parity with the formula written out), centre, teacher EMA."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from dino_speech.config import DinoConfig
from dino_speech.ssl.dino import (
    DinoCenter,
    DinoHead,
    MultiCropModel,
    WeightNormLinear,
    build_dino_head,
    cancel_last_layer_grads,
    dino_loss,
    dino_statistics,
    ema_update,
)


def reference_dino_loss(
    student: torch.Tensor, teacher: torch.Tensor, center: torch.Tensor, st: float, tt: float
) -> float:
    """The DINO objective written out with explicit loops, in float64."""
    num_student, batch, k = student.shape
    total, pairs = 0.0, 0
    for i in range(teacher.shape[0]):
        for v in range(num_student):
            if v == i:
                continue
            pair = 0.0
            for b in range(batch):
                t_logits = [(float(teacher[i, b, j]) - float(center[j])) / tt for j in range(k)]
                s_logits = [float(student[v, b, j]) / st for j in range(k)]
                t_max, s_max = max(t_logits), max(s_logits)
                t_norm = sum(math.exp(x - t_max) for x in t_logits)
                s_lse = s_max + math.log(sum(math.exp(x - s_max) for x in s_logits))
                for j in range(k):
                    p = math.exp(t_logits[j] - t_max) / t_norm
                    pair -= p * (s_logits[j] - s_lse)
            total += pair / batch
            pairs += 1
    return total / pairs


@pytest.mark.parametrize(("num_global", "num_local"), [(2, 4), (2, 0), (3, 1)])
def test_loss_matches_the_formula(num_global: int, num_local: int) -> None:
    gen = torch.Generator().manual_seed(num_global * 10 + num_local)
    batch, k = 3, 7
    student = torch.randn(num_global + num_local, batch, k, generator=gen) * 2
    teacher = torch.randn(num_global, batch, k, generator=gen) * 2
    center = torch.randn(k, generator=gen) * 0.3
    ours = dino_loss(student, teacher, center, student_temp=0.1, teacher_temp=0.04)
    ref = reference_dino_loss(student, teacher, center, 0.1, 0.04)
    assert float(ours) == pytest.approx(ref, rel=1e-5)


def test_loss_gradient_flows_to_student_only() -> None:
    student = torch.randn(4, 2, 5, requires_grad=True)
    teacher = torch.randn(2, 2, 5, requires_grad=True)
    dino_loss(student, teacher, torch.zeros(5), student_temp=0.1, teacher_temp=0.05).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_loss_rejects_mismatched_shapes_and_no_pairs() -> None:
    with pytest.raises(ValueError, match="does not match"):
        dino_loss(
            torch.randn(3, 2, 5),
            torch.randn(2, 4, 5),
            torch.zeros(5),
            student_temp=0.1,
            teacher_temp=0.04,
        )
    with pytest.raises(ValueError, match="at least one"):
        dino_loss(
            torch.randn(1, 2, 5),
            torch.randn(1, 2, 5),
            torch.zeros(5),
            student_temp=0.1,
            teacher_temp=0.04,
        )


def test_statistics_detect_uniform_and_one_hot_teachers() -> None:
    k = 64
    student = torch.randn(4, 8, k)
    uniform = dino_statistics(
        student, torch.zeros(2, 8, k), torch.zeros(k), student_temp=0.1, teacher_temp=0.04
    )
    assert float(uniform["teacher_entropy"]) == pytest.approx(math.log(k), rel=1e-5)
    one_hot = torch.zeros(2, 8, k)
    one_hot[..., 3] = 10.0
    peaked = dino_statistics(student, one_hot, torch.zeros(k), student_temp=0.1, teacher_temp=0.04)
    assert float(peaked["teacher_entropy"]) < 1e-3
    assert float(peaked["teacher_marginal_entropy"]) < 1e-3
    assert float(peaked["kl"]) > 0


def test_kl_is_zero_when_student_equals_teacher_everywhere() -> None:
    logits = torch.randn(1, 4, 10).expand(3, 4, 10)
    stats = dino_statistics(
        logits * 2.0, logits, torch.zeros(10), student_temp=0.1, teacher_temp=0.05
    )
    assert float(stats["kl"]) == pytest.approx(0.0, abs=1e-5)


def test_center_ema_and_explicit_reduce() -> None:
    center = DinoCenter(4, momentum=0.9)
    out = torch.arange(8.0).reshape(2, 1, 4)  # batch mean [2, 3, 4, 5]
    center.update(out)
    torch.testing.assert_close(center.center, 0.1 * torch.tensor([2.0, 3.0, 4.0, 5.0]))
    seen = []

    def reduce(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        return torch.zeros_like(x)

    center.update(out, reduce=reduce)
    assert len(seen) == 1
    torch.testing.assert_close(center.center, 0.09 * torch.tensor([2.0, 3.0, 4.0, 5.0]))


def test_head_shapes_normalisation_and_frozen_scale() -> None:
    head = DinoHead(16, out_dim=50, hidden_dim=32, bottleneck_dim=8, use_bn=True)
    assert head(torch.randn(5, 16)).shape == (5, 50)
    assert head.last_layer.scale is None
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in head.modules()) == 2
    # The logits are cosines between the bottleneck and unit prototype vectors.
    assert head.eval()(torch.randn(5, 16)).abs().max() <= 1.0 + 1e-5
    free = WeightNormLinear(8, 3, learn_scale=True)
    free.scale.data.fill_(2.0)
    x = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    assert free(x).abs().max() <= 2.0 + 1e-5
    weight = torch.nn.functional.normalize(free.weight, dim=1) * 2.0
    torch.testing.assert_close(free(x), x @ weight.T)


def test_build_head_from_config() -> None:
    cfg = DinoConfig(
        out_dim=100, hidden_dim=64, bottleneck_dim=16, num_layers=2, norm_last_layer=False
    )
    head = build_dino_head(12, cfg)
    assert head(torch.randn(3, 12)).shape == (3, 100)
    assert head.last_layer.scale is not None
    assert sum(isinstance(m, torch.nn.Linear) for m in head.modules()) == 2


class _MeanEncoder(torch.nn.Module):
    embed_dim = 6

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(4, 6)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.proj(feats.mean(1))


def test_multicrop_forward_groups_and_order() -> None:
    model = MultiCropModel(_MeanEncoder(), DinoHead(6, 20, 16, 8))
    g, loc = torch.randn(4, 30, 4), torch.randn(6, 10, 4)
    logits, emb = model([(g, None), (loc, None)])
    assert logits.shape == (10, 20) and emb.shape == (10, 6)
    torch.testing.assert_close(emb[:4], model.backbone(g))
    torch.testing.assert_close(logits[4:], model.head(model.backbone(loc)))


def test_ema_update_and_teacher_independence() -> None:
    student = MultiCropModel(_MeanEncoder(), DinoHead(6, 20, 16, 8))
    teacher = copy.deepcopy(student)
    before = [p.clone() for p in teacher.parameters()]
    for p in student.parameters():
        p.data.add_(1.0)
    ema_update(teacher, student, 0.75)
    for b, t, s in zip(before, teacher.parameters(), student.parameters(), strict=True):
        torch.testing.assert_close(t, 0.75 * b + 0.25 * s)
    ema_update(teacher, student, 1.0)
    for b, t, s in zip(before, teacher.parameters(), student.parameters(), strict=True):
        torch.testing.assert_close(t, 0.75 * b + 0.25 * s)


def test_cancel_last_layer_grads() -> None:
    model = MultiCropModel(_MeanEncoder(), DinoHead(6, 20, 16, 8))
    logits, _ = model([(torch.randn(2, 5, 4), None)])
    logits.sum().backward()
    cancel_last_layer_grads(model)
    assert model.head.last_layer.weight.grad is None
    assert model.backbone.proj.weight.grad is not None


def test_head_logits_are_float32_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    head = DinoHead(16, out_dim=300, hidden_dim=32, bottleneck_dim=8)
    x = torch.randn(6, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = head(x)
        z = head.mlp(x)  # the MLP itself runs in bf16
    assert z.dtype == torch.bfloat16 and logits.dtype == torch.float32
    # The last layer sees the bf16 bottleneck but computes in float32: no bf16 rounding of
    # the logits, which the teacher temperature would magnify.
    expected = head.last_layer(torch.nn.functional.normalize(z.float(), dim=-1))
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-6)
    assert not torch.equal(logits, logits.bfloat16().float())
