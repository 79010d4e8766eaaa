"""One DINO step: updates, frozen last layer, skipped non-finite steps."""

from __future__ import annotations

import copy

import torch

from dino_speech.config import DinoExperimentConfig, apply_overrides
from dino_speech.models.registry import build_encoder
from dino_speech.ssl.dino import DinoCenter, MultiCropModel, build_dino_head
from dino_speech.ssl.schedules import DinoSchedules
from dino_speech.train.crop_batches import CropViews
from dino_speech.train.step import DinoStep, build_optimizer


def make_step(overrides: list[str]) -> DinoStep:
    cfg = apply_overrides(
        DinoExperimentConfig(),
        [
            "model.name=resnet_tiny",
            "dino.out_dim=32",
            "dino.hidden_dim=16",
            "dino.bottleneck_dim=8",
            "optim.warmup_epochs=0",
            "optim.scale_lr=false",
            "optim.lr=0.01",
            *overrides,
        ],
    )
    torch.manual_seed(0)
    backbone = build_encoder("resnet_tiny", feat_dim=16, base_channels=4, embed_dim=8)
    student = MultiCropModel(backbone, build_dino_head(8, cfg.dino))
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    schedules = DinoSchedules.build(
        cfg.optim, cfg.dino, epochs=2, steps_per_epoch=5, total_batch_size=4
    )
    return DinoStep(cfg, student, teacher, DinoCenter(32), build_optimizer(student, cfg), schedules)


def views(fill: float | None = None) -> CropViews:
    g = torch.randn(2 * 4, 30, 16)
    loc = torch.randn(3 * 4, 12, 16)
    if fill is not None:
        g.fill_(fill)
    return CropViews((g, None), [(g.clone(), None), (loc, None)], 2, 4)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_step_updates_student_teacher_and_centre() -> None:
    step = make_step(["dino.freeze_last_layer_epochs=0"])
    s0, t0 = snapshot(step.student), snapshot(step.teacher)
    out = step(views(), 0)
    assert out.updated and torch.isfinite(out.loss)
    assert out.student_out.shape == (5, 4, 32) and out.teacher_out.shape == (2, 4, 32)
    key = "head.last_layer.weight"
    assert not torch.equal(step.student.state_dict()[key], s0[key])
    assert not torch.equal(step.teacher.state_dict()[key], t0[key])
    assert step.center.center.abs().sum() > 0
    # Weight decay is scheduled on the regularised group only.
    groups = step.optimizer.param_groups
    assert groups[0]["weight_decay"] == step.schedules.weight_decay(0)
    assert groups[1]["weight_decay"] == 0.0


def test_last_layer_frozen_during_first_epoch() -> None:
    step = make_step(["dino.freeze_last_layer_epochs=1"])
    before = step.student.head.last_layer.weight.clone()
    for i in range(5):
        step(views(), i)
    torch.testing.assert_close(step.student.head.last_layer.weight, before)
    step(views(), 5)
    assert not torch.equal(step.student.head.last_layer.weight, before)


def test_non_finite_step_changes_nothing() -> None:
    step = make_step([])
    s0, t0 = snapshot(step.student), snapshot(step.teacher)
    c0 = step.center.center.clone()
    out = step(views(fill=float("nan")), 0)
    assert not out.updated
    # BatchNorm statistics included: the NaN forward passes must not poison the teacher.
    for model, before in ((step.student, s0), (step.teacher, t0)):
        for key, value in model.state_dict().items():
            torch.testing.assert_close(value, before[key], msg=key)
    torch.testing.assert_close(step.center.center, c0)
    assert step(views(), 1).updated  # and the next step trains normally


def test_gradient_clipping_modes() -> None:
    # A tiny clip shows which rule ran: per parameter every gradient ends at norm <= clip;
    # globally the norm of all gradients together does.
    for mode in ("per_param", "global"):
        step = make_step(["optim.clip_grad=0.001", f"optim.clip_mode={mode}", "optim.name=sgd"])
        step(views(), 0)
        norms = [p.grad.norm() for p in step.student.parameters() if p.grad is not None]
        total = torch.linalg.vector_norm(torch.stack(norms))
        if mode == "per_param":
            assert max(norms) <= 1e-3 * (1 + 1e-4) and total > 2e-3
        else:
            assert total <= 1e-3 * (1 + 1e-4)


def test_embedding_regulariser_adds_to_the_loss() -> None:
    plain = make_step(["dino.freeze_last_layer_epochs=0"])
    reg = make_step(["dino.freeze_last_layer_epochs=0", "dino.reg_weight=0.5"])
    torch.manual_seed(1)
    batch = views()
    out_plain, out_reg = plain(batch, 0), reg(batch, 0)
    assert out_plain.regularizer is None
    assert out_reg.regularizer is not None and float(out_reg.regularizer) > 0
    # Same initial weights and inputs: the DINO part is the same, the regulariser adds on.
    torch.testing.assert_close(out_reg.loss, out_plain.loss + 0.5 * out_reg.regularizer)
    # It changes what the student learns.
    key = "backbone.stem.0.weight"
    assert key in plain.student.state_dict()
    assert not torch.equal(plain.student.state_dict()[key], reg.student.state_dict()[key])
