"""RDINO's embedding regulariser: VICReg's variance and covariance terms of one batch."""

from __future__ import annotations

import pytest
import torch

from dino_speech.ssl.regularizers import variance_covariance_terms


def test_terms_match_direct_formulas() -> None:
    torch.manual_seed(0)
    z = torch.randn(16, 5, dtype=torch.float64) * torch.tensor([0.2, 0.5, 1.0, 2.0, 3.0])
    variance, covariance = variance_covariance_terms(z, gamma=1.0, eps=1e-4)
    std = (z.var(0) + 1e-4).sqrt()
    expected_var = sum(max(0.0, 1.0 - float(s)) for s in std) / 5
    cov = torch.cov(z.T)
    expected_cov = sum(float(cov[i, j]) ** 2 for i in range(5) for j in range(5) if i != j) / 5
    assert float(variance) == pytest.approx(expected_var, rel=1e-9)
    assert float(covariance) == pytest.approx(expected_cov, rel=1e-9)


def test_zero_for_spread_decorrelated_batch_large_for_collapsed() -> None:
    # Rows of +-2 on a Hadamard pattern: every column has std 2 and no two columns covary.
    h = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    hadamard = torch.kron(torch.kron(h, h), h)  # (8, 8), orthogonal columns
    spread = 2.0 * hadamard[:, 1:]  # drop the constant column: zero-mean columns
    variance, covariance = variance_covariance_terms(spread)
    assert float(variance) == 0.0
    assert float(covariance) == pytest.approx(0.0, abs=1e-12)
    # Every dimension a copy of one coordinate: the covariance term is large.
    x = torch.arange(8.0).unsqueeze(1)  # variance 6
    _, copied = variance_covariance_terms(x.repeat(1, 7))
    assert float(copied) == pytest.approx(6 * 6.0**2)  # 42 off-diagonal 6^2, over D = 7
    # One embedding for every row: each dimension's std is 0, the hinge is gamma - sqrt(eps).
    same, _ = variance_covariance_terms(torch.ones(8, 7), gamma=1.0, eps=1e-4)
    assert float(same) == pytest.approx(1.0 - 1e-2)


def _effective_rank(z: torch.Tensor) -> float:
    eig = torch.linalg.eigvalsh(torch.cov(z.T)).clamp_min(0)
    p = eig / eig.sum()
    return float(torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()))


def test_minimising_it_spreads_a_collapsed_batch() -> None:
    torch.manual_seed(0)
    z = (torch.randn(32, 1) @ torch.randn(1, 6) + 0.01 * torch.randn(32, 6)).requires_grad_()
    assert _effective_rank(z.detach()) < 1.1  # one direction
    opt = torch.optim.Adam([z], lr=0.05)
    for _ in range(200):
        variance, covariance = variance_covariance_terms(z)
        opt.zero_grad()
        (10.0 * variance + covariance).backward()
        opt.step()
    assert _effective_rank(z.detach()) > 5.5  # of 6: every direction used


def test_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="B>=2"):
        variance_covariance_terms(torch.randn(1, 4))
    with pytest.raises(ValueError, match="B>=2"):
        variance_covariance_terms(torch.randn(4))
