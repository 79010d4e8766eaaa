"""Predictor heads: shapes, the frozen diagonal, DirectPred against a direct computation."""

from __future__ import annotations

import pytest
import torch

from dino_speech.errors import ConfigError
from dino_speech.image.heads import (
    PREDICTORS,
    DirectPredPredictor,
    LinearPredictor,
    MLPHead,
    OffDiagIdentityPredictor,
    build_predictor,
    directpred_matrix,
)


@pytest.mark.parametrize("name", PREDICTORS)
def test_predictor_shapes(name: str) -> None:
    pred = build_predictor(name, 16, hidden_dim=8)
    out = pred(torch.randn(5, 16))
    assert out.shape == (5, 16)


def test_unknown_predictor_lists_names() -> None:
    with pytest.raises(ConfigError, match="offdiag_identity"):
        build_predictor("nope", 4)


def test_mlp_head_layers_and_last_bn() -> None:
    head = MLPHead(10, 32, 6, num_layers=3, last_bn=True)
    assert sum(isinstance(m, torch.nn.Linear) for m in head.modules()) == 3
    out = head(torch.randn(64, 10))
    assert out.shape == (64, 6)
    # the affine-free output BatchNorm standardises every dimension over the batch
    torch.testing.assert_close(out.mean(0), torch.zeros(6), atol=1e-5, rtol=0)
    with pytest.raises(ConfigError):
        MLPHead(10, 32, 6, num_layers=0)


@pytest.mark.parametrize("opt_name", ["adamw", "sgd"])
def test_offdiag_predictor_keeps_diagonal_exactly_one(opt_name: str) -> None:
    torch.manual_seed(0)
    pred = OffDiagIdentityPredictor(8)
    torch.testing.assert_close(pred.matrix(), torch.eye(8), rtol=0, atol=0)
    params = list(pred.parameters())
    opt = (
        torch.optim.AdamW(params, lr=0.1, weight_decay=0.1)
        if opt_name == "adamw"
        else torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.1)
    )
    target = torch.randn(8, 8)
    for _ in range(20):
        x = torch.randn(32, 8)
        loss = (pred(x) - x @ target.T).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        assert torch.count_nonzero(torch.diagonal(pred.offdiag.grad)) == 0
        opt.step()
    w = pred.matrix().detach()
    assert torch.equal(torch.diagonal(w), torch.ones(8))
    off = w - torch.diag_embed(torch.diagonal(w))
    assert off.abs().max() > 0.1  # the off-diagonal entries did learn


def test_linear_predictor_identity_init() -> None:
    pred = LinearPredictor(5, identity_init=True)
    x = torch.randn(3, 5)
    torch.testing.assert_close(pred(x), x)
    assert pred.matrix().requires_grad


def test_directpred_matches_direct_computation() -> None:
    torch.manual_seed(0)
    rho, eps = 0.3, 0.1
    pred = DirectPredPredictor(6, rho=rho, eps=eps)
    batches = [torch.randn(50, 6) @ torch.randn(6, 6) for _ in range(4)]
    for b in batches:
        pred(b)
    corr = batches[0].T @ batches[0] / 50
    for b in batches[1:]:
        corr = rho * corr + (1 - rho) * (b.T @ b / 50)
    torch.testing.assert_close(pred.corr, corr, rtol=1e-5, atol=1e-5)
    # W = U diag(sqrt(s / s_max) + eps) U^T, computed here with numpy's eigh
    import numpy as np

    s, u = np.linalg.eigh(corr.double().numpy())
    s = np.clip(s, 0, None)
    expected = u @ np.diag(np.sqrt(s / s.max()) + eps) @ u.T
    np.testing.assert_allclose(pred.matrix().numpy(), expected, rtol=1e-5, atol=1e-6)
    # W shares the eigenvectors of F: they commute
    w = pred.matrix().double()
    torch.testing.assert_close(w @ corr.double(), corr.double() @ w, rtol=1e-6, atol=1e-6)
    # the output uses that matrix, and has no parameters to train
    x = torch.randn(3, 6)
    pred.eval()
    torch.testing.assert_close(pred(x), x @ pred.matrix().T)
    assert not list(pred.parameters())


def test_directpred_eval_mode_does_not_update() -> None:
    pred = DirectPredPredictor(4).eval()
    pred(torch.randn(10, 4))
    assert int(pred.num_updates) == 0
    torch.testing.assert_close(pred.matrix(), torch.eye(4))


def test_directpred_update_every() -> None:
    pred = DirectPredPredictor(4, update_every=3)
    pred(torch.randn(10, 4))
    pred(torch.randn(10, 4))
    torch.testing.assert_close(pred.matrix(), torch.eye(4))
    pred(torch.randn(10, 4))
    torch.testing.assert_close(pred.matrix(), directpred_matrix(pred.corr, 0.1).float())
    with pytest.raises(ConfigError):
        DirectPredPredictor(4, rho=1.0)
