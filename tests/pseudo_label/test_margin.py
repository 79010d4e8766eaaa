from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dino_speech.config import MarginConfig
from dino_speech.errors import ConfigError, DataError
from dino_speech.pseudo_label.margin import AAMSoftmax, scheduled_margin


def reference_loss(x, w, y, m, s, k, easy):
    """The AAM softmax loss written directly from its definition, in float64 numpy."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    cos = (x @ w.T).reshape(len(x), -1, k).max(axis=2).clip(-1, 1)
    theta = np.arccos(cos)
    logits = s * cos
    for i, c in enumerate(y):
        t = theta[i, c]
        if easy:
            target = math.cos(t + m) if cos[i, c] > 0 else cos[i, c]
        else:
            target = math.cos(t + m) if t + m < math.pi else cos[i, c] - m * math.sin(m)
        logits[i, c] = s * target
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(y)), y].mean(), cos


@pytest.mark.parametrize("sub_centers", [1, 3])
@pytest.mark.parametrize("easy", [False, True])
@pytest.mark.parametrize("margin", [0.2, 0.9])
def test_parity_with_the_direct_formula(sub_centers, easy, margin):
    gen = torch.Generator().manual_seed(0)
    B, D, C = 64, 16, 7
    head = AAMSoftmax(D, C, margin=margin, scale=30.0, sub_centers=sub_centers, easy_margin=easy)
    x = torch.randn(B, D, generator=gen)
    y = torch.randint(0, C, (B,), generator=gen)
    # Point some embeddings away from their class so that theta + m > pi and cos < 0 occur.
    with torch.no_grad():
        first = head.weight[y[:8] * sub_centers]
        x[:8] = -first + 0.01 * torch.randn(8, D, generator=gen)
    loss, cos = head(x, y)
    ref, ref_cos = reference_loss(
        x.double().numpy(),
        head.weight.detach().double().numpy(),
        y.numpy(),
        margin,
        30.0,
        sub_centers,
        easy,
    )
    assert loss.item() == pytest.approx(ref, rel=1e-4)
    np.testing.assert_allclose(cos.detach().numpy(), ref_cos, atol=1e-5)
    assert cos.shape == (B, C)


def test_zero_margin_is_scaled_cosine_softmax():
    head = AAMSoftmax(8, 5, margin=0.0, scale=10.0)
    x, y = torch.randn(12, 8), torch.randint(0, 5, (12,))
    loss, cos = head(x, y)
    expected = F.cross_entropy(10.0 * F.normalize(x) @ F.normalize(head.weight).t(), y)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_margin_makes_the_loss_larger():
    torch.manual_seed(0)
    x, y = torch.randn(32, 8), torch.randint(0, 5, (32,))
    plain = AAMSoftmax(8, 5, margin=0.0)
    margin = AAMSoftmax(8, 5, margin=0.3)
    margin.load_state_dict(plain.state_dict())
    assert margin(x, y)[0] > plain(x, y)[0]


def test_gradients_stay_finite_at_cosine_plus_minus_one():
    head = AAMSoftmax(4, 3, margin=0.2)
    w = head.weight.detach()
    x = torch.stack([w[0], -w[1], w[2] * 3]).clone().requires_grad_(True)
    loss, _ = head(x, torch.tensor([0, 1, 2]))
    loss.backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(head.weight.grad).all()


def test_sub_centre_cosine_is_the_max_over_the_centres():
    head = AAMSoftmax(2, 2, sub_centers=2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]))
    cos = head.cosine(torch.tensor([[0.0, 2.0], [-1.0, -1.0]]))
    r = 1 / math.sqrt(2)
    np.testing.assert_allclose(cos.detach().numpy(), [[1.0, 0.0], [-r, r]], atol=1e-6)


def test_training_separates_classes():
    torch.manual_seed(0)
    centres = F.normalize(torch.randn(4, 16), dim=1)
    y = torch.randint(0, 4, (256,))
    x = centres[y] + 0.1 * torch.randn(256, 16)
    head = AAMSoftmax(16, 4, margin=0.2, scale=30.0, sub_centers=2)
    opt = torch.optim.SGD(head.parameters(), lr=0.5)
    first = None
    for _ in range(60):
        loss, cos = head(x, y)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    assert (cos.argmax(1) == y).float().mean() > 0.95


def test_cosines_are_float32_under_bf16_autocast():
    head = AAMSoftmax(8, 3)
    x, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, cos = head(x, y)
    assert cos.dtype == torch.float32 and loss.dtype == torch.float32


def test_bad_input():
    head = AAMSoftmax(8, 3)
    with pytest.raises(DataError, match=r"\(B, 8\)"):
        head(torch.randn(4, 5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        head(torch.randn(2, 8), torch.tensor([0, 3]))
    with pytest.raises(DataError, match="shape"):
        head(torch.randn(2, 8), torch.tensor([0]))
    with pytest.raises(ConfigError):
        AAMSoftmax(8, 3, margin=-0.1)
    with pytest.raises(ConfigError):
        AAMSoftmax(8, 3, sub_centers=0)
    with pytest.raises(ConfigError):
        AAMSoftmax(8, 0)
    with pytest.raises(ConfigError):
        head.set_margin(4.0)


def test_config_and_margin_warm_up():
    cfg = MarginConfig(margin=0.2, scale=30.0, sub_centers=2, margin_warmup_epochs=10)
    head = AAMSoftmax.from_config(cfg, embed_dim=8, num_classes=3)
    assert head.weight.shape == (6, 8) and head.margin == 0.2 and head.scale == 30.0
    assert scheduled_margin(cfg, 0) == 0.0
    assert scheduled_margin(cfg, 5) == pytest.approx(0.1)
    assert scheduled_margin(cfg, 25) == pytest.approx(0.2)
    assert scheduled_margin(MarginConfig(margin_warmup_epochs=0), 0) == pytest.approx(0.2)
    head.set_margin(scheduled_margin(cfg, 2.5))
    assert head.margin == pytest.approx(0.05)
