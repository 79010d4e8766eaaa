"""Parameter groups, optimiser factory and the two gradient clipping modes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dino_speech.errors import ConfigError
from dino_speech.train.optim import clip_gradients, make_optimizer, param_groups


def with_grads(*grads: torch.Tensor) -> list[nn.Parameter]:
    params = [nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    return params


def test_per_param_clipping_is_dinos_rule() -> None:
    big, small = torch.full((3, 4), 10.0), torch.full((5,), 0.1)
    params = with_grads(big, small)
    total = clip_gradients(params, 3.0, "per_param")
    torch.testing.assert_close(total, torch.linalg.vector_norm(torch.cat([big.flatten(), small])))
    # Each gradient on its own: the large one scaled to norm 3, the small one untouched.
    expected = big * (3.0 / (big.norm() + 1e-6))
    torch.testing.assert_close(params[0].grad, expected)
    torch.testing.assert_close(params[1].grad, small)


def test_global_clipping_matches_clip_grad_norm() -> None:
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(6, 3, generator=gen) * 4, torch.randn(7, generator=gen)]
    ours, ref = with_grads(*grads), with_grads(*grads)
    total = clip_gradients(ours, 1.5, "global")
    ref_total = torch.nn.utils.clip_grad_norm_(ref, 1.5)
    torch.testing.assert_close(total, ref_total)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a.grad, b.grad)


def test_no_clipping_still_measures_and_flags_non_finite() -> None:
    params = with_grads(torch.full((2,), 3.0), torch.full((2,), 4.0))
    total = clip_gradients(params, 0.0, "per_param")
    assert float(total) == pytest.approx(50**0.5)
    assert float(params[0].grad[0]) == 3.0
    params[1].grad[0] = float("nan")
    assert not torch.isfinite(clip_gradients(params, 1.0, "global"))
    with pytest.raises(ConfigError, match="per_param"):
        clip_gradients(params, 1.0, "sometimes")  # type: ignore[arg-type]


def test_no_weight_decay_on_biases_norms_or_frozen_parameters() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    model[2].weight.requires_grad_(False)
    decay, no_decay = param_groups(model, 0.05)
    assert decay["params"] == [model[0].weight] and decay["weight_decay"] == 0.05
    assert {id(p) for p in no_decay["params"]} == {
        id(model[0].bias),
        id(model[1].weight),
        id(model[1].bias),
        id(model[2].bias),
    }
    assert no_decay["weight_decay"] == 0.0
    sgd = make_optimizer("sgd", param_groups(model, 0.05), lr=0.1, momentum=0.8)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.8
    adam = make_optimizer("adam", param_groups(model, 0.05), lr=0.1, amsgrad=True)
    assert adam.param_groups[0]["amsgrad"] and adam.param_groups[1]["weight_decay"] == 0.0
    with pytest.raises(ConfigError, match="adamw"):
        make_optimizer("lamb", param_groups(model, 0.05), lr=0.1)
