"""Loss parity with direct (loop-based) formulas on random tensors, and stop-gradients."""

from __future__ import annotations

import math

import pytest
import torch

from dino_speech.image.losses import (
    barlow_twins_loss,
    byol_regression,
    negative_cosine,
    vicreg_loss,
    vicreg_terms,
)


def _direct_barlow(z1: torch.Tensor, z2: torch.Tensor, lambd: float) -> float:
    n, d = z1.shape
    z1, z2 = z1.double(), z2.double()
    a = [(z1[:, i] - z1[:, i].mean()) / math.sqrt(float(z1[:, i].var(unbiased=False)) + 1e-5)
         for i in range(d)]  # fmt: skip
    b = [(z2[:, i] - z2[:, i].mean()) / math.sqrt(float(z2[:, i].var(unbiased=False)) + 1e-5)
         for i in range(d)]  # fmt: skip
    total = 0.0
    for i in range(d):
        for j in range(d):
            c = float((a[i] * b[j]).sum()) / n
            total += (1 - c) ** 2 if i == j else lambd * c**2
    return total


def test_barlow_twins_matches_direct_formula() -> None:
    torch.manual_seed(0)
    z1, z2 = torch.randn(32, 6), torch.randn(32, 6) * 3 + 1
    got = float(barlow_twins_loss(z1, z2, lambd=0.05))
    assert got == pytest.approx(_direct_barlow(z1, z2, 0.05), rel=1e-5)


def test_barlow_twins_is_zero_for_identical_decorrelated_views() -> None:
    # orthonormal columns that all have zero mean -> C = I exactly (with eps = 0)
    a = torch.randn(64, 4, dtype=torch.float64)
    z, _ = torch.linalg.qr(a - a.mean(0))
    assert float(barlow_twins_loss(z, z, eps=0.0)) == pytest.approx(0.0, abs=1e-12)


def _direct_vicreg(z1: torch.Tensor, z2: torch.Tensor) -> tuple[float, float, float]:
    n, d = z1.shape
    inv = sum(float((z1[b, k] - z2[b, k]) ** 2) for b in range(n) for k in range(d)) / (n * d)
    var, cov = 0.0, 0.0
    for z in (z1.double(), z2.double()):
        m = z.mean(0)
        c = [[float(((z[:, i] - m[i]) * (z[:, j] - m[j])).sum()) / (n - 1) for j in range(d)]
             for i in range(d)]  # fmt: skip
        var += sum(max(0.0, 1.0 - math.sqrt(c[i][i] + 1e-4)) for i in range(d)) / d / 2
        cov += sum(c[i][j] ** 2 for i in range(d) for j in range(d) if i != j) / d
    return inv, var, cov


def test_vicreg_terms_match_direct_formulas() -> None:
    torch.manual_seed(1)
    z1 = torch.randn(20, 5) * torch.tensor([0.2, 0.5, 1.0, 2.0, 0.1])
    z2 = z1 + 0.3 * torch.randn(20, 5)
    terms = vicreg_terms(z1, z2)
    inv, var, cov = _direct_vicreg(z1, z2)
    assert float(terms["invariance"]) == pytest.approx(inv, rel=1e-5)
    assert float(terms["variance"]) == pytest.approx(var, rel=1e-5)
    assert float(terms["covariance"]) == pytest.approx(cov, rel=1e-5)
    assert var > 0  # some dimensions have std < 1, so the hinge is active
    loss, logged = vicreg_loss(z1, z2, 25.0, 25.0, 1.0)
    assert float(loss) == pytest.approx(25 * inv + 25 * var + cov, rel=1e-5)
    assert not logged["variance"].requires_grad


def test_loss_shape_checks() -> None:
    with pytest.raises(ValueError):
        barlow_twins_loss(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(ValueError):
        vicreg_terms(torch.randn(4, 3), torch.randn(4, 2))


def test_negative_cosine_value_and_stop_gradient() -> None:
    torch.manual_seed(0)
    p = torch.randn(8, 4, requires_grad=True)
    z = torch.randn(8, 4, requires_grad=True)
    loss = negative_cosine(p, z)
    pd, zd = p.detach(), z.detach()
    direct = -sum(float(pd[i] @ zd[i] / (pd[i].norm() * zd[i].norm())) for i in range(8)) / 8
    assert float(loss.detach()) == pytest.approx(direct, rel=1e-5)
    loss.backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert z.grad is None  # no gradient reaches the target branch


def test_byol_regression_is_normalised_mse() -> None:
    torch.manual_seed(0)
    p = torch.randn(8, 4, requires_grad=True)
    z = torch.randn(8, 4, requires_grad=True)
    loss = byol_regression(p, z)
    pn = p / p.norm(dim=1, keepdim=True)
    zn = z / z.norm(dim=1, keepdim=True)
    assert float(loss.detach()) == pytest.approx(
        float((pn - zn).detach().pow(2).sum(1).mean()), rel=1e-5
    )
    loss.backward()
    assert z.grad is None
