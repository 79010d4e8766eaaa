"""The four methods on tiny heads, BYOL's EMA, and the backbones."""

from __future__ import annotations

import pytest
import torch

from dino_speech.errors import ConfigError
from dino_speech.image.backbones import ResNet18CIFAR, SmallCNN, build_backbone
from dino_speech.image.heads import build_predictor
from dino_speech.image.methods import (
    BYOL,
    METHODS,
    HeadDims,
    build_method,
    head_dims,
)
from dino_speech.ssl.ema import ema_update
from dino_speech.ssl.schedules import half_cosine

TINY = {
    "byol": HeadDims(2, 32, 16, 32),
    "simsiam": HeadDims(3, 32, 16, 8),
    "barlow": HeadDims(3, 32, 32),
    "vicreg": HeadDims(3, 32, 32),
}


def _views(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(n, 1, 8, 8), torch.randn(n, 1, 8, 8)


@pytest.mark.parametrize("name", METHODS)
def test_method_forward_backward(name: str) -> None:
    method = build_method(name, SmallCNN(1, width=8), dims=TINY[name])
    out = method(*_views())
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    grads = [p.grad for p in method.backbone.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    method.after_step(0.5)


@pytest.mark.parametrize("predictor", ["mlp", "linear", "offdiag_identity", "directpred"])
def test_simsiam_and_byol_take_every_predictor(predictor: str) -> None:
    expected = type(build_predictor(predictor, 4))
    for name in ("byol", "simsiam"):
        method = build_method(name, SmallCNN(1, width=8), predictor=predictor, dims=TINY[name])
        assert type(method.predictor) is expected
        loss = method(*_views())["loss"]
        assert loss.dim() == 0 and torch.isfinite(loss)
        loss.backward()
        learnt = [p for p in method.predictor.parameters() if p.requires_grad]
        if predictor == "directpred":  # set from the features' correlation, not by gradient
            assert not learnt and int(method.predictor.num_updates) == 1
            assert not torch.equal(method.predictor.weight, torch.eye(TINY[name].out))
        else:
            assert learnt and all(p.grad is not None and p.grad.abs().sum() > 0 for p in learnt)
        backbone = list(method.backbone.parameters())
        assert all(p.grad is not None for p in backbone)  # the loss reaches the encoder


def test_predictor_rejected_for_symmetric_methods() -> None:
    with pytest.raises(ConfigError, match="no predictor"):
        build_method("barlow", SmallCNN(1, width=8), predictor="mlp")
    with pytest.raises(ConfigError, match="valid methods"):
        build_method("moco", SmallCNN(1, width=8))


def test_byol_target_gets_no_gradient_and_follows_ema() -> None:
    method = build_method("byol", SmallCNN(1, width=8), dims=TINY["byol"])
    assert isinstance(method, BYOL)
    target = list(method.target_backbone.parameters()) + list(method.target_projector.parameters())
    assert all(not p.requires_grad for p in target)
    method(*_views())["loss"].backward()
    assert all(p.grad is None for p in target)  # no gradient reaches the target branch

    with torch.no_grad():
        for p in method.backbone.parameters():
            p.add_(1.0)
    before = [p.clone() for p in method.target_backbone.parameters()]
    online = [p.clone() for p in method.backbone.parameters()]
    method.after_step(0.0)  # tau = base_tau = 0.99
    assert method.tau == pytest.approx(0.99)
    for b, o, t in zip(before, online, method.target_backbone.parameters(), strict=True):
        torch.testing.assert_close(t, 0.99 * b + 0.01 * o)


def test_ema_update_formula_and_buffers() -> None:
    a, b = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        a.weight.fill_(1.0)
        b.weight.fill_(3.0)
        b.running_mean.fill_(5.0)
    ema_update(a, b, 0.75, copy_buffers=True)  # BYOL's: buffers are copied
    torch.testing.assert_close(a.weight, torch.full((3,), 1.5))
    torch.testing.assert_close(a.running_mean, torch.full((3,), 5.0))


def test_cosine_ema_schedule() -> None:
    assert half_cosine(0.99, 1.0, 0.0) == pytest.approx(0.99)
    assert half_cosine(0.99, 1.0, 0.5) == pytest.approx(0.995)
    assert half_cosine(0.99, 1.0, 1.0) == pytest.approx(1.0)


def test_paper_head_dims() -> None:
    assert head_dims("byol") == HeadDims(2, 4096, 256, 4096)
    assert head_dims("simsiam").pred_hidden == 512
    with pytest.raises(ConfigError):
        head_dims("byol", "huge")


def test_backbones() -> None:
    cnn = SmallCNN(1)
    assert cnn(torch.randn(2, 1, 8, 8)).shape == (2, cnn.embed_dim) == (2, 512)
    with pytest.raises(ValueError):
        cnn(torch.randn(2, 1, 16, 16))
    resnet = ResNet18CIFAR(3)
    assert resnet(torch.randn(2, 3, 32, 32)).shape == (2, 512)
    # CIFAR variant: 3x3 stride-1 stem, no max-pool; ~11.17 M parameters like ResNet-18 sans fc
    stem = resnet.stem[0]
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in resnet.modules())
    assert 11.1e6 < sum(p.numel() for p in resnet.parameters()) < 11.2e6
    with pytest.raises(ConfigError, match="small_cnn"):
        build_backbone("vit", 3)
